"""Issue 17: leases renewed while work goes on, fencing of a holder that lost them, and the
reclaimer (real Redis; the clock of the local checks is the test's own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fakeredis
import httpx
import pytest
import redis
from celery import Celery

from delivery.engine import ApplyContext, ApplyResult, Engine, Sink
from delivery.sinks import follow_ups
from erpsync.errors import DependencyError
from erpsync.events import ChangeEvent, Delivery
from erpsync.settings import Settings
from state.broker import Unacked
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.leases import FencedTransport, Heartbeat, LeaseLostError, Leases
from state.limits import Circuit
from state.messages import create_app, queue_for
from state.store import State
from tests.state.test_broker import Holder, send, tag
from tests.support import Clock, customer_event
from tests.support.engine import ScriptedSink

TTL_S = 15.0
LOCK = "lock:rec:hipe:customer:C1"


@pytest.fixture
def keys(run_id: str, request: pytest.FixtureRequest) -> Keys:
    return Keys(f"{run_id}lease{abs(hash(request.node.name)) % 10**8}")


@pytest.fixture
def state(redis_url: str, keys: Keys) -> Iterator[State]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield State(client, keys)
    for key in client.scan_iter(match=f"{keys.prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leases(state: State, clock: Clock) -> Iterator[Leases]:
    made = Leases(state, ttl_s=TTL_S, renew_every_s=3600, clock=clock)
    yield made
    made.stop()


def lock(state: State) -> str:
    return f"{state.keys.prefix}:{LOCK}"


def take(state: State, key: str) -> str:
    token = state.acquire(key, TTL_S)
    assert token is not None
    return token


def test_renewal_extends_only_locks_still_held_by_their_token(state: State, leases: Leases) -> None:
    mine, other = lock(state), lock(state) + "2"
    held = {mine: take(state, mine), other: take(state, other)}
    state.redis.pexpire(mine, 2000)
    state.redis.set(other, "someone-else", px=2000)  # taken over by another worker
    with leases.holding(held) as holding:
        leases.renew()
        assert state.redis.pttl(mine) > 10_000, "renewed to a whole lease"
        assert state.redis.pttl(other) <= 2000, "another holder's lock is not extended"
        assert holding.lost


def test_a_holder_that_lost_its_lock_writes_nothing_to_the_target(
    state: State, leases: Leases, clock: Clock
) -> None:
    key = lock(state)
    sent: list[str] = []

    def target(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(201, json={})

    http = httpx.Client(transport=FencedTransport(httpx.MockTransport(target), leases))
    with leases.holding({key: take(state, key)}):
        http.post("https://hipe.test/companies")  # held: no round trip needed
        clock.now += TTL_S / 2 + 1  # no renewal confirmed it for over half a lease
        http.post("https://hipe.test/companies")  # confirmed by one round trip
        state.redis.set(key, "someone-else", px=20_000)  # lapsed, taken over meanwhile
        http.get("https://hipe.test/companies")  # reading is harmless
        clock.now += TTL_S / 2 + 1
        with pytest.raises(LeaseLostError):
            http.patch("https://hipe.test/companies/1")
        with pytest.raises(LeaseLostError):
            leases.guard()  # nor does it record an outcome
    assert sent == ["POST", "POST", "GET"]
    http.post("https://hipe.test/companies")  # outside a delivery nothing is checked
    assert sent[-1] == "POST"


def test_a_bulk_call_s_follow_ups_are_fenced_by_the_caller_s_locks(
    state: State, leases: Leases, clock: Clock
) -> None:
    """The calls a bulk call leaves for after it run in threads of their own
    (delivery.sinks.follow_ups), in the caller's context: its locks fence their writes."""
    key = lock(state)
    sent: list[str] = []

    def target(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={})

    http = httpx.Client(transport=FencedTransport(httpx.MockTransport(target), leases))

    def patch(company: int) -> Callable[[], int]:
        return lambda: http.patch(f"https://hipe.test/companies/{company}").status_code

    with leases.holding({key: take(state, key)}):
        assert follow_ups.run_all([patch(1), patch(2)], lambda: None) == [200, 200]
        state.redis.set(key, "someone-else", px=20_000)  # lapsed, taken over meanwhile
        clock.now += TTL_S / 2 + 1
        with pytest.raises(LeaseLostError):
            follow_ups.run_all([patch(3)], lambda: None)
    assert sent == ["/companies/1", "/companies/2"]


