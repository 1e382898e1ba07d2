"""The engine's decision tree, with a scripted sink and fakeredis."""

from __future__ import annotations

import pytest

from delivery.engine import Engine
from erpsync.errors import (
    AuthError,
    DependencyError,
    PermanentError,
    TransientError,
)
from erpsync.events import Delivery
from tests.support import Clock, customer_event
from tests.support.engine import ScriptedSink, WorkerKilledError, deliver, due

pytest_plugins = ["tests.support.engine"]


def test_applies_then_skips_a_duplicate_delivery(engine: Engine, sink: ScriptedSink) -> None:
    ev = customer_event()
    assert deliver(engine, ev) == "applied"
    assert engine.process(Delivery(event=ev, target="hipe")) == "skipped"
    assert sink.applied == [("C1", ev.fingerprint)], "applied once"
    assert engine.state.counters("hipe")["produced"] == 1
    assert engine.state.counters("hipe")["applied"] == 1
    assert "skipped" not in engine.state.counters("hipe"), "a redelivery is not a new outcome"
    ledger = engine.state.ledger_get("hipe", "customer", "C1")
    assert ledger is not None
    assert ledger.target_id == "id-C1"


def test_stale_event_never_overwrites_a_newer_one(engine: Engine, sink: ScriptedSink) -> None:
    newer, older = customer_event(name="New", version=5), customer_event(name="Old", version=4)
    assert deliver(engine, newer) == "applied"
    assert deliver(engine, older) == "skipped"
    assert sink.applied == [("C1", newer.fingerprint)]
    assert engine.state.counters("hipe")["skipped_stale"] == 1


def test_a_forced_delivery_passes_the_already_applied_check_but_never_the_stale_one(
    engine: Engine, sink: ScriptedSink
) -> None:
    """A reconcile's repair re-sends content the ledger says the target has (it drifted)."""
    first = customer_event(name="Acme", version=1)
    assert deliver(engine, first) == "applied"
    again = customer_event(name="Acme", version=2)
    assert again.fingerprint == first.fingerprint
    assert deliver(engine, again) == "skipped", "unforced: already applied"
    repair = customer_event(name="Acme", version=3)
    assert deliver(engine, repair, force=True) == "applied"
    assert sink.applied == [("C1", first.fingerprint), ("C1", repair.fingerprint)]
    ledger = engine.state.ledger_get("hipe", "customer", "C1")
    assert ledger is not None
    assert (ledger.fingerprint, ledger.source_version) == (repair.fingerprint, 3)
    stale = customer_event(name="Older", version=2)
    assert deliver(engine, stale, force=True) == "skipped", "a force never passes a stale check"
    assert engine.state.counters("hipe")["skipped_stale"] == 1
    assert len(sink.applied) == 2


def test_a_worker_killed_after_the_write_leaves_no_ledger_vouching_for_the_old_content(
    engine: Engine, sink: ScriptedSink
) -> None:
    first, renamed, back = (
        customer_event(name="A", version=1),
        customer_event(name="B", version=2),
        customer_event(name="A", version=3),
    )
    assert deliver(engine, first) == "applied"
    sink.die_after_write = True
    with pytest.raises(WorkerKilledError):
        deliver(engine, renamed)  # the target now holds B; the ledger was never told
    # Renamed back to A before B's redelivery: the target holds B, so A must be written.
    assert deliver(engine, back) == "applied"
    assert sink.applied[-1] == ("C1", back.fingerprint)
    assert deliver(engine, renamed) == "skipped", "B's redelivery is stale"


