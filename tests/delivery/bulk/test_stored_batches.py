"""Stored batches: found by reference until done, counted once and pending, a malformed
delivery lost alone, the probe handed on, the pending index."""

from __future__ import annotations

from delivery.batch import BatchApplier
from delivery.engine import Engine
from erpsync.errors import (
    AuthError,
)
from erpsync.events import Delivery
from state.batches import BatchStore
from state.store import LedgerEntry
from tests.support import Clock
from tests.support.bulk import TARGET, BulkScriptedSink, batch, event


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
