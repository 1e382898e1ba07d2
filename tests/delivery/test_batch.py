"""The bulk path's rules: how batches are cut, and how each delivery of a batch ends."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import BaseModel

from delivery.batch import (
    BatchApplier,
    BulkItemResult,
    BulkRoute,
    plan_batches,
    split_for_bulk,
)
from delivery.engine import ApplyContext, ApplyResult, Engine
from delivery.http import RateLimitedTransport
from delivery.pipeline.hooks import Middleware, RecordEvent
from delivery.pipeline.scheduling import CpuSlots
from erpsync.errors import (
    AuthError,
    DependencyError,
    PermanentError,
    RecordExistsError,
    SyncError,
    TransientError,
)
from erpsync.events import ChangeEvent, Delivery
from state.batches import BatchStore
from state.limits import RateLimiter
from state.store import LedgerEntry
from tests.support import Clock, customer_event
from tests.support.engine import make_engine

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


@pytest.fixture
def sink() -> BulkScriptedSink:
    return BulkScriptedSink()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(sink: BulkScriptedSink, clock: Clock) -> Engine:
    return make_engine(fakeredis.FakeRedis(decode_responses=True), {TARGET: sink}, clock)


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


# -- cutting batches ---------------------------------------------------------------------


def delivery(key: str, parent: str | None = None, target: str = TARGET) -> Delivery:
    return Delivery(event=event(key, parent), target=target)


def test_batches_put_parents_first_and_keep_families_together() -> None:
    # C3 is listed before its parent C1; C4 is a grandchild of C1 through C2.
    loads = [delivery("C3", "C1"), delivery("C1"), delivery("X1"), delivery("C2", "C1"),
             delivery("C4", "C2"), delivery("X2", "X1")]  # fmt: skip
    batches = plan_batches(loads, size=4)
    assert [keys_of(b) for b in batches] == [["C1", "C3", "C2", "C4"], ["X1", "X2"]]


def test_a_family_larger_than_a_batch_spans_consecutive_batches_in_order() -> None:
    loads = [delivery("P")] + [delivery(f"K{i}", "P") for i in range(4)] + [delivery("Z")]
    batches = plan_batches(loads, size=2)
    assert [keys_of(b) for b in batches] == [["P", "K0"], ["K1", "K2"], ["K3", "Z"]]
    assert all(len(b) <= 2 for b in batches)


def test_batches_end_full_when_a_later_family_fits_where_an_earlier_did_not() -> None:
    loads = [delivery("A"), delivery("B"), delivery("B1", "B"), delivery("C"),
             delivery("C1", "C"), delivery("C2", "C"), delivery("D"), delivery("E")]  # fmt: skip
    batches = plan_batches(loads, size=4)
    assert [keys_of(b) for b in batches] == [["A", "B", "B1", "D"], ["C", "C1", "C2", "E"]]
    assert len(plan_batches([delivery(f"K{i}") for i in range(1000)], size=200)) == 5


def test_a_parent_cycle_in_the_source_does_not_hang_the_planner() -> None:
    batches = plan_batches([delivery("A", "B"), delivery("B", "A")], size=10)
    assert sorted(keys_of(batches[0])) == ["A", "B"]


def test_only_large_polls_of_active_upserts_for_bulk_targets_are_batched() -> None:
    routes = {TARGET: BulkRoute(TARGET, batch_size=2, min_records=3)}
    upserts = [delivery(f"C{i}") for i in range(3)]
    gone = Delivery(event=event("D1", operation="delete"), target=TARGET)
    inactive = Delivery(event=event("I1", active=False), target=TARGET)
    other = delivery("C0", target="atollon")
    singles, batches = split_for_bulk([*upserts, gone, inactive, other], routes, volume=3)
    assert keys_of(singles) == ["D1", "I1", "C0"]
    assert [keys_of(b) for b in batches] == [["C0", "C1"], ["C2"]]
    singles, batches = split_for_bulk(upserts, routes, volume=2)
    assert (keys_of(singles), batches) == (["C0", "C1", "C2"], []), "a small poll stays single"


# -- applying a batch --------------------------------------------------------------------


def test_one_call_applies_the_batch_and_each_delivery_is_counted_once(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    deliveries = batch(engine, event("C1"), event("C2", "C1"), event("C3"))
    assert BatchApplier(engine).process(deliveries) == {"applied": 3}
    assert sink.calls == [["C1", "C2", "C3"]], "one call; a parent earlier in it is enough"
    ledger = engine.state.ledger_get(TARGET, "customer", "C2")
    assert ledger is not None
    assert (ledger.fingerprint, ledger.target_id) == (deliveries[1].event.fingerprint, "b-C2")
    counters = engine.state.counters(TARGET)
    assert (counters["applied"], counters["customers.applied"]) == (3, 3)
    # The same message again: nothing is sent, nothing is counted twice.
    assert BatchApplier(engine).process(deliveries) == {"skipped": 3}
    assert len(sink.calls) == 1
    assert engine.state.counters(TARGET)["applied"] == 3
    assert "skipped" not in engine.state.counters(TARGET)


def test_each_success_of_a_call_is_recorded_as_the_single_path_records_it(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    state = engine.state
    deliveries = batch(engine, event("C1"), event("C2"))
    state.register(((TARGET, d.delivery_id, "{}") for d in deliveries), now=clock.now)
    state.ledger_put(TARGET, "customer", "C2", LedgerEntry("old", 0, target_id="b-C2", extra="x"))
    assert BatchApplier(engine).process(deliveries) == {"applied": 2}
    for d in deliveries:
        ledger = state.ledger_get(TARGET, "customer", d.event.key)
        assert ledger is not None
        assert (ledger.fingerprint, ledger.source_version, ledger.applied_at) == (
            d.event.fingerprint, d.event.source_version, clock.now
        )  # fmt: skip
        assert ledger.target_id == f"b-{d.event.key}"
    c2 = state.ledger_get(TARGET, "customer", "C2")
    assert c2 is not None
    assert c2.extra == "x", "fields the write does not name are kept"
    counters = state.counters(TARGET)
    assert (counters["applied"], counters["action_created"]) == (2, 2)
    assert (counters["customers.applied"], counters["customers.action_created"]) == (2, 2)
    assert state.redis.zcard(state.keys.pending(TARGET)) == 0, "pending no more"
    assert state.redis.hlen(state.keys.pending_payload(TARGET)) == 0


def test_a_worker_killed_during_the_bulk_call_leaves_no_ledger_vouching_for_the_old_content(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    assert BatchApplier(engine).process(batch(engine, event("C1", name="A"))) == {"applied": 1}
    sink.die_during_call = True
    with pytest.raises(WorkerKilledError):  # the target took B; the ledger was never told
        BatchApplier(engine).process(batch(engine, event("C1", name="B")))
    # Renamed back to A: the target holds B, so A must be written, not skipped.
    assert BatchApplier(engine).process(batch(engine, event("C1", name="A"))) == {"applied": 1}
    assert sink.calls[-1] == ["C1"]


def test_stale_and_unchanged_deliveries_are_skipped_before_the_call(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    unchanged, stale, fresh = event("C1", version=5), event("C2", version=3), event("C3")
    engine.state.ledger_put(TARGET, "customer", "C1", LedgerEntry(unchanged.fingerprint, 5))
    engine.state.ledger_put(TARGET, "customer", "C2", LedgerEntry("newer", 9))
    result = BatchApplier(engine).process(batch(engine, unchanged, stale, fresh))
    assert result == {"skipped": 2, "applied": 1}
    assert sink.calls == [["C3"]]
    counters = engine.state.counters(TARGET)
    assert (counters["skipped_unchanged"], counters["skipped_stale"]) == (1, 1)


def test_a_busy_record_is_parked_alone_and_the_rest_is_applied(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    lock = engine.state.keys.record_lock(TARGET, "customer", "C2")
    assert engine.state.acquire(lock, 60) is not None  # another worker holds C2
    result = BatchApplier(engine).process(batch(engine, event("C1"), event("C2"), event("C3")))
    assert result == {"parked": 1, "applied": 2}
    assert sink.calls == [["C1", "C3"]]
    (single,) = parked(engine, clock)
    assert "batch" not in single
    assert single["event"]["key"] == "C2"
    assert engine.state.counters(TARGET)["parked_busy"] == 1


def test_parent_known_to_the_ledger_or_earlier_in_the_batch_goes_in_the_call(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    engine.state.ledger_put(TARGET, "customer", "P0", LedgerEntry("f", 1, target_id="7"))
    deliveries = batch(engine, event("C1", "P0"), event("P1"), event("C2", "P1"))
    assert BatchApplier(engine).process(deliveries) == {"applied": 3}
    assert sink.calls == [["C1", "P1", "C2"]]


def test_children_whose_parent_is_missing_wait_together_as_one_batch(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    deliveries = batch(engine, event("C1", "P9"), event("C2", "P9"), event("C3"))
    assert BatchApplier(engine).process(deliveries) == {"parked": 2, "applied": 1}
    assert sink.calls == [["C3"]]
    (member,) = parked(engine, clock)
    assert [d["event"]["key"] for d in member["batch"]] == ["C1", "C2"]
    assert [d["dependency_waits"] for d in member["batch"]] == [1, 1]
    assert engine.state.counters(TARGET)["dependency_waits"] == 2
    # The parent arrives; the waiting batch comes back and goes in one call.
    engine.state.ledger_put(TARGET, "customer", "P9", LedgerEntry("f", 1, target_id="9"))
    again = [Delivery.model_validate(d) for d in member["batch"]]
    assert BatchApplier(engine).process(again) == {"applied": 2}
    assert sink.calls[-1] == ["C1", "C2"]


def test_a_waiting_childs_budget_ends_in_the_dlq(engine: Engine, clock: Clock) -> None:
    assert BatchApplier(engine).process(batch(engine, event("C1", "P9"))) == {"parked": 1}
    (member,) = parked(engine, clock)
    assert [d["dependency_waits"] for d in member["batch"]] == [1], "even alone, as a batch"
    (first,) = member["batch"]
    waiting = [
        Delivery.model_validate({**first, "dependency_waits": 2}),
        Delivery.model_validate({**first, "dependency_waits": 2, "event": event("C2", "P9")}),
    ]
    engine.state.mark_produced(TARGET, waiting[1].delivery_id, flow="customers")
    assert BatchApplier(engine).process(waiting) == {"dead_lettered": 2}
    assert {e.code for e in engine.dlq.iter_entries()} == {"parent-not-synced"}


def test_each_item_outcome_goes_to_its_own_delivery(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    sink.item_errors = {
        "BAD": PermanentError("refused", system=TARGET, operation="bulk", vendor_code="40008"),
        "SLOW": TransientError("429", system=TARGET, operation="bulk", status_code=429),
        "P": PermanentError("refused", system=TARGET, operation="bulk", vendor_code="10017"),
        "DUP": RecordExistsError("40004", system=TARGET, operation="bulk", vendor_code="40004"),
        "KID": DependencyError("40007", system=TARGET, operation="bulk", vendor_code="40007"),
    }
    deliveries = batch(engine, event("OK"), event("BAD"), event("SLOW"), event("P"),
                       event("KID", "P"), event("DUP"))  # fmt: skip
    result = BatchApplier(engine).process(deliveries)
    assert result == {"applied": 1, "dead_lettered": 2, "parked": 3}
    assert {e.key for e in engine.dlq.iter_entries()} == {"BAD", "P"}, "a failed record alone"
    waiting = {m["event"]["key"]: m for m in parked(engine, clock)}
    assert set(waiting) == {"SLOW", "KID", "DUP"}
    assert all("batch" not in m for m in waiting.values()), "retries take the single path"
    assert waiting["SLOW"]["attempt"] == 1
    assert waiting["KID"]["dependency_waits"] == 1, "its parent failed in the same call"
    assert waiting["KID"]["last_error"]["vendor_code"] == "parent-not-synced"
    assert waiting["DUP"]["attempt"] == 0, "a conflict goes to the single path to recover"
    assert engine.state.counters(TARGET)["applied"] == 1


def test_a_record_that_cannot_be_mapped_is_dead_lettered_before_the_call(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    result = BatchApplier(engine).process(batch(engine, event("C1", name=None), event("C2")))
    assert result == {"dead_lettered": 1, "applied": 1}
    assert sink.calls == [["C2"]]
    (entry,) = list(engine.dlq.iter_entries())
    assert (entry.key, entry.code) == ("C1", "invalid-source-data")


def test_a_transient_failure_of_the_whole_call_retries_the_batch_as_a_batch(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    limited = TransientError(
        "429", system=TARGET, operation="bulk", status_code=429, retry_after_s=30
    )
    sink.call_errors = [limited, limited]
    deliveries = batch(engine, event("C1"), event("C2"))
    assert BatchApplier(engine).process(deliveries) == {"parked": 2}
    (due_at,) = engine.state.redis.zrange(engine.state.keys.delayed(), 0, -1, withscores=True)
    assert float(due_at[1]) >= clock.now + 30, "Retry-After is honoured"
    (member,) = parked(engine, clock)
    assert [d["attempt"] for d in member["batch"]] == [1, 1]
    again = [Delivery.model_validate(d) for d in member["batch"]]
    assert BatchApplier(engine).process(again) == {"parked": 2}
    (member,) = parked(engine, clock)
    last = [Delivery.model_validate(d) for d in member["batch"]]
    assert BatchApplier(engine).process(last) == {"applied": 2}
    assert len(sink.calls) == 3


def test_a_parked_batch_s_deliveries_are_pending_from_when_it_is_due(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    # The pump resends a pending delivery with no progress for a lease: a batch parked for
    # longer than that (an open circuit, a long Retry-After) must not be taken for lost.
    state = engine.state
    deliveries = batch(engine, event("C1"), event("C2"))
    state.register(
        ((TARGET, d.delivery_id, d.model_dump_json()) for d in deliveries), now=clock.now
    )
    sink.call_errors = [
        TransientError("429", system=TARGET, operation="bulk", status_code=429, retry_after_s=900)
    ]
    assert BatchApplier(engine).process(deliveries) == {"parked": 2}
    (member,) = state.redis.zrange(state.keys.delayed(), 0, -1, withscores=True)
    due_at = float(member[1])
    pending = state.redis.zrange(state.keys.pending(TARGET), 0, -1, withscores=True)
    assert sorted(pending) == sorted((d.delivery_id, due_at) for d in deliveries)
    assert due_at >= clock.now + 900


def test_a_call_refused_with_a_short_retry_after_is_made_again_in_place(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    limited = TransientError(
        "429", system=TARGET, operation="bulk", status_code=429, retry_after_s=0.2
    )
    sink.call_errors = [limited]
    deliveries = batch(engine, event("C1"), event("C2"))
    began = time.monotonic()
    assert BatchApplier(engine).process(deliveries) == {"applied": 2}
    assert time.monotonic() - began >= 0.2, "Retry-After is honoured"
    assert sink.calls == [["C1", "C2"], ["C1", "C2"]], "the same call, in its place"
    assert parked(engine, clock) == [], "nothing went to the delayed set"
    assert engine.state.counters(TARGET)["retries"] == 2, "each delivery's attempt counted"
    assert [d.attempt for d in deliveries] == [1, 1]


def test_a_spent_retry_budget_dead_letters_each_delivery_alone(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    sink.call_errors = [TransientError("503", system=TARGET, operation="bulk", status_code=503)]
    deliveries = batch(engine, event("C1"), event("C2"), attempt=2)
    assert BatchApplier(engine).process(deliveries) == {"dead_lettered": 2}
    assert sorted(e.key for e in engine.dlq.iter_entries()) == ["C1", "C2"]


def test_an_auth_failure_opens_the_circuit_and_parks_the_batch_without_burning_attempts(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    sink.call_errors = [AuthError("401", system=TARGET, operation="bulk", status_code=401)]
    assert BatchApplier(engine).process(batch(engine, event("C1"), event("C2"))) == {"parked": 2}
    assert engine.circuit.status(TARGET).state == "open"
    # While open, a new batch is parked whole without a call.
    assert BatchApplier(engine).process(batch(engine, event("C3"))) == {"parked": 1}
    assert len(sink.calls) == 1
    members = parked(engine, clock)
    assert all("batch" in m for m in members)
    assert [d["attempt"] for m in members for d in m["batch"]] == [0, 0, 0]


def test_a_refused_request_sends_every_delivery_down_the_single_path(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    sink.call_errors = [
        PermanentError(
            "schema", system=TARGET, operation="bulk", status_code=400, vendor_code="10007"
        )
    ]
    assert BatchApplier(engine).process(batch(engine, event("C1"), event("C2"))) == {"parked": 2}
    singles = parked(engine, clock)
    assert sorted(m["event"]["key"] for m in singles) == ["C1", "C2"]
    assert all("batch" not in m for m in singles)
    assert engine.dlq.count() == 0, "nothing dead-lettered for the call's failure"


def test_deletions_and_replays_take_the_single_path(engine: Engine, sink: BulkScriptedSink) -> None:
    gone = batch(engine, event("D1", operation="delete"))
    replay = batch(engine, event("R1"), replay_of="dlq-1")
    result = BatchApplier(engine).process([*gone, *replay, *batch(engine, event("C1"))])
    assert result == {"applied": 3}
    assert sink.calls == [["C1"]]
    assert sink.singles == ["D1", "R1"]


def test_a_stored_batch_is_found_by_its_reference_until_it_is_done(engine: Engine) -> None:
    store = BatchStore(engine.state)
    deliveries = batch(engine, event("C1"), event("C2"))
    ref = store.put(deliveries)
    assert [Delivery.model_validate(d) for d in store.get(ref) or []] == deliveries
    assert engine.state.redis.ttl(store.key(ref)) > 0, "an abandoned batch expires"
    store.done(ref)
    assert store.get(ref) is None


def test_a_batch_sent_by_a_producer_is_stored_counted_once_and_pending(
    engine: Engine,
) -> None:
    # What a producer's bulk batch leaves in Redis before its message is sent: the batch,
    # its records in the pending index, each delivery counted as produced once and
    # recorded as pending (its JSON, for the pump to send again if the broker loses it).
    state, store = engine.state, BatchStore(engine.state)
    deliveries = [
        Delivery(event=event("C1", name='Café Ñoño 😀 "quoted"'), target=TARGET),
        Delivery(event=event("C2", "C1"), target=TARGET),
    ]
    ref = store.put_sent(TARGET, deliveries, now=1234.5)
    assert [Delivery.model_validate(d) for d in store.get(ref) or []] == deliveries
    assert store.pending([(TARGET, "customer", "C1"), (TARGET, "customer", "C9")]) == [True, False]
    counters = state.counters(TARGET)
    assert (counters["produced"], counters["customers.produced"]) == (2, 2)
    pending = state.redis.zrange(state.keys.pending(TARGET), 0, -1, withscores=True)
    assert sorted(pending) == sorted((d.delivery_id, 1234.5) for d in deliveries)
    stored = state.redis.hgetall(state.keys.pending_payload(TARGET))
    assert {k: Delivery.model_validate_json(v) for k, v in stored.items()} == {
        d.delivery_id: d for d in deliveries
    }
    # The same deliveries sent again (a producer retrying) are not counted twice.
    store.put_sent(TARGET, deliveries, now=1240.0)
    assert state.counters(TARGET)["produced"] == 2
    store.done(ref)
    assert store.get(ref) is None


def test_a_stored_batch_with_a_malformed_delivery_loses_only_that_one(engine: Engine) -> None:
    from workers.tasks import _deliveries

    good = batch(engine, event("C1"), event("C2"))
    texts = [
        good[0].model_dump_json(),
        '{"target": "propeller", "event": {}}',
        good[1].model_dump_json(),
    ]
    assert _deliveries(f"[{','.join(texts)}]", engine.state) == good
    assert engine.state.counters("malformed")["messages"] == 1
    # A well-formed batch is parsed whole, as stored.
    stored = f"[{good[0].model_dump_json()},{good[1].model_dump_json()}]".encode()
    assert _deliveries(stored, engine.state) == good
    assert engine.state.counters("malformed")["messages"] == 1


def test_a_probe_batch_that_never_calls_the_target_hands_the_probe_on(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    sink.call_errors = [AuthError("401", system=TARGET, operation="bulk", status_code=401)]
    BatchApplier(engine).process(batch(engine, event("C1")))
    assert engine.circuit.status(TARGET).state == "open"
    clock.now += 11  # the cool-down is over: the next caller probes
    unchanged = event("C2")
    engine.state.ledger_put(TARGET, "customer", "C2", LedgerEntry(unchanged.fingerprint, 1))
    assert BatchApplier(engine).process(batch(engine, unchanged)) == {"skipped": 1}
    # The probe reached nothing; the next batch probes at once instead of waiting a lease.
    assert BatchApplier(engine).process(batch(engine, event("C3"))) == {"applied": 1}
    assert engine.circuit.status(TARGET).state == "closed"


# -- children whose parents are on their way ------------------------------------------------


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


def test_a_child_batch_waits_for_its_parents_batch_in_flight_and_follows_it_in_one_call(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    entered, release = threading.Event(), threading.Event()
    sink.entered, sink.release = entered, release
    parents = batch(engine, event("P1"), event("P2"))
    children = batch(engine, event("C1", "P1"), event("X"), event("C2", "P2"))
    applier = BatchApplier(engine, parent_wait_s=30, recheck_s=0.05)
    first, first_result = in_thread(lambda: applier.process(parents))
    assert entered.wait(10), "the parents' call started"
    second, second_result = in_thread(lambda: applier.process(children))
    round_trips = count_pipelines(engine)
    time.sleep(0.5)  # the children's batch waits: no call, nothing parked, no spinning
    assert sink.calls == [["P1", "P2"]]
    assert engine.state.redis.zcard(engine.state.keys.delayed()) == 0
    assert round_trips[0] <= 40, f"{round_trips[0]} round trips in 0.5 s: a busy loop"
    release.set()
    first.join(10)
    second.join(10)
    assert (first_result, second_result) == ([{"applied": 2}], [{"applied": 3}])
    assert sink.calls == [["P1", "P2"], ["X", "C1", "C2"]], "one call, after the parents'"
    counters = engine.state.counters(TARGET)
    assert "dependency_waits" not in counters
    assert counters["applied"] == 5


def test_a_parent_applied_by_another_worker_process_is_seen_without_a_landing_here(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    state = engine.state
    lock = state.keys.record_lock(TARGET, "customer", "P1")
    token = state.acquire(lock, 60)  # another worker (process) is applying P1
    assert token is not None

    def other_worker_applies() -> None:
        state.ledger_put(TARGET, "customer", "P1", LedgerEntry("f", 1, target_id="1"))
        state.release(lock, token)

    timer = threading.Timer(0.3, other_worker_applies)
    timer.start()
    applier = BatchApplier(engine, parent_wait_s=30, recheck_s=0.05)
    assert applier.process(batch(engine, event("C1", "P1"))) == {"applied": 1}
    timer.join()
    assert sink.calls == [["C1"]]
    assert "dependency_waits" not in state.counters(TARGET)


def test_a_parent_that_lands_between_the_ledger_read_and_the_look_around_is_not_missed(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    class LandsMeanwhile(BatchApplier):
        def _on_their_way(self, *args: Any, **kwargs: Any) -> bool:
            # P1's batch ends right after this batch read the ledgers: ledger written,
            # lock and index entry gone, so nothing says it is on its way any more.
            engine.state.ledger_put(TARGET, "customer", "P1", LedgerEntry("f", 1, target_id="1"))
            return super()._on_their_way(*args, **kwargs)

    assert LandsMeanwhile(engine).process(batch(engine, event("C1", "P1"))) == {"applied": 1}
    assert sink.calls == [["C1"]]
    assert "dependency_waits" not in engine.state.counters(TARGET)


def test_a_parent_in_a_batch_a_moment_before_this_one_is_waited_for_until_it_locks(
    engine: Engine, sink: BulkScriptedSink
) -> None:
    parents = batch(engine, event("P1"))
    BatchStore(engine.state).put(parents)  # queued; its worker has not locked it yet
    applier = BatchApplier(engine, parent_wait_s=30, recheck_s=0.05, start_grace_s=5)
    timer = threading.Timer(0.2, lambda: applier.process(parents))
    timer.start()
    assert applier.process(batch(engine, event("C1", "P1"))) == {"applied": 1}
    timer.join()
    assert sink.calls == [["P1"], ["C1"]]


def test_a_parent_that_is_not_on_its_way_costs_no_wait(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    applier = BatchApplier(engine, parent_wait_s=30, start_grace_s=0.2)
    began = time.monotonic()
    assert applier.process(batch(engine, event("C1", "P9"))) == {"parked": 1}
    assert time.monotonic() - began < 5, "nothing carries P9: no wait"
    # P7 waits in a batch parked in the delayed set: not coming soon, no wait either.
    BatchStore(engine.state).put(batch(engine, event("P7")), parked=True)
    began = time.monotonic()
    assert applier.process(batch(engine, event("C3", "P7"))) == {"parked": 1}
    assert time.monotonic() - began < 5
    # P8 is in a queued batch that no worker takes: a wait of the grace only.
    BatchStore(engine.state).put(batch(engine, event("P8")))
    began = time.monotonic()
    assert applier.process(batch(engine, event("C2", "P8"))) == {"parked": 1}
    assert 0.2 <= time.monotonic() - began < 5
    members = parked(engine, clock)
    assert sorted(m["batch"][0]["event"]["key"] for m in members) == ["C1", "C2", "C3"]
    assert sink.calls == []


def test_a_child_waits_here_at_most_parent_wait_s_then_as_a_dependency_wait(
    engine: Engine, sink: BulkScriptedSink, clock: Clock
) -> None:
    state = engine.state
    assert state.acquire(state.keys.record_lock(TARGET, "customer", "P1"), 60) is not None
    applier = BatchApplier(engine, parent_wait_s=0.5, recheck_s=0.05)
    began = time.monotonic()
    result = applier.process(batch(engine, event("C1", "P1"), event("C2")))
    assert result == {"applied": 1, "parked": 1}
    assert 0.5 <= time.monotonic() - began < 5
    assert sink.calls == [["C2"]]
    (member,) = parked(engine, clock)
    assert [(d["event"]["key"], d["dependency_waits"]) for d in member["batch"]] == [("C1", 1)]
    assert state.counters(TARGET)["dependency_waits"] == 1


def test_the_pending_index_names_each_record_s_latest_stored_batch_until_it_is_done(
    engine: Engine,
) -> None:
    store = BatchStore(engine.state)
    first = store.put(batch(engine, event("C1"), event("C2")))
    second = store.put(batch(engine, event("C2")))  # C2 moved on to a newer batch
    records = [(TARGET, "customer", k) for k in ("C1", "C2", "C3")]
    assert store.pending(records) == [True, True, False]
    store.done(first)
    assert store.pending(records) == [False, True, False]
    store.done(second)
    assert store.pending(records) == [False, False, False]
    waiting = store.put(batch(engine, event("C3")), parked=True)
    assert store.pending(records) == [False, False, False], "parked: not on a queue"
    store.done(waiting)
    assert engine.state.redis.hlen(store.index_key()) == 0, "a done batch leaves no entry"
    assert not engine.state.redis.exists(store.fields_key(first), store.fields_key(waiting))


# -- one pipeline: the same rules and the same record events on both paths ----------------


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


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_both_paths_give_each_record_one_outcome_by_the_same_rules(
    engine: Engine, sink: BulkScriptedSink, path: str
) -> None:
    heard = Heard()
    engine.middleware.append(heard)
    deliveries = one_record_per_rule(engine)
    results: dict[str, int]
    if path == "single":
        results = dict(Counter[str](engine.process(d) for d in deliveries))
    else:
        results = BatchApplier(engine).process(deliveries)
    assert results == {"skipped": 2, "parked": 2, "applied": 1}
    outcomes = [e for e in heard.events if e.final]
    assert sorted(e.delivery.event.key for e in outcomes) == ["C1", "C2", "C3", "C4", "C5"]
    assert {e.delivery.event.key: (e.what, e.details.get("reason")) for e in outcomes} == {
        "C1": ("skipped", "unchanged"),
        "C2": ("skipped", "stale"),
        "C3": ("parked_busy", None),
        "C4": ("dependency_wait", None),
        "C5": ("applied", None),
    }
    # A record of a bulk call is logged on its batch's line, a single one on its own.
    assert {e.bulk for e in outcomes if e.what in {"applied", "skipped"}} == {path == "bulk"}
    assert (sink.singles, sink.calls) == ((["C5"], []) if path == "single" else ([], [["C5"]]))


def test_cpu_slots_bound_the_batches_at_work_and_free_a_slot_while_one_waits() -> None:
    slots = CpuSlots(1)
    order: list[str] = []
    inside, waiting, go_on, second_in = (threading.Event() for _ in range(4))

    def first() -> None:
        with slots.held():
            order.append("first in")
            inside.set()
            go_on.wait(5)
            with slots.released():  # a wait (its bulk call): the slot goes to another
                waiting.set()
                time.sleep(0.2)
            order.append("first back")

    def second() -> None:
        with slots.held():
            order.append("second in")
            second_in.set()
            time.sleep(0.2)
            order.append("second done")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(5)
    threads[1].start()
    assert not second_in.wait(0.2), "one slot, held: the second batch waits for it"
    go_on.set()
    assert second_in.wait(5), "the first gave its slot up while it waits"
    for thread in threads:
        thread.join(5)
    assert order == ["first in", "second in", "second done", "first back"]
    unbounded = CpuSlots(0)
    with unbounded.held(), unbounded.held(), unbounded.released():
        pass  # no bound: nothing to take or give back
    with pytest.raises(ValueError, match="batch_cpu_slots"):
        CpuSlots(-1)


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


def test_waits_for_the_rate_limit_reach_the_hooks_as_each_record_s_step(engine: Engine) -> None:
    limiter = RateLimiter(engine.state.redis, engine.state.keys)
    transport = RateLimitedTransport(
        httpx.MockTransport(lambda request: httpx.Response(200)), limiter, TARGET, rate_per_s=1
    )
    sink = RequestingSink(http=httpx.Client(transport=transport, base_url="http://target"))
    engine.sinks = lambda: {TARGET: sink}
    heard = Heard()
    engine.middleware.append(heard)
    single = batch(engine, event("S1"), event("S2"))
    assert [engine.process(d) for d in single] == ["applied", "applied"]
    assert BatchApplier(engine).process(batch(engine, event("B1"), event("B2"))) == {"applied": 2}
    waits = [e for e in heard.events if e.what == "rate_limited"]
    # 1 request a second: the second request and the bulk call each wait for their slot.
    assert {(e.delivery.event.key, e.bulk, e.final) for e in waits} == {
        ("S2", False, False),
        ("B1", True, False),
        ("B2", True, False),
    }
    assert all(0 < e.details["wait_s"] < 3 for e in waits)