def test_transient_errors_retry_then_dead_letter_with_retry_after(
    engine: Engine, sink: ScriptedSink, clock: Clock
) -> None:
    busy = TransientError(
        "503", system="hipe", operation="create", status_code=503, retry_after_s=30
    )
    sink.failures = [busy, busy, busy]
    assert deliver(engine, customer_event()) == "parked"
    due_at = engine.state.redis.zrange(engine.state.keys.delayed(), 0, -1, withscores=True)[0][1]
    assert float(due_at) >= clock.now + 30, "Retry-After is honoured"
    (again,) = due(engine, clock)
    assert again.attempt == 1
    assert engine.process(again) == "parked"
    (last,) = due(engine, clock)
    assert engine.process(last) == "dead_lettered"
    (entry,) = list(engine.dlq.iter_entries())
    assert entry.code == "http-503"
    assert entry.attempts == 3
    assert entry.error_class == "transient"
    assert engine.state.counters("hipe")["dead_lettered"] == 1


def until_settled(engine: Engine, clock: Clock, first: str) -> tuple[str, Delivery | None]:
    """Process the delivery's returns (retries, circuit waits) until it is not parked, the
    time moving on past each wait."""
    outcome, last = first, None
    for _ in range(30):
        if outcome != "parked":
            break
        clock.advance(600)
        (last,) = due(engine, clock)
        outcome = engine.process(last)
    return outcome, last


def test_a_429_is_a_wait_the_target_asked_for_not_a_failed_attempt(
    engine: Engine, sink: ScriptedSink, clock: Clock
) -> None:
    """Refused for its rate more often than the attempt budget (3 here), a delivery is
    still retried, each time after the Retry-After; a 503 in between still counts; only
    the rate-limit budget's end (5 waits here) dead-letters it."""
    limited = TransientError(
        "429", system="hipe", operation="create", status_code=429, retry_after_s=2
    )
    busy = TransientError("503", system="hipe", operation="create", status_code=503)
    sink.failures = [limited, limited, limited, busy, limited]
    outcome, last = until_settled(engine, clock, deliver(engine, customer_event()))
    assert outcome == "applied", "four 429s and one 503 spent no budget"
    assert sink.failures == [], "every refusal was met"
    assert last is not None
    assert (last.attempt, last.rate_limited_waits) == (1, 4)

    sink.failures = [limited] * 6
    outcome, last = until_settled(engine, clock, deliver(engine, customer_event(key="C2")))
    assert outcome == "dead_lettered", "the sixth 429 is past the 5 waits"
    (entry,) = list(engine.dlq.iter_entries())
    assert (entry.key, entry.code, entry.attempts) == ("C2", "http-429", 6)


def test_child_waits_for_its_parent_then_applies(
    engine: Engine, sink: ScriptedSink, clock: Clock
) -> None:
    child = customer_event(key="C2", parent="C1")
    assert deliver(engine, child) == "parked"
    assert engine.state.counters("hipe")["dependency_waits"] == 1
    assert deliver(engine, customer_event(key="C1")) == "applied"
    (waiting,) = due(engine, clock)
    assert engine.process(waiting) == "applied"
    assert [k for k, _ in sink.applied] == ["C1", "C2"], "parent before child"


def test_dependency_budget_ends_in_the_dlq_with_a_hint(engine: Engine, clock: Clock) -> None:
    assert deliver(engine, customer_event(key="C2", parent="C9")) == "parked"
    for _ in range(2):
        (waiting,) = due(engine, clock)
        result = engine.process(waiting)
    assert result == "dead_lettered"
    (entry,) = list(engine.dlq.iter_entries())
    assert entry.code == "parent-not-synced"
    assert entry.hint is not None
    assert "C9" in entry.hint


def test_permanent_error_dead_letters_at_once(engine: Engine, sink: ScriptedSink) -> None:
    sink.failures = [
        PermanentError(
            "bad",
            system="hipe",
            operation="create",
            status_code=400,
            response_excerpt='{"token":"abc"}',
        )
    ]
    assert deliver(engine, customer_event()) == "dead_lettered"
    (entry,) = list(engine.dlq.iter_entries())
    assert entry.response_excerpt == '{"token":"***"}', "excerpts are redacted"


