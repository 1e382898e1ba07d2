"""ChangeEvent: one detected change of one record, and Delivery: that change for one target.

JSON on the wire, never pickle. The event id is derived from (source, entity, key,
fingerprint), so detecting the same state twice yields the same id; ``source_version``
orders changes of one record (a modified date, or the producer's sequence) so that a stale
event never overwrites a newer one.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field

from erpsync.models import parent_entity

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


#: a string as :func:`canonical_json` writes it (the encoder's own function), for code that
#: assembles canonical text without building the payload first
canonical_string: Callable[[str], str] = json.encoder.encode_basestring


def fingerprint(payload: Any) -> str:
    """Content hash of a normalised payload (what changed is detected by comparing these)."""
    return hashlib.blake2b(canonical_json(payload).encode(), digest_size=16).hexdigest()


def event_id(source: str, entity: str, key: str, content_fingerprint: str) -> str:
    """Deterministic event id: the same change detected twice has the same id."""
    raw = f"{source}\x1f{entity}\x1f{key}\x1f{content_fingerprint}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def content_fingerprint(operation: Operation, payload: Any) -> str:
    """The fingerprint of a change: the operation and the normalised payload."""
    return Content.of(operation, payload).fingerprint


class Content(NamedTuple):
    """A change's content normalised once: the payload's canonical text and its fingerprint.

    The producer fingerprints every record of a scan; a changed record's event is then
    built from this (:meth:`ChangeEvent.create`) without serialising or hashing it again.
    A tuple: a scan makes one per record.
    """

    operation: Operation
    #: ``canonical_json(payload)``
    text: str
    #: ``fingerprint({"op": operation, "payload": payload})``, as every release computed it
    fingerprint: str

    @classmethod
    def of(cls, operation: Operation, payload: Any) -> Content:
        """The content of ``payload``."""
        return cls.from_text(operation, canonical_json(payload))

    @classmethod
    def from_text(cls, operation: Operation, text: str) -> Content:
        """The content whose payload has the canonical text ``text``."""
        wrapped = _WRAPPED[operation] + text + "}"
        return cls(operation, text, hashlib.blake2b(wrapped.encode(), digest_size=16).hexdigest())


# canonical_json({"op": operation, "payload": payload}) spelled out: sorted keys put "op"
# first, and the payload's part is its own canonical text. The same bytes, so the same
# fingerprints as earlier releases stored (a test holds them equal).
_WRAPPED: dict[str, str] = {
    operation: f'{{"op":{canonical_string(operation)},"payload":'
    for operation in get_args(Operation)
}


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

    @property
    def parent_record(self) -> tuple[str, str] | None:
        """The parent's record, ``(entity, key)``: a customer's parent customer, a person's
        employer (a customer too: :func:`erpsync.models.parent_entity`); None without one.
        The pipeline waits for it and reads its ledger by this, on both paths."""
        if self.parent_key is None:
            return None
        return parent_entity(self.entity), self.parent_key

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
        content: Content | None = None,
    ) -> ChangeEvent:
        """Build an event, its fingerprint and id from the payload.

        ``content`` is the payload already normalised (:meth:`Content.of`), so that a
        producer which fingerprinted the record to find the change does not do it twice.
        """
        if content is None:
            content = Content.of(operation, payload)
        elif content.operation != operation:
            raise ValueError(f"content of a {content.operation}, event of a {operation}")
        if source_version < 0:
            raise ValueError(f"source_version must be >= 0, not {source_version}")
        if operation not in _WRAPPED:
            raise ValueError(f"unknown operation {operation!r}")
        # Every field is made here from checked parts (the payload is the canonical JSON's
        # own parse), so the model is not validated again: a poll of an initial load builds
        # tens of thousands, and validating each payload cost a fifth of the poll.
        return cls.model_construct(
            event_id=event_id(source, entity, key, content.fingerprint),
            flow=flow,
            source=source,
            entity=entity,
            key=key,
            operation=operation,
            payload=json.loads(content.text),
            fingerprint=content.fingerprint,
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
    rate_limited_waits: int = Field(
        default=0, ge=0, description="waits asked by the target (429), not failed attempts"
    )
    first_failure_at: datetime | None = None
    last_error: dict[str, Any] | None = None
    replay_of: str | None = Field(default=None, description="the dead-letter entry replayed")
    force: bool = Field(
        default=False,
        description="apply even when the ledger already has this fingerprint (a reconcile's "
        "repair: the target drifted from what the ledger remembers); never past a stale check",
    )

    @property
    def delivery_id(self) -> str:
        """Identifies this change for this target (redeliveries share it)."""
        return f"{self.event.event_id}.{self.event.source_version}"
