"""Issue 8: no delivery is lost in the broker's windows (real Redis, real kombu messages).

kombu's Redis transport takes a message off its queue (``BRPOP``) before it records it as
unacknowledged (``QoS.append``), so a worker SIGKILLed between the two, or a Redis that
stops between them, loses the message: nothing in Celery or kombu ever sends it again. The
tests below put a delivery exactly there (popped as kombu pops it, then never recorded)
and check that the pump's sweep sends it again once its lease is over, and never sends
again a delivery that is merely waiting in its queue, parked, or at its outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from erpsync.events import Delivery
from erpsync.settings import Settings
from state import publish as publishing
from state.broker import deliveries_of_message, queue_keys
from state.keys import Keys
from state.messages import TASK_APPLY, create_app
from state.publish import SENT_AT, publish, publish_raw
from state.pump import Pump
from state.store import State
from tests.support import Clock, customer_event

LEASE_S = 60.0
T0 = 1_000_000_000.0  # long past: whatever is due then is due now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(T0)  # the publishers' clock (sent-at headers, pending records)
    monkeypatch.setattr(publishing, "clock", fake)
    return fake


@pytest.fixture
def keys(run_id: str, request: pytest.FixtureRequest) -> Keys:
    return Keys(f"{run_id}pump{abs(hash(request.node.name)) % 10**8}")


@pytest.fixture
def client(redis_url: str, keys: Keys) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    for key in connection.scan_iter(match=f"{keys.prefix}:*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def app(redis_url: str, keys: Keys) -> Iterator[Celery]:
    celery_app = create_app(Settings(redis_url=redis_url, key_prefix=keys.prefix))
    yield celery_app
    celery_app.close()


@pytest.fixture
def state(client: redis.Redis, keys: Keys) -> State:
    return State(client, keys)


@pytest.fixture
def pump(app: Celery, state: State) -> Pump:
    return Pump(app, state, targets=["hipe"], lease_s=LEASE_S)


def delivery(key: str, version: int = 1) -> Delivery:
    return Delivery(event=customer_event(key, name=f"Name {key}", version=version), target="hipe")


def queue(state: State) -> str:
    return queue_keys(state.keys, "hipe")[0]


def queued(state: State) -> list[str]:
    """Delivery ids in hipe's queue, next in line first."""
    raws = state.redis.lrange(queue(state), 0, -1)
    ids: list[str] = []
    for raw in reversed(raws):
        ids += [Delivery.model_validate(d).delivery_id for d in deliveries_of_message(raw)]
    return ids


def lose_next(state: State) -> str:
    """What a worker SIGKILLed inside kombu's window does: pop the next message, record
    nothing. Returns the delivery id it carried."""
    popped: Any = state.redis.brpop([queue(state)], timeout=1)
    assert popped is not None
    (only,) = deliveries_of_message(popped[1])
    return Delivery.model_validate(only).delivery_id


def test_every_message_says_when_it_was_sent_and_every_delivery_is_pending(
    app: Celery, state: State, clock: Clock
) -> None:
    d = delivery("C1")
    publish(app, [d], state=state)
    raw: Any = state.redis.lindex(queue(state), -1)
    assert json.loads(raw)["headers"][SENT_AT] == T0
    assert state.redis.zscore(state.keys.pending("hipe"), d.delivery_id) == T0
    stored: Any = state.redis.hget(state.keys.pending_payload("hipe"), d.delivery_id)
    assert Delivery.model_validate_json(stored) == d


