"""Reading crawler request bodies: the failure type and the field readers.

The crawler answers every failure as ``{"result": "FAIL", "message": ...}``. A body that is
not JSON at all is a malformed request (**400**); everything the service can read but
refuses (a missing name, a wrong type, an unknown reference) is a business failure and
answers **HTTP 200**, the quirk the vendor documents and clients must check for.
Unknown keys are ignored, as a loosely typed import service does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

#: the HTTP status of a business failure (the documented quirk)
BUSINESS_FAILURE_STATUS = 200


class FailError(Exception):
    """A request the crawler refuses; answered as ``{"result":"FAIL","message":...}``."""

    def __init__(self, message: str, status: int = BUSINESS_FAILURE_STATUS) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def fail_body(message: str) -> dict[str, str]:
    """The crawler's failure body."""
    return {"result": "FAIL", "message": message}


def parse_json(raw: bytes) -> Any:
    """The decoded body, or a 400 FAIL for anything that is not JSON."""
    if not raw.strip():
        raise FailError("Malformed JSON: the request body is empty", 400)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise FailError("Malformed JSON: the request body cannot be parsed", 400) from exc


def now() -> str:
    """The current time in the format the crawler's examples use (UTC, no zone)."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def require_object(value: Any, where: str) -> dict[str, Any]:
    """``value`` as a JSON object, or a FAIL naming ``where``."""
    if not isinstance(value, dict):
        raise FailError(f"Invalid request: {where} must be an object")
    return value


def optional_object(body: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """``body[key]`` as an object; None when absent or null."""
    value = body.get(key)
    if value is None:
        return None
    return require_object(value, f"{where}.{key}" if where else key)


def object_list(body: dict[str, Any], key: str, where: str) -> list[dict[str, Any]] | None:
    """``body[key]`` as a list of objects; None when absent or null."""
    value = body.get(key)
    if value is None:
        return None
    label = f"{where}.{key}" if where else key
    if not isinstance(value, list):
        raise FailError(f"Invalid request: {label} must be a list")
    return [require_object(item, f"{label}[{i}]") for i, item in enumerate(value)]


def text(body: dict[str, Any], key: str, where: str = "") -> str | None:
    """``body[key]`` as a string (numbers are accepted and written as text); None if absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        label = f"{where}.{key}" if where else key
        raise FailError(f"Invalid request: {label} must be a string")
    return value if isinstance(value, str) else str(value)


def filled(body: dict[str, Any], key: str, where: str = "") -> str | None:
    """``body[key]`` stripped, None when absent or blank."""
    value = text(body, key, where)
    if value is None:
        return None
    value = value.strip()
    return value or None


def number(body: dict[str, Any], key: str, where: str = "") -> float | None:
    """``body[key]`` as a number (a numeric string is accepted); None if absent."""
    value = body.get(key)
    if value is None:
        return None
    label = f"{where}.{key}" if where else key
    if isinstance(value, bool):
        raise FailError(f"Invalid request: {label} must be a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise FailError(f"Invalid request: {label} must be a number")


ExternalId = tuple[str, str]


def external_ids(body: dict[str, Any], key: str, where: str = "") -> list[ExternalId] | None:
    """``body[key]`` as ``[(system, id), ...]``; None when absent.

    Each entry needs a non-empty ``system`` and ``id`` (a number is taken as text). One
    request may name a system once: two different ids for one system cannot both be the
    record's key in that system.
    """
    entries = object_list(body, key, where)
    if entries is None:
        return None
    label = f"{where}.{key}" if where else key
    result: list[ExternalId] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(entries):
        system = filled(entry, "system", f"{label}[{i}]")
        ident = filled(entry, "id", f"{label}[{i}]")
        if system is None or ident is None:
            raise FailError(f"Invalid request: {label}[{i}] needs a system and an id")
        if system in seen:
            if seen[system] != ident:
                raise FailError(
                    f"Invalid request: {label} names system {system!r} twice with different ids"
                )
            continue
        seen[system] = ident
        result.append((system, ident))
    return result


def external_id_json(ids: list[ExternalId]) -> list[dict[str, str]]:
    """External ids in the crawler's JSON shape."""
    return [{"system": system, "id": ident} for system, ident in ids]


def describe(ids: list[ExternalId]) -> str:
    """External ids for a failure message: ``system/id, system/id``."""
    return ", ".join(f"{system}/{ident}" for system, ident in ids)


class IdSequence:
    """Record ids in Atollon's style (large integers ending in ``101``), as strings.

    Strings, because the documented billing examples carry ids as strings; one sequence
    for every kind of record, because Atollon ids are unique across object types.
    """

    def __init__(self, start: int = 700_000_101) -> None:
        self._start = start
        self._next = start

    def next(self) -> str:
        """A fresh id."""
        self._next += 1000
        return str(self._next)

    def reset(self) -> None:
        """Start again from the first id."""
        self._next = self._start
