"""Issue #6, must hold: Atollon billing items become ERP invoices exactly once.

Real Redis, real ``erpsync worker`` subprocesses and the sandbox over HTTP. Both simulators
are seeded with the same parameters, so the billing items refer to ERP customers and
products that exist (through their externalIds for the ``onlineerp`` system).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import pytest
from celery import Celery
from kombu import Producer as KombuProducer

from bench.stack import Pipeline
from erpsync.events import Delivery
from producers.base import Producer
from state.dlq import DeadLetter, DeadLetterStore
from state.publish import publish
from state.store import State
from tests.integration.billing.harness import (
    ACTIVITIES,
    BILLING_FLOW,
    TARGET,
    assert_invoiced_once,
    billing_stream_poll,
    customer_of,
    invoice_posts,
    invoices_by_reference,
    seed,
    wait_drained,
)

pytestmark = pytest.mark.integration


def test_50_activities_become_50_invoices_and_every_item_is_billed(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=BILLING_FLOW)
    activities = seed(p)
    p.start_worker()
    p.wait_workers(1)

    result = billing_stream_poll(p)
    assert result.events == ACTIVITIES
    p.wait_converged(targets=TARGET)

    assert_invoiced_once(p, activities)
    counters = p.counters("onlineerp")
    assert counters["applied"] == ACTIVITIES
    assert counters["action_invoiced"] == ACTIVITIES
    assert counters.get("dead_lettered", 0) == 0

    # Billed activities leave the work queue: a delete each, which cancels nothing.
    result = billing_stream_poll(p)
    assert (result.events, result.deleted) == (ACTIVITIES, ACTIVITIES)
    p.wait_converged(targets=TARGET)
    assert_invoiced_once(p, activities)
    assert billing_stream_poll(p).events == 0, "no change, no event"


class EveryMessageTwice:
    """Sends every task message twice: duplicate delivery of every delivery, made certain."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.sent = 0

    def producer_or_acquire(self, producer: KombuProducer | None = None) -> Any:
        return self.app.producer_or_acquire(producer)

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        self.app.send_task(*args, **kwargs)
        self.sent += 2
        return self.app.send_task(*args, **kwargs)


def slow_step_two_and_lost_invoice_answers(p: Pipeline) -> None:
    """Faults for a kill mid-saga."""
    # Step 2 hangs long enough that the worker is certainly mid-saga when it is killed; the
    # first three invoice POSTs lose their answer after the ERP acted on them (step 1's 412
    # path).
    p.faults(
        "atollon", [{"path": "/crab/crawler/billing", "methods": ["PUT"], "latency_ms": 15000}]
    )
    p.faults(
        "onlineerp",
        [
            {
                "path": "/api/Entity/CustomerInvoice",
                "methods": ["POST"],
                "drop_rate": 1.0,
                "drop_phase": "after",
                "count": 3,
            }
        ],
    )


