"""Dead-letter queues: durable in Redis, per target and error code, complete enough to replay.

An entry holds the whole delivery (the original event, its target and attempt history) and
what went wrong: error class, vendor code and name, HTTP status, the operator hint, a
redacted excerpt of the answer, attempts, first and last failure time. Its id is derived
from the target and the delivery, so a replay that fails again updates the same entry
instead of adding a second one.

Retention is bounded by count and by age (oldest entries go first); what is trimmed is
counted, never silently lost.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from erpsync.errors import SyncError
from erpsync.events import Delivery
from erpsync.redaction import redact
from state.keys import Keys


class DeadLetter(BaseModel):
    """One dead-lettered delivery."""

    model_config = ConfigDict(extra="forbid")

    id: str
    target: str
    flow: str
    entity: str
    key: str
    code: str = Field(description="vendor code, else http-<status>, else the error class")
    error_class: str
    error_type: str
    message: str
    hint: str | None = None
    vendor_code: str | None = None
    vendor_name: str | None = None
    status_code: int | None = None
    response_excerpt: str | None = None
    attempts: int
    first_failure_at: datetime
    last_failure_at: datetime
    dead_lettered_count: int = 1
    replays: int = 0
    delivery: Delivery

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - self.last_failure_at.timestamp())


def entry_id_for(target: str, delivery_id: str) -> str:
    """A dead letter's id: one per (target, delivery)."""
    return hashlib.blake2b(f"{target}\x1f{delivery_id}".encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Retention:
    """How many dead letters to keep, and for how long."""

    max_entries: int = 100_000
    max_age_s: float = 30 * 86400


class DeadLetterStore:
    """Add, read, filter, update and remove dead letters."""

    def __init__(self, client: redis.Redis, keys: Keys, retention: Retention | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.retention = retention or Retention()

    def add(self, delivery: Delivery, error: SyncError, *, now: float | None = None) -> str:
        """Store (or update) the dead letter of a delivery; returns its id."""
        now = time.time() if now is None else now
        event = delivery.event
        entry_id = entry_id_for(delivery.target, delivery.delivery_id)
        existing = self.get(entry_id)
        when = datetime.fromtimestamp(now, UTC)
        excerpt = redact(error.response_excerpt, max_chars=500) if error.response_excerpt else None
        stored_delivery = delivery.model_copy(deep=True)
        stored_delivery.replay_of = None
        entry = DeadLetter(
            id=entry_id,
            target=delivery.target,
            flow=event.flow,
            entity=event.entity,
            key=event.key,
            code=error.code,
            error_class=error.error_class.value,
            error_type=type(error).__name__,
            message=redact(str(error)),
            hint=error.hint,
            vendor_code=error.vendor_code,
            vendor_name=error.vendor_name,
            status_code=error.status_code,
            response_excerpt=excerpt,
            attempts=max(
                1, delivery.attempt + delivery.dependency_waits + delivery.rate_limited_waits
            ),
            first_failure_at=(
                existing.first_failure_at if existing else delivery.first_failure_at or when
            ),
            last_failure_at=when,
            dead_lettered_count=(existing.dead_lettered_count + 1) if existing else 1,
            replays=existing.replays if existing else 0,
            delivery=stored_delivery,
        )
        self._write(entry, previous=existing)
        self.trim(now=now)
        return entry_id

    def _write(self, entry: DeadLetter, previous: DeadLetter | None = None) -> None:
        score = entry.last_failure_at.timestamp()
        with self.redis.pipeline() as pipe:
            if previous is not None and (previous.target, previous.code) != (
                entry.target,
                entry.code,
            ):
                pipe.zrem(self.keys.dlq_by_target_code(previous.target, previous.code), entry.id)
            pipe.set(self.keys.dlq_entry(entry.id), entry.model_dump_json())
            pipe.zadd(self.keys.dlq_index(), {entry.id: score})
            pipe.zadd(self.keys.dlq_by_target_code(entry.target, entry.code), {entry.id: score})
            pipe.execute()

    def update(self, entry: DeadLetter) -> None:
        """Store an edited entry (payload edits, replay counts)."""
        self._write(entry, previous=self.get(entry.id))

    def get(self, entry_id: str) -> DeadLetter | None:
        raw = self.redis.get(self.keys.dlq_entry(entry_id))
        if raw is None:
            return None
        return DeadLetter.model_validate_json(raw)

    def remove(self, entry_id: str) -> DeadLetter | None:
        """Delete an entry; returns what was deleted."""
        entry = self.get(entry_id)
        if entry is None:
            return None
        with self.redis.pipeline() as pipe:
            pipe.delete(self.keys.dlq_entry(entry_id))
            pipe.zrem(self.keys.dlq_index(), entry_id)
            pipe.zrem(self.keys.dlq_by_target_code(entry.target, entry.code), entry_id)
            pipe.execute()
        return entry

    def resolved(self, entry_id: str, how: str) -> None:
        """A replayed entry reached an outcome: it leaves the queue (the audit log keeps it)."""
        entry = self.remove(entry_id)
        if entry is not None:
            self.audit("system", "resolved", 1, {"id": entry_id, "how": how})

    def ids(self) -> list[str]:
        """Every entry id, oldest last failure first."""
        return [str(i) for i in self.redis.zrange(self.keys.dlq_index(), 0, -1)]

    def iter_entries(self, batch: int = 500) -> Iterator[DeadLetter]:
        ids = self.ids()
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            raws = self.redis.mget([self.keys.dlq_entry(i) for i in chunk])
            for raw in raws:
                if raw is not None:
                    yield DeadLetter.model_validate_json(raw)

    def count(self) -> int:
        total: int = self.redis.zcard(self.keys.dlq_index())
        return total

    def counts_by_target_code(self) -> dict[str, dict[str, int]]:
        """Dead letters per target and code (for status and metrics)."""
        counts: dict[str, dict[str, int]] = {}
        for entry in self.iter_entries():
            per_target = counts.setdefault(entry.target, {})
            per_target[entry.code] = per_target.get(entry.code, 0) + 1
        return counts

    def trim(self, *, now: float | None = None) -> int:
        """Apply retention: drop entries past the age limit and beyond the count limit."""
        now = time.time() if now is None else now
        dropped = 0
        too_old = self.redis.zrangebyscore(
            self.keys.dlq_index(), "-inf", now - self.retention.max_age_s
        )
        excess = self.count() - len(too_old) - self.retention.max_entries
        oldest: list[Any] = []
        if excess > 0:
            oldest = self.redis.zrange(
                self.keys.dlq_index(), len(too_old), len(too_old) + excess - 1
            )
        for entry_id in [*too_old, *oldest]:
            if self.remove(str(entry_id)) is not None:
                dropped += 1
        if dropped:
            self.redis.hincrby(self.keys.counters("dlq"), "trimmed", dropped)
            self.audit("system", "trimmed", dropped, {"reason": "retention"})
        return dropped

    # -- audit --------------------------------------------------------------------------
    def audit(
        self, who: str, action: str, count: int, details: dict[str, Any] | None = None
    ) -> None:
        """Append an operator (or system) action to the audit log."""
        self.redis.xadd(
            self.keys.dlq_audit(),
            {
                "at": datetime.now(UTC).isoformat(),
                "who": who,
                "action": action,
                "count": str(count),
                "details": json.dumps(details or {}, ensure_ascii=False, sort_keys=True),
            },
            maxlen=100_000,
            approximate=True,
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.redis.xrevrange(self.keys.dlq_audit(), count=limit) or []
        out = []
        for _, fields in rows:
            row: dict[str, Any] = {str(k): v for k, v in (fields or {}).items()}
            row["count"] = int(row.get("count", 0))
            row["details"] = json.loads(row.get("details") or "{}")
            out.append(row)
        return out
