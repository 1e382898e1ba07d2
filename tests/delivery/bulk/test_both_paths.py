"""Both paths, one set of rules: each record's outcome, the CPU slots of batches at work, and
the rate limit's waits told to the hooks."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from delivery.batch import BatchApplier
from delivery.engine import Engine
from delivery.http import RateLimitedTransport
from delivery.pipeline.scheduling import CpuSlots
from state.limits import RateLimiter
from tests.support.bulk import (
    TARGET,
    BulkScriptedSink,
    Heard,
    RequestingSink,
    batch,
    event,
    one_record_per_rule,
)


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
