"""ChangeEvent: one detected change of one record, and Delivery: that change for one target.

JSON on the wire, never pickle. The event id is derived from (source, entity, key,
fingerprint), so detecting the same state twice yields the same id; ``source_version``
orders changes of one record (a modified date, or the producer's sequence) so that a stale
event never overwrites a newer one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Operation = Literal["upsert", "delete"]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# Built once: json.dumps with options builds a new encoder on every call, and the producer
# fingerprints every record of every poll.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
)


def canonical_json(payload: Any) -> str:
    """Normalised JSON: sorted keys, no spaces, so equal content gives equal text."""
    return _ENCODER.encode(payload)


def fingerprint(payload: Any) -> str:
    """Content hash of a normalised payload (what changed is detected by comparing these)."""
    return hashlib.blake2b(canonical_json(payload).encode(), digest_size=16).hexdigest()


def event_id(source: str, entity: str, key: str, content_fingerprint: str) -> str:
    """Deterministic event id: the same change detected twice has the same id."""
    raw = f"{source}\x1f{entity}\x1f{key}\x1f{content_fingerprint}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def content_fingerprint(operation: Operation, payload: Any) -> str:
    """The fingerprint of a change: the operation and the normalised payload."""
    return fingerprint({"op": operation, "payload": payload})


class ChangeEvent(BaseModel):
    """One change of one record in a source system."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    flow: str
    source: str
    entity: str
    key: str
    operation: Operation
    payload: dict[str, Any]
    fingerprint: str
    source_version: int = Field(ge=0, description="orders the changes of one record")
    detected_at: datetime
    parent_key: str | None = None

    @classmethod
    def create(
        cls,
        *,
        flow: str,
        source: str,
        entity: str,
        key: str,
        operation: Operation,
        payload: dict[str, Any],
        source_version: int,
        parent_key: str | None = None,
        detected_at: datetime | None = None,
    ) -> ChangeEvent:
        """Build an event, computing its fingerprint and id from the payload."""
        content = content_fingerprint(operation, payload)
        return cls(
            event_id=event_id(source, entity, key, content),
            flow=flow,
            source=source,
            entity=entity,
            key=key,
            operation=operation,
            payload=json.loads(canonical_json(payload)),
            fingerprint=content,
            source_version=source_version,
            detected_at=detected_at or datetime.now(UTC),
            parent_key=parent_key,
        )


class Delivery(BaseModel):
    """A change event on its way to one target, with its attempt history."""

    model_config = ConfigDict(extra="forbid")

    event: ChangeEvent
    target: str
    attempt: int = Field(default=0, ge=0, description="failed attempts so far")
    dependency_waits: int = Field(default=0, ge=0)
    first_failure_at: datetime | None = None
    last_error: dict[str, Any] | None = None
    replay_of: str | None = Field(default=None, description="the dead-letter entry replayed")

    @property
    def delivery_id(self) -> str:
        """Identifies this change for this target (redeliveries share it)."""
        return f"{self.event.event_id}.{self.event.source_version}"
