"""The bulk path's call: one call for the batch, each success recorded as the single path
records it, what is skipped, parked or dead-lettered before it, each item's own outcome."""

from __future__ import annotations

import pytest

from delivery.batch import BatchApplier
from delivery.engine import Engine
from erpsync.errors import (
    DependencyError,
    PermanentError,
    RecordExistsError,
    TransientError,
)
from erpsync.events import Delivery
from state.store import LedgerEntry
from tests.support import Clock
from tests.support.bulk import TARGET, BulkScriptedSink, WorkerKilledError, batch, event, parked


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
    assert (waiting["SLOW"]["attempt"], waiting["SLOW"]["rate_limited_waits"]) == (0, 1), (
        "a 429 is a wait the target asked for, not a failed attempt"
    )
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
