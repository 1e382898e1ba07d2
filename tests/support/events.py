"""Change events and deliveries as the producers make them, built in one line by a test."""

from __future__ import annotations

from typing import Any

from erpsync.events import ChangeEvent, Delivery


def make_event(
    payload: dict[str, Any],
    *,
    flow: str = "customers",
    source: str = "onlineerp",
    entity: str = "customer",
    key: str | None = None,
    version: int = 1,
    operation: str = "upsert",
    **given: Any,
) -> ChangeEvent:
    """An event of ``payload`` (its key is ``payload["key"]`` unless ``key`` is given).

    ``given`` goes to :meth:`ChangeEvent.create` as it is (``parent_key``, ``detected_at``…).
    """
    return ChangeEvent.create(
        flow=flow,
        source=source,
        entity=entity,
        key=key if key is not None else str(payload["key"]),
        operation=operation,  # type: ignore[arg-type]
        payload=payload,
        source_version=version,
        **given,
    )


def customer_event(
    key: str = "C1",
    name: str | None = "Acme",
    version: int = 1,
    parent: str | None = None,
    *,
    operation: str = "upsert",
    **fields: Any,
) -> ChangeEvent:
    """An ERP customer's change: ``{"key", "name", "parent_key", **fields}``.

    The event's parent is the payload's ``parent_key`` (``parent``, or one in ``fields``).
    """
    payload: dict[str, Any] = {"key": key, "name": name, "parent_key": parent, **fields}
    parent_key = payload["parent_key"]
    return make_event(
        payload,
        version=version,
        operation=operation,
        parent_key=parent_key if isinstance(parent_key, str) else None,
    )


def delivery_of(event: ChangeEvent, target: str = "hipe", **given: Any) -> Delivery:
    """The delivery of ``event`` to ``target`` (``given``: ``attempt``, ``force``…)."""
    return Delivery(event=event, target=target, **given)