def test_a_delivery_popped_by_a_worker_killed_before_kombu_recorded_it_is_sent_again(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    d = delivery("C1")
    publish(app, [d], state=state)
    assert lose_next(state) == d.delivery_id
    assert not state.redis.hlen(f"{state.keys.prefix}:unacked"), "kombu never recorded it"

    assert pump.sweep(now=T0 + LEASE_S - 1) == 0, "not before its lease is over"
    assert queued(state) == []
    assert pump.sweep(now=T0 + LEASE_S) == 1
    assert queued(state) == [d.delivery_id]
    assert state.counters("hipe")["resent_overdue"] == 1
    assert pump.sweep(now=T0 + LEASE_S + 1) == 0, "sent again once per lease, not per sweep"
    assert pump.sweep(now=T0 + 2 * LEASE_S + 1) == 0, "…nor while its copy waits in line"


def test_a_delivery_waiting_in_its_queue_is_never_sent_again_however_long_it_waits(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    backlog = [delivery(f"C{n}") for n in range(5)]
    publish(app, backlog, state=state)
    assert pump.sweep(now=T0 + 100 * LEASE_S) == 0
    assert queued(state) == [d.delivery_id for d in backlog], "no duplicate of a backlog"


def test_a_lost_delivery_is_sent_again_once_every_message_sent_after_it_left_the_queue(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    first, later = delivery("C1"), delivery("C2")
    publish(app, [first], state=state)
    clock.now = T0 + 0.5
    publish(app, [later], state=state)  # sent within the margin: it may have overtaken
    lost = lose_next(state)
    assert lost == first.delivery_id
    assert pump.sweep(now=T0 + 10 * LEASE_S) == 0, "the next in line was sent with it"
    assert queued(state) == [later.delivery_id]

    clock.now = T0 + 30.0
    third = delivery("C3")
    publish(app, [third], state=state)
    assert lose_next(state) == later.delivery_id  # a second worker killed in the window
    # the next in line was sent well after both: both are out of the queue, both resent
    assert pump.sweep(now=T0 + 10 * LEASE_S) == 2
    assert sorted(queued(state)[1:]) == sorted([first.delivery_id, later.delivery_id])
    assert queued(state)[0] == third.delivery_id


def test_a_message_without_a_sent_time_at_the_head_stops_the_sweep_of_its_queue(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    d = delivery("C1")
    publish(app, [d], state=state)
    lose_next(state)
    with app.producer_or_acquire() as producer:  # a publisher that does not say when
        app.send_task(TASK_APPLY, args=[delivery("C9").model_dump(mode="json")],
                      queue="sync.hipe", producer=producer)  # fmt: skip
    assert pump.sweep(now=T0 + 10 * LEASE_S) == 0, "cannot tell: nothing is taken as lost"


def test_started_parked_and_finished_deliveries_are_not_sent_again(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    started, parked, applied = delivery("C1"), delivery("C2"), delivery("C3")
    publish(app, [started, parked, applied], state=state)
    for _ in range(3):
        lose_next(state)  # taken by workers (as kombu takes them), the queue is empty

    # a worker starts one a while later: its lease runs from then
    state.start("hipe", "customer", "C1", started.delivery_id, now=T0 + 50, lock_ttl_s=30)
    # one is parked until much later: its lease runs from when it is due
    state.schedule(parked.model_dump(mode="json"), T0 + 500)
    # one reaches its outcome: it is pending no more
    state.record_outcome("hipe", applied.delivery_id, "applied")

    assert pump.sweep(now=T0 + LEASE_S + 10) == 0
    assert pump.sweep(now=T0 + LEASE_S + 50) == 1, "the started one, its worker long gone"
    assert queued(state) == [started.delivery_id]
    state.redis.delete(queue(state))
    state.record_outcome("hipe", started.delivery_id, "applied")  # its copy was applied
    assert pump.sweep(now=T0 + 500 + LEASE_S - 1) == 0, "the parked one is not due yet"
    # the delayed set lost it (it cannot, but the lease does not rely on it)
    state.redis.delete(state.keys.delayed())
    assert pump.sweep(now=T0 + 500 + LEASE_S) == 1
    assert queued(state) == [parked.delivery_id]
    assert state.pending_count("hipe") == 1, "still pending: no outcome yet"


def test_a_parked_delivery_sent_back_by_the_pump_is_pending_from_then(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    d = delivery("C1")
    publish(app, [d], state=state)
    lose_next(state)
    d.attempt = 1
    state.schedule(d.model_dump(mode="json"), T0 + 5)
    clock.now = T0 + 5
    assert pump.run_once() == 1
    assert queued(state) == [d.delivery_id]
    assert state.redis.zscore(state.keys.pending("hipe"), d.delivery_id) == T0 + 5
    stored: Any = state.redis.hget(state.keys.pending_payload("hipe"), d.delivery_id)
    assert Delivery.model_validate_json(stored).attempt == 1, "the copy it would resend"
    lose_next(state)  # lost again on its way back
    assert pump.sweep(now=T0 + 5 + LEASE_S) == 1
    assert queued(state) == [d.delivery_id]


def test_two_pumps_send_a_lost_delivery_again_once(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    publish(app, [delivery("C1"), delivery("C2")], state=state)
    lose_next(state)
    lose_next(state)
    other = Pump(app, state, targets=["hipe"], lease_s=LEASE_S)
    assert pump.sweep(now=T0 + LEASE_S) + other.sweep(now=T0 + LEASE_S) == 2
    assert len(queued(state)) == 2


def test_a_claim_of_the_same_content_taken_again_is_not_forgotten_by_the_first_pump(
    app: Celery, state: State, clock: Clock
) -> None:
    member = json.dumps(delivery("C1").model_dump(mode="json"), sort_keys=True)
    state.redis.zadd(state.keys.delayed(), {member: T0})
    assert state.claim_due(now=T0 + 1) == [member]  # pump A takes it...
    # ...a worker finds the record busy and parks it again, unchanged; pump B takes it
    state.redis.zadd(state.keys.delayed(), {member: T0 + 1})
    assert state.claim_due(now=T0 + 2) == [member]
    state.done([member], claimed_at=T0 + 1)  # pump A is done with its copy
    assert state.redis.zscore(state.keys.delayed_claimed(), member) == T0 + 2, (
        "pump B's claim stands: were B killed now, its claim would be recovered"
    )
    state.done([member], claimed_at=T0 + 2)
    assert state.redis.zcard(state.keys.delayed_claimed()) == 0


def test_the_pump_sends_back_a_parked_delivery_and_forgets_its_claim(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    d = delivery("C1")
    state.schedule(d.model_dump(mode="json"), time.time() - 1)
    assert pump.run_once() == 1
    assert queued(state) == [d.delivery_id]
    assert state.redis.zcard(state.keys.delayed_claimed()) == 0
    assert publish_raw(app, []) == 0


def test_pending_deliveries_survive_a_redis_restart_and_a_message_lost_in_it_is_resent(
    clock: Clock, tmp_path: Any
) -> None:
    """Redis stopped (SIGTERM, append-only file) right after a worker popped a message and
    before kombu recorded it: the message is gone with the connection, its record is not."""
    from cli.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(appendonly=True, directory=tmp_path / "redis") as server:
        keys = Keys("restart")
        connection = redis.Redis.from_url(server.url, decode_responses=True)
        celery_app = create_app(Settings(redis_url=server.url, key_prefix=keys.prefix))
        try:
            state = State(connection, keys)
            d = delivery("C1")
            publish(celery_app, [d], state=state)
            assert lose_next(state) == d.delivery_id
            server.restart()
            sweeper = Pump(celery_app, state, targets=["hipe"], lease_s=LEASE_S)
            assert sweeper.sweep(now=T0 + LEASE_S) == 1
            assert queued(state) == [d.delivery_id]
        finally:
            celery_app.close()
            connection.close()


def test_a_replayed_dead_letter_is_pending_and_not_counted_again(
    app: Celery, state: State, pump: Pump, clock: Clock
) -> None:
    """`erpsync dlq replay` sends with count=False: lost on its way, it is sent again."""
    d = delivery("C1")
    publish(app, [d], state=state, count=False)
    assert "produced" not in state.counters("hipe"), "counted when it was first produced"
    lose_next(state)
    assert pump.sweep(now=T0 + LEASE_S) == 1