def test_auth_error_opens_the_circuit_and_burns_no_attempt(
    engine: Engine, sink: ScriptedSink, clock: Clock
) -> None:
    sink.failures = [AuthError("401", system="hipe", operation="create", status_code=401)]
    assert deliver(engine, customer_event()) == "parked"
    assert engine.circuit.status("hipe").state == "open"
    assert deliver(engine, customer_event(key="C5")) == "parked", "the queue waits while open"
    assert engine.dlq.count() == 0
    clock.now += 11
    for waiting in due(engine, clock):
        assert waiting.attempt == 0, "no retry burned"
        engine.process(waiting)
    assert engine.circuit.status("hipe").state == "closed"
    assert engine.state.counters("hipe")["applied"] >= 1


def test_replay_of_a_superseded_change_is_skipped(engine: Engine, sink: ScriptedSink) -> None:
    old = customer_event(name="Old", version=1)
    engine.state.set_latest("onlineerp", "customer", {"C1": 2})
    assert deliver(engine, old, replay_of="abc") == "skipped"
    assert sink.applied == []
    assert engine.state.counters("hipe")["skipped_superseded"] == 1


def test_dependency_error_from_the_sink_waits(engine: Engine, sink: ScriptedSink) -> None:
    sink.failures = [
        DependencyError("40007", system="hipe", operation="create", vendor_code="40007")
    ]
    assert deliver(engine, customer_event()) == "parked"
    assert engine.state.counters("hipe")["dependency_waits"] == 1


def pending(engine: Engine, d: Delivery) -> float | None:
    """When the delivery was last seen moving, while it is pending (None: it is not)."""
    score = engine.state.redis.zscore(engine.state.keys.pending("hipe"), d.delivery_id)
    return None if score is None else float(score)


def register(engine: Engine, d: Delivery, now: float) -> None:
    """What a publisher does before it sends the delivery (see state.publish)."""
    engine.state.register([("hipe", d.delivery_id, d.model_dump_json())], now=now)


def test_a_delivery_is_pending_until_its_outcome_and_parked_until_it_is_due(
    engine: Engine, sink: ScriptedSink, clock: Clock
) -> None:
    busy = TransientError("503", system="hipe", operation="create", status_code=503)
    sink.failures = [busy]
    d = Delivery(event=customer_event(), target="hipe")
    register(engine, d, clock.now - 5)
    assert engine.process(d) == "parked"
    due_at = float(
        engine.state.redis.zrange(engine.state.keys.delayed(), 0, 0, withscores=True)[0][1]
    )
    assert pending(engine, d) == due_at, "a parked delivery's lease runs from when it is due"
    (again,) = due(engine, clock)
    register(engine, again, clock.now + 100)  # the pump sends it back
    clock.now += 100
    assert engine.process(again) == "applied"
    assert pending(engine, d) is None
    assert engine.state.redis.hlen(engine.state.keys.pending_payload("hipe")) == 0


def test_a_started_delivery_is_seen_moving_and_every_outcome_settles_it(
    engine: Engine, sink: ScriptedSink, clock: Clock
) -> None:
    killed = Delivery(event=customer_event("C1"), target="hipe")
    register(engine, killed, clock.now - 50)
    sink.die_after_write = True
    with pytest.raises(WorkerKilledError):
        engine.process(killed)
    assert pending(engine, killed) == clock.now, "its lease runs from its start"

    duplicate = Delivery(event=customer_event("C2"), target="hipe")
    assert deliver(engine, duplicate.event) == "applied"
    register(engine, duplicate, clock.now)  # sent once more after it was applied
    assert engine.process(duplicate) == "skipped"
    assert pending(engine, duplicate) is None, "a duplicate's skip settles it too"

    sink.failures = [PermanentError("bad", system="hipe", operation="create")]
    hopeless = Delivery(event=customer_event("C3"), target="hipe")
    register(engine, hopeless, clock.now)
    assert engine.process(hopeless) == "dead_lettered"
    assert pending(engine, hopeless) is None

    never_sent = Delivery(event=customer_event("C4"), target="hipe")
    engine.state.start("hipe", "customer", "C4", never_sent.delivery_id, now=1.0, lock_ttl_s=1)
    assert pending(engine, never_sent) is None, "starting one never makes it pending"
