"""What an operator gives to dead letters, checked before anything is stored.

* A payload edit (``erpsync dlq edit``: an editor, or ``--set field=value``) must give a
  valid canonical record of the same key; the event's fingerprint and id are recomputed,
  its source version kept.
* An import file (``erpsync dlq import``, JSON lines from ``export``) is read whole first:
  one invalid line and nothing is imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from erpsync.events import ChangeEvent
from erpsync.mapping import ENTITY_MODELS
from erpsync.models import Invoice, parent_field
from state.dlq import DeadLetter

#: canonical model per entity; billing items become invoices in the ERP
EDIT_MODELS: dict[str, type[BaseModel]] = {"billing": Invoice, "invoice": Invoice, **ENTITY_MODELS}


class EditError(ValueError):
    """An edit that was refused; nothing was stored."""

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)


class ImportFileError(ValueError):
    """An import file with invalid lines; nothing was imported."""

    def __init__(self, problems: Sequence[tuple[int, str]]) -> None:
        lines = ", ".join(str(n) for n, _ in problems[:20])
        more = f" and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} invalid line(s): {lines}{more}")
        self.problems = list(problems)


def edit_event(
    entry_id: str, event: ChangeEvent, payload: dict[str, Any] | None, sets: Sequence[str]
) -> tuple[ChangeEvent, list[str]] | None:
    """The event with the edited payload, and the paths that changed (None: nothing did).

    ``payload`` replaces the event's own, ``sets`` are applied to it; :class:`EditError`,
    with every reason, when the result is not a valid canonical record of the same key.
    """
    if event.operation != "upsert":
        raise EditError(f"dead letter {entry_id} is a {event.operation}: it has no payload to edit")
    model = EDIT_MODELS.get(event.entity)
    if model is None:
        raise EditError(f"no canonical model for entity {event.entity!r}: edits are refused")
    if payload is None:
        payload = json.loads(json.dumps(event.payload))
    candidate, assigned = apply_sets(payload, sets)
    validated = _validate(model, candidate, assigned)
    # Only the fields given: defaults are not added, so the payload keeps its shape.
    new_payload = validated.model_dump(mode="json", exclude_unset=True)
    problems = []
    if "key" in new_payload and new_payload["key"] != event.key:
        problems.append(
            f"key: the record's key is {event.key!r}; a dead letter cannot move to "
            f"another record ({new_payload['key']!r})"
        )
    if problems:
        raise EditError(f"edit of {entry_id} refused", problems)
    changed = changed_paths(event.payload, new_payload)
    if not changed:
        return None
    new_event = ChangeEvent.create(
        flow=event.flow,
        source=event.source,
        entity=event.entity,
        key=event.key,
        operation=event.operation,
        payload=new_payload,
        source_version=event.source_version,
        parent_key=(
            new_payload.get(parent_field(event.entity))
            if parent_field(event.entity) in model.model_fields
            else event.parent_key
        ),
        detected_at=event.detected_at,
    )
    return new_event, changed


def _parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (``12``, ``false``, ``null``, ``{…}``), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_sets(
    payload: dict[str, Any], sets: Sequence[str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """``payload`` with each ``field=value`` applied (dotted fields reach into objects).

    Returns the new payload and, per dotted path, the raw text given (see :func:`_validate`).
    """
    result = json.loads(json.dumps(payload))
    assigned: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    for item in sets:
        name, sep, raw = item.partition("=")
        path = tuple(p for p in name.strip().split("."))
        if not sep or not name.strip() or any(not p for p in path):
            problems.append(f"{item!r}: expected field=value (dotted fields allowed: address.city)")
            continue
        target: Any = result
        for part in path[:-1]:
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                problems.append(f"{name}: {part!r} is not an object")
                break
        else:
            target[path[-1]] = _parse_value(raw)
            assigned[path] = raw
    if problems:
        raise EditError("invalid --set", problems)
    return result, assigned


def _validate(
    model: type[BaseModel], candidate: dict[str, Any], assigned: dict[tuple[str, ...], str]
) -> BaseModel:
    """Validate; a ``--set`` value read as a number or boolean is retried as text.

    ``--set phone=5145550000`` means the text: where the model wants a string and the JSON
    reading gave something else, the raw text is used instead, once.
    """
    try:
        return model.model_validate(candidate)
    except ValidationError as first:
        retried = False
        for error in first.errors(include_url=False):
            loc = tuple(str(p) for p in error["loc"])
            if error["type"] == "string_type" and loc in assigned:
                _put(candidate, loc, assigned[loc])
                retried = True
        if retried:
            try:
                return model.model_validate(candidate)
            except ValidationError as second:
                raise EditError("the payload is not valid", _reasons(second)) from None
        raise EditError("the payload is not valid", _reasons(first)) from None


def _put(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _reasons(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    ]


def _describe(exc: ValidationError) -> str:
    reasons = _reasons(exc)
    more = f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return "; ".join(reasons[:3]) + more


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose value differs between two JSON values."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for name in sorted(set(before) | set(after)):
            out.extend(changed_paths(before.get(name), after.get(name), f"{prefix}{name}."))
        return out
    return [] if before == after else [prefix.rstrip(".") or "(payload)"]


def parse_import(lines: Iterable[str]) -> list[DeadLetter]:
    """Every entry of a JSON-lines file, or :class:`ImportFileError` naming each bad line."""
    entries: list[DeadLetter] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = DeadLetter.model_validate_json(line)
        except ValidationError as exc:
            problems.append((number, _describe(exc)))
            continue
        event = entry.delivery.event
        mismatched = [
            name
            for name, ours, theirs in (
                ("target", entry.target, entry.delivery.target),
                ("flow", entry.flow, event.flow),
                ("entity", entry.entity, event.entity),
                ("key", entry.key, event.key),
            )
            if ours != theirs
        ]
        if mismatched:
            problems.append(
                (number, f"{', '.join(mismatched)} differ(s) from the delivery's event")
            )
            continue
        if entry.id in seen:
            problems.append((number, f"id {entry.id} already on line {seen[entry.id]}"))
            continue
        seen[entry.id] = number
        entries.append(entry)
    if problems:
        raise ImportFileError(problems)
    return entries
