"""The engine's batched Redis steps behave as the single calls they replace."""

from __future__ import annotations

import fakeredis
import pytest

from delivery.engine import ApplyResult, Engine
from erpsync.events import ChangeEvent, Delivery
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import LedgerEntry, State


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def state(client: fakeredis.FakeRedis) -> State:
    return State(client, Keys("t"))


def test_start_takes_the_lock_reads_the_ledger_and_marks_in_flight(state: State) -> None:
    entry = LedgerEntry(fingerprint="f", source_version=2, target_id="7", applied_at=1.0)
    state.ledger_put("hipe", "customer", "C1", entry)
    started = state.start("hipe", "customer", "C1", "d1", now=5.0, lock_ttl_s=30)
    assert started.token is not None
    assert started.holder is None
    assert started.ledger == entry
    assert started.circuit_state is None, "no circuit record: closed"
    assert state.redis.hget(state.keys.inflight("hipe"), "d1") == "5.000"

    busy = state.start("hipe", "customer", "C1", "d2", now=6.0, lock_ttl_s=30)
    assert busy.token is None
    assert busy.holder == started.token, "who holds it, for the dead-holder check"
    assert busy.ledger is None, "a ledger read without the lock is not handed out"

    lock_key = state.keys.record_lock("hipe", "customer", "C1")
    state.end("hipe", "d2", lock_key, None)
    assert state.redis.get(lock_key) == started.token, "ending without the lock keeps it"
    state.end("hipe", "d1", lock_key, started.token)
    assert state.redis.get(lock_key) is None
    assert state.redis.hlen(state.keys.inflight("hipe")) == 0


def test_end_and_outcome_queue_on_one_pipeline(state: State) -> None:
    started = state.start("hipe", "customer", "C1", "d1", now=1.0, lock_ttl_s=30)
    lock_key = state.keys.record_lock("hipe", "customer", "C1")
    with state.redis.pipeline(transaction=False) as pipe:
        state.queue_outcome(pipe, "hipe", "d1", "applied", also=("customers.applied",))
        state.queue_outcome(pipe, "hipe", "d1", "applied", also=("customers.applied",))
        state.end("hipe", "d1", lock_key, started.token, client=pipe)
        pipe.execute()
    assert state.counters("hipe") == {"applied": 1, "customers.applied": 1}, "counted once"
    assert state.redis.get(lock_key) is None


def test_circuit_success_ends_a_failure_run_and_respects_a_pause(
    client: fakeredis.FakeRedis,
) -> None:
    circuit = Circuit(client, Keys("t"), failure_threshold=3)
    assert not circuit.failure("hipe", "503", now=0)
    assert circuit.status("hipe").failures == 1
    with client.pipeline(transaction=False) as pipe:
        circuit.success("hipe", client=pipe)
        pipe.execute()
    assert circuit.status("hipe").failures == 0, "a success ends the run of failures"

    circuit.failure("hipe", "401", immediate=True, now=0)
    circuit.success("hipe")
    assert circuit.status("hipe").state == "closed"

    circuit.pause("hipe")
    circuit.success("hipe")
    assert circuit.status("hipe").state == "paused", "only an operator resumes"


def test_many_deliveries_are_counted_produced_once_each(state: State) -> None:
    marks = [("hipe", f"d{i}", "customers") for i in range(1200)] + [("propeller", "p1", None)]
    assert state.mark_produced_many(marks) == 1201
    assert state.mark_produced_many(marks[:10]) == 0, "already counted"
    assert state.counters("hipe") == {"produced": 1200, "customers.produced": 1200}
    assert state.counters("propeller") == {"produced": 1}
    assert not state.mark_produced("hipe", "d7", flow="customers"), "the same marker"


def test_a_batch_takes_and_gives_back_its_locks_together(state: State) -> None:
    keys = [state.keys.record_lock("propeller", "customer", f"C{i}") for i in range(5)]
    other = state.acquire(keys[2], ttl_s=30)
    tokens = state.acquire_many(keys, ttl_s=30)
    assert [t is not None for t in tokens] == [True, True, False, True, True]
    assert state.redis.get(keys[2]) == other, "a live holder keeps its lock"
    held = [(k, t) for k, t in zip(keys, tokens, strict=True) if t is not None]
    state.release_many([*held, (keys[2], "not-the-holder")])
    assert [state.redis.get(k) for k in keys] == [None, None, other, None, None]


def test_a_bulk_calls_successes_are_recorded_together(client: fakeredis.FakeRedis) -> None:
    keys = Keys("t")
    state = State(client, keys)
    engine = Engine(
        state=state,
        circuit=Circuit(client, keys),
        dlq=DeadLetterStore(client, keys),
        sinks=dict,
    )
    deliveries = [
        Delivery(
            event=ChangeEvent.create(
                flow="customers",
                source="erp",
                entity="customer",
                key=f"C{i}",
                operation="upsert",
                payload={"key": f"C{i}", "name": f"N{i}"},
                source_version=i + 1,
            ),
            target="propeller",
        )
        for i in range(3)
    ]
    previous = LedgerEntry(fingerprint="old", source_version=0, target_id="41")
    done = [
        (deliveries[0], ApplyResult("created", target_id="40"), None),
        (deliveries[1], ApplyResult("updated"), previous),
        (deliveries[2], ApplyResult("created", target_id="42"), None),
    ]
    assert engine.applied_many([*done, done[0]]) == ["applied"] * 4
    ledgers = [state.ledger_get("propeller", "customer", f"C{i}") for i in range(3)]
    assert [entry.target_id if entry else None for entry in ledgers] == ["40", "41", "42"]
    assert all(
        entry is not None and entry.fingerprint == d.event.fingerprint
        for entry, d in zip(ledgers, deliveries, strict=True)
    )
    counters = state.counters("propeller")
    assert counters["applied"] == 3, "a delivery recorded twice is counted once"
    assert (counters["customers.action_created"], counters["customers.action_updated"]) == (2, 1)
