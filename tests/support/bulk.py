"""Builders for the bulk path's tests: a scripted bulk sink, customer events numbered in order,
batches counted as produced, and readers of what was parked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel

from delivery.batch import BulkItemResult
from delivery.engine import ApplyContext, ApplyResult, Engine
from delivery.pipeline.hooks import Middleware, RecordEvent
from erpsync.errors import (
    SyncError,
)
from erpsync.events import ChangeEvent, Delivery
from state.batches import BatchStore
from state.store import LedgerEntry
from tests.support import Clock, customer_event

TARGET = "propeller"


class _Named(BaseModel):
    name: str


@dataclass
class BulkScriptedSink:
    """Applies in memory; item results and whole-call failures are scripted per key."""

    target: str = TARGET
    calls: list[list[str]] = field(default_factory=list)
    singles: list[str] = field(default_factory=list)
    item_errors: dict[str, SyncError] = field(default_factory=dict)
    call_errors: list[SyncError] = field(default_factory=list)
    #: the next bulk call reaches the target, then the worker dies before it hears back
    die_during_call: bool = False
    #: when set, a bulk call says it started (``entered``) and waits for ``release``
    entered: threading.Event | None = None
    release: threading.Event | None = None

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.operation == "upsert"

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        self.singles.append(event.key)
        if event.operation == "delete":
            return ApplyResult("deleted", deleted=True)
        return ApplyResult("updated" if context.ledger else "created", target_id=f"s-{event.key}")

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> Any | None:
        if event.operation == "delete":
            return None
        _Named.model_validate({"name": event.payload.get("name")})
        return event.key

    def apply_bulk(
        self, items: Sequence[Any], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        keys = [str(i) for i in items]
        self.calls.append(keys)
        if self.entered is not None and self.release is not None:
            entered, self.entered = self.entered, None
            entered.set()
            assert self.release.wait(30), "the test never released the call"
        if self.die_during_call:
            self.die_during_call = False
            raise WorkerKilledError
        if self.call_errors:
            raise self.call_errors.pop(0)
        results: list[BulkItemResult] = []
        for k in keys:
            error = self.item_errors.pop(k, None)
            results.append(error or ApplyResult("created", target_id=f"b-{k}"))
        return results


class WorkerKilledError(BaseException):
    """The worker process dies mid-call (SIGKILL): nothing after the call runs."""


_versions = iter(range(1, 1_000_000))


def event(
    key: str,
    parent: str | None = None,
    *,
    name: str | None = "Acme",
    operation: str = "upsert",
    active: bool = True,
    version: int | None = None,
) -> ChangeEvent:
    """A customer with ``active``, numbered in order unless ``version`` is given."""
    number = version if version is not None else next(_versions)
    return customer_event(key, name, number, parent, operation=operation, active=active)


def batch(engine: Engine, *events: ChangeEvent, **kwargs: Any) -> list[Delivery]:
    deliveries = [Delivery(event=e, target=TARGET, **kwargs) for e in events]
    for d in deliveries:
        engine.state.mark_produced(TARGET, d.delivery_id, flow="customers")
    return deliveries


def parked(engine: Engine, clock: Clock) -> list[dict[str, Any]]:
    """Every parked member (single deliveries and batches), taken as if due.

    A parked batch carries a reference to its stored deliveries; here it is resolved.
    """
    members = [json.loads(m) for m in engine.state.claim_due(now=clock.now + 1e6)]
    engine.state.redis.delete(engine.state.keys.delayed_claimed())
    store = BatchStore(engine.state)
    for member in members:
        if "batch" in member:
            ref = member["batch"]
            assert isinstance(ref, str), "the delayed set holds a reference, not the batch"
            member["batch"] = store.get(ref)
            assert member["batch"] is not None
    return members


def keys_of(deliveries: Sequence[Delivery]) -> list[str]:
    return [d.event.key for d in deliveries]


def delivery(key: str, parent: str | None = None, target: str = TARGET) -> Delivery:
    return Delivery(event=event(key, parent), target=target)


def in_thread(work: Callable[[], dict[str, int]]) -> tuple[threading.Thread, list[Any]]:
    """Run ``work`` in a worker thread of its own; its result lands in the list."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(work()), daemon=True)
    thread.start()
    return thread, results


def count_pipelines(engine: Engine) -> list[int]:
    """Count the Redis round trips (pipelines) the engine's client makes from now on."""
    made = [0]
    client = engine.state.redis
    pipeline = client.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        made[0] += 1
        return pipeline(*args, **kwargs)

    client.pipeline = counted  # type: ignore[method-assign]
    return made


class Heard(Middleware):
    """A listener of the pipeline's record events (what a trace writer subscribes to)."""

    def __init__(self) -> None:
        self.events: list[RecordEvent] = []

    def on_record(self, event: RecordEvent) -> None:
        self.events.append(event)


def one_record_per_rule(engine: Engine) -> list[Delivery]:
    """C1 unchanged, C2 stale, C3 locked by another worker, C4's parent nowhere, C5 new."""
    unchanged, stale = event("C1", version=5), event("C2", version=3)
    engine.state.ledger_put(TARGET, "customer", "C1", LedgerEntry(unchanged.fingerprint, 5))
    engine.state.ledger_put(TARGET, "customer", "C2", LedgerEntry("newer", 9))
    lock = engine.state.keys.record_lock(TARGET, "customer", "C3")
    assert engine.state.acquire(lock, 60) is not None
    return batch(engine, unchanged, stale, event("C3"), event("C4", "P9"), event("C5"))


@dataclass
class RequestingSink(BulkScriptedSink):
    """Sends one request per record through the target's rate-limited transport."""

    http: httpx.Client | None = None

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        assert self.http is not None
        self.http.get(f"/records/{event.key}")
        return super().apply(event, context)

    def apply_bulk(
        self, items: Sequence[Any], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        assert self.http is not None
        self.http.post("/bulk", json=[str(i) for i in items])
        return super().apply_bulk(items, keepalive)