def test_a_create_whose_answer_never_came_holds_the_next_holder_off(
    state: State, leases: Leases
) -> None:
    key, marker = lock(state), f"{state.keys.prefix}:doubt:hipe:customer:C1"
    first = take(state, key)
    with (
        pytest.raises(httpx.ReadTimeout),
        leases.create_in_doubt(key, marker, first, window_s=30),
    ):
        raise httpx.ReadTimeout("no answer")
    assert state.redis.get(marker) == first, "the create may still land"
    state.redis.delete(key)
    second = take(state, key)  # the first holder died; the next one looks up, finds nothing
    with (
        pytest.raises(DependencyError) as waited,
        leases.create_in_doubt(key, marker, second, window_s=30),
    ):
        pytest.fail("must not create while the first create may land")
    assert waited.value.vendor_code == "create-in-doubt"
    with pytest.raises(LeaseLostError):
        leases.create_in_doubt(key, marker, first, window_s=30)  # the first, back: fenced
    state.redis.delete(marker)  # the window is over
    with leases.create_in_doubt(key, marker, second, window_s=30):
        assert state.redis.get(marker) == second
    assert state.redis.get(marker) is None, "answered: nothing in doubt any more"


@pytest.fixture
def app(redis_url: str, keys: Keys, state: State) -> Iterator[Celery]:
    celery_app = create_app(Settings(redis_url=redis_url, key_prefix=keys.prefix))
    yield celery_app
    celery_app.close()


def test_the_reclaimer_gives_back_what_a_silent_worker_held_and_nothing_of_a_live_one(
    app: Celery, state: State
) -> None:
    for body in ("live", "dead"):
        send(app, body)
    live, dead = Holder(app), Holder(app)
    unacked = Unacked(app)
    try:
        (kept,) = live.take(1)
        (lost,) = dead.take(1)
        scores = unacked.held([tag(kept), tag(lost)])
        later = max(scores.values()) + TTL_S + 5
        beat = Heartbeat(unacked, state, worker="live", consumer=lambda: live, lease_s=TTL_S)
        assert beat.beat(now=later - 1) == {tag(kept): "task-live"}
        assert state.redis.exists(state.keys.worker_lease("live"))
        other = state.acquire(state.keys.reclaim_lock(), 10)  # another worker's reclaimer
        assert other is not None
        assert beat.reclaim(now=later) == 0, "one reclaimer at a time"
        state.release(state.keys.reclaim_lock(), other)
        assert beat.reclaim(now=later) == 1
        assert state.counters("hipe")["reclaimed"] == 1
        assert unacked.held([tag(kept)]), "the live worker keeps its message"
        assert state.redis.llen(f"{state.keys.prefix}:{queue_for('hipe')}") == 1
    finally:
        live.close()
        dead.close()
        unacked.close()


@dataclass
class TakenOverSink(ScriptedSink):
    """Its call takes longer than the lease: another worker takes the record over meanwhile."""

    redis: Any = None
    lease_clock: Clock | None = None

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        result = super().apply(event, context)
        self.redis.set(f"t:lock:rec:hipe:customer:{event.key}", "another-worker", px=20_000)
        assert self.lease_clock is not None
        self.lease_clock.now += TTL_S  # no renewal went through meanwhile (cut off, paused)
        return result


def test_a_worker_that_lost_its_lock_during_the_call_records_nothing() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keys, lease_clock = Keys("t"), Clock()
    state = State(client, keys)
    sink = TakenOverSink(redis=client, lease_clock=lease_clock)
    sinks: Mapping[str, Sink] = {"hipe": sink}
    engine = Engine(
        state=state,
        circuit=Circuit(client, keys),
        dlq=DeadLetterStore(client, keys),
        sinks=lambda: sinks,
        leases=Leases(state, ttl_s=TTL_S, renew_every_s=3600, clock=lease_clock),
    )
    delivery = Delivery(event=customer_event("C1"), target="hipe")
    with pytest.raises(LeaseLostError):
        engine.process(delivery)
    assert sink.applied == [("C1", delivery.event.fingerprint)], "the call was under way"
    assert state.ledger_get("hipe", "customer", "C1") is None, "no ledger written"
    assert state.counters("hipe") == {}, "no outcome, no retry counted"
    assert state.delayed_count() == 0, "nothing parked"
    assert client.get("t:lock:rec:hipe:customer:C1") == "another-worker", "its lock is intact"