def assert_mid_saga(p: Pipeline) -> None:
    """Wait for five invoices, then check none of their items is marked Billed yet."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(p.records("onlineerp", "CustomerInvoice")) < 5:
        time.sleep(0.1)
    invoiced = len(p.records("onlineerp", "CustomerInvoice"))
    billed = [
        item
        for a in p.records("atollon", "billing")
        for item in a["billingItems"]
        if item["billingStatus"] == "Billed"
    ]
    assert invoiced >= 5, "invoices exist"
    assert billed == [], "and none of their items is marked yet: the saga is between its steps"


def assert_each_lost_creation_recognised_by_412(p: Pipeline) -> None:
    """The three dropped answers: each lost creation was answered later by a 412."""
    # Which three POSTs lose their answer is timing: the first POST of a reference creates the
    # invoice, any later one (the delivery's retry, or its duplicate message) is refused with
    # 412, and the fault drops the answers of the first three to arrive, whichever kind. So
    # count what the ERP did: a stored invoice whose 201 was never answered is a lost
    # creation; the saga cannot have gone past it but through a 412 it was answered (a
    # checkpoint needs a step one that returned), so there is at least one such 412 each.
    posts = invoice_posts(p)
    assert posts["dropped"] == 3, posts
    lost = ACTIVITIES - posts["201"]
    assert lost >= 1, f"the first invoice POST creates, so a creation's answer was lost: {posts}"
    assert posts["412"] >= lost, (
        f"each lost creation was recognised by the ERP's 412, not invoiced again: {posts}"
    )


def test_a_worker_killed_between_invoice_and_status_and_every_message_twice_still_bill_once(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=BILLING_FLOW)
    activities = seed(p)
    slow_step_two_and_lost_invoice_answers(p)
    first = p.start_worker()
    p.wait_workers(1)

    service = p.producer
    twice = EveryMessageTwice(service.producer.app)
    producer = Producer(cast(Celery, twice), service.producer.redis, p.keys)
    (stream,) = service.streams
    result = producer.poll(stream)
    assert (result.events, twice.sent) == (ACTIVITIES, 2 * ACTIVITIES)

    assert_mid_saga(p)
    p.kill_worker(first)  # SIGKILL
    p.faults("atollon", None)
    p.faults("onlineerp", None)

    p.start_worker()
    p.wait_workers(1)
    p.wait_converged(timeout_s=240, targets=TARGET)

    assert_invoiced_once(p, activities)
    counters = p.counters("onlineerp")
    assert counters["produced"] == ACTIVITIES, "a duplicate message is the same delivery"
    assert counters["applied"] == ACTIVITIES
    assert counters.get("dead_lettered", 0) == 0
    assert_each_lost_creation_recognised_by_412(p)


def assert_unknown_customer_letter(entry: DeadLetter, victim: str) -> None:
    """A dependency dead letter naming the missing customer, with what to do."""
    assert (entry.target, entry.error_class, entry.code) == (
        "onlineerp",
        "dependency",
        "InvalidBody/Customer",
    )
    assert entry.hint is not None
    assert victim in entry.hint
    assert "must exist in the ERP" in entry.hint


def replays_of(p: Pipeline, entries: list[DeadLetter]) -> list[Delivery]:
    """The entries' deliveries as replays, their dead-lettered outcome forgotten."""
    state = State(p.redis, p.keys)
    replays: list[Delivery] = []
    for entry in entries:
        state.forget_outcome(
            entry.target, entry.delivery.delivery_id, "dead_lettered", flow=entry.flow
        )
        replays.append(entry.delivery.model_copy(update={"replay_of": entry.id}))
    return replays


def test_an_unknown_customer_is_dead_lettered_with_a_hint_then_replayed_and_invoiced_once(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=BILLING_FLOW, worker={"dependency_max_waits": 2})
    activities = seed(p)
    per_customer = Counter(customer_of(a) for a in activities)
    victim, affected = per_customer.most_common(1)[0]
    assert victim is not None
    assert affected >= 2
    with p.erp() as erp:
        answer = erp.get(f"/Entity/Customer/{victim}")
        answer.raise_for_status()
        customer = answer.json()
        erp.delete(f"/Entity/Customer/{victim}").raise_for_status()
    p.start_worker()
    p.wait_workers(1)

    assert billing_stream_poll(p).events == ACTIVITIES
    p.wait_converged(targets=TARGET)

    invoices = invoices_by_reference(p)
    assert len(invoices) == ACTIVITIES - affected
    dlq = DeadLetterStore(p.redis, p.keys)
    entries = list(dlq.iter_entries())
    assert len(entries) == affected
    for entry in entries:
        assert_unknown_customer_letter(entry, victim)
    waiting = [a for a in activities if customer_of(a) == victim]
    assert all(
        item["billingStatus"] == "ToBeInvoiced"
        for a in p.records("atollon", "billing")
        if a["activity"]["id"] in {w["activity"]["id"] for w in waiting}
        for item in a["billingItems"]
    ), "nothing marked Billed without an invoice"
    result = billing_stream_poll(p)
    assert (result.changed, result.deleted) == (0, ACTIVITIES - affected), (
        "the invoiced activities left the queue; a dead letter is not produced again"
    )
    p.wait_converged(targets=TARGET)

    with p.erp() as erp:
        erp.post("/Entity/Customer", json=customer).raise_for_status()
    replays = replays_of(p, entries)
    app = p.producer.producer.app
    publish(app, replays)
    p.wait_converged(targets=TARGET)

    assert_invoiced_once(p, activities)
    assert dlq.count() == 0, "the replayed entries are resolved"
    counters = p.counters("onlineerp")
    assert counters["action_invoiced"] == ACTIVITIES
    assert counters["action_unchanged"] == ACTIVITIES - affected, "the deletes did nothing"
    assert counters.get("dead_lettered", 0) == 0

    # An operator replaying the same entries again invoices nothing more.
    publish(app, replays)
    wait_drained(p)
    assert_invoiced_once(p, activities)
    assert p.counters("onlineerp")["action_invoiced"] == ACTIVITIES
