"""A child batch and its parents on their way: waited for while in flight elsewhere, seen when
another process applies them, at no cost when they are not coming, for parent_wait_s at most."""

from __future__ import annotations

import threading
import time
from typing import Any

from delivery.batch import BatchApplier
from delivery.engine import Engine
from state.batches import BatchStore
from state.store import LedgerEntry
from tests.support import Clock
from tests.support.bulk import (
    TARGET,
    BulkScriptedSink,
    batch,
    count_pipelines,
    event,
    in_thread,
    parked,
)


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
