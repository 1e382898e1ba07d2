"""The bulk path's failures of a whole call: retried as a batch, made again in place, dead-
lettered one by one, the circuit opened, the single path taken instead."""

from __future__ import annotations

import time

from delivery.batch import BatchApplier
from delivery.engine import Engine
from erpsync.errors import (
    AuthError,
    PermanentError,
    TransientError,
)
from erpsync.events import Delivery
from tests.support import Clock
from tests.support.bulk import TARGET, BulkScriptedSink, batch, event, parked


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
    assert [(d["attempt"], d["rate_limited_waits"]) for d in member["batch"]] == [(0, 1)] * 2
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
    assert engine.state.counters(TARGET)["retries"] == 2, "each delivery's wait counted"
    assert [(d.attempt, d.rate_limited_waits) for d in deliveries] == [(0, 1)] * 2


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
