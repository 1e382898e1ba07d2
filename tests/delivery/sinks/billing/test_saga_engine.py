"""The billing saga through the real engine on fakeredis: a failed or lost step retried from
its checkpoint, an unknown customer dead-lettered with a hint then replayed once."""

from __future__ import annotations

import fakeredis
import httpx
import pytest

from delivery.sinks.onlineerp import SagaProgress
from erpsync.errors import TransientError
from erpsync.events import Delivery
from tests.support.billing_sink import (
    ACTIVITY,
    ITEMS,
    World,
    context,
    event,
    make_engine,
    make_sink,
    payload,
    steps,
)


def test_a_failed_step_two_is_retried_from_the_checkpoint(
    redis_client: fakeredis.FakeRedis,
) -> None:
    world = World(atollon_failures=[httpx.Response(503, json={"result": "FAIL"})])
    engine = make_engine(redis_client, make_sink(world))
    delivery = Delivery(event=event(payload()), target="onlineerp")

    assert engine.process(delivery) == "parked", "Atollon answered 503: retried later"
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    progress = SagaProgress.parse(ledger.extra)
    assert progress is not None
    assert progress.step == "recorded", "both invoices are checkpointed before step 3"

    world.log.clear()
    assert engine.process(delivery) == "applied"
    assert steps(world) == ["atollon:billed"], "the retry went back to neither invoice"
    assert len(world.atollon_invoices) == 1
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    assert ledger.target_id == "00000001"
    assert ledger.fingerprint == delivery.event.fingerprint

    assert engine.process(delivery) == "skipped", "a duplicate delivery does nothing"
    assert len(world.invoices) == 1


def test_a_lost_answer_of_step_two_is_found_by_number_not_posted_again(
    redis_client: fakeredis.FakeRedis,
) -> None:
    world = World(lose_record_answers=1)
    engine = make_engine(redis_client, make_sink(world))
    delivery = Delivery(event=event(payload()), target="onlineerp")

    assert engine.process(delivery) == "parked", "the lost answer is a transient failure"
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    progress = SagaProgress.parse(ledger.extra)
    assert progress is not None
    assert progress.step == "recording"
    assert world.billed == {}

    world.log.clear()
    assert engine.process(delivery) == "applied"
    assert steps(world) == ["erp:get", "atollon:find", "atollon:billed"]
    assert len(world.invoices) == len(world.atollon_invoices) == 1
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    done = SagaProgress.parse(ledger.extra)
    assert done is not None
    assert (done.step, done.atollon_invoice_id) == ("billed", "A1")


def test_an_unknown_customer_is_dead_lettered_with_the_hint_then_replayed_once(
    redis_client: fakeredis.FakeRedis,
) -> None:
    world = World(customers=set())
    engine = make_engine(redis_client, make_sink(world))
    delivery = Delivery(event=event(payload()), target="onlineerp")
    assert engine.process(delivery) == "parked", "first it waits for the customer"
    assert engine.process(delivery) == "dead_lettered"
    (entry,) = engine.dlq.iter_entries()
    assert entry.error_class == "dependency"
    assert "C000042" in (entry.hint or "")

    world.customers.add("C000042")
    replay = entry.delivery.model_copy(update={"replay_of": entry.id})
    assert engine.process(replay) == "applied"
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert engine.dlq.count() == 0, "the replayed entry is resolved"


def test_a_transient_erp_failure_is_retried(redis_client: fakeredis.FakeRedis) -> None:
    world = World()
    calls = {"n": 0}

    def robot_offline_once(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, json={"Message": "robot", "Code": "RobotOffline"})
        return world.erp(request)

    sink = make_sink(world, erp=robot_offline_once)
    with pytest.raises(TransientError):
        sink.apply(event(payload()), context(world))
    assert world.billed == {}
    sink.apply(event(payload()), context(world))
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
