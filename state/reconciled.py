"""The last reconcile of a flow as kept in Redis (written by :mod:`producers.reconcile`),
read by ``erpsync status``, the producer's schedule and the workers' metrics."""

from __future__ import annotations

import json
from typing import Any

import redis

from state.keys import Keys


def keep_last(client: redis.Redis, keys: Keys, flow: str, stored: dict[str, Any]) -> None:
    """Keep ``stored`` (JSON-ready; its ``summary`` is what status shows) as the flow's
    last reconcile."""
    client.set(keys.reconcile_last(flow), json.dumps(stored, default=str))


def last(client: redis.Redis, keys: Keys, flow: str) -> dict[str, Any] | None:
    """The flow's last reconcile as :func:`keep_last` kept it (None: never ran, or
    unreadable)."""
    raw = client.get(keys.reconcile_last(flow))
    if raw is None:
        return None
    try:
        found: dict[str, Any] = json.loads(raw)
    except ValueError:
        return None
    return found


def reconcile_summary(client: redis.Redis, keys: Keys, flow: str) -> dict[str, Any] | None:
    """The counts per target of the flow's last reconcile, as the reconcile kept them."""
    return parse_reconcile_summary(client.get(keys.reconcile_last(flow)))


def parse_reconcile_summary(raw: Any) -> dict[str, Any] | None:
    """The ``summary`` of a stored reconcile (None when there is none or it is unreadable)."""
    if not raw:
        return None
    try:
        summary = json.loads(raw).get("summary")
    except (ValueError, AttributeError):
        return None
    return summary if isinstance(summary, dict) else None
