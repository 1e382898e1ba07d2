"""The shared rate limit reserves evenly spaced slots, with a margin below the target's limit.

The limiter reads the clock once per call; these tests give it a clock of their own, so what
they check is the arithmetic of the slots, not how fast a loaded machine runs the calls.
"""

from __future__ import annotations

import itertools
import types

import fakeredis
import httpx
import pytest

from delivery.http import RateLimitedTransport
from state import limits
from state.keys import Keys
from state.limits import PACING, RateLimiter
from tests.support import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(1_800_000_000.0)  # the limiter's time.time and time.sleep
    monkeypatch.setattr(limits, "time", types.SimpleNamespace(time=clock.time, sleep=clock.sleep))
    return clock


@pytest.fixture
def limiter(clock: Clock) -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(decode_responses=True), Keys("t"))


def test_waiting_callers_hold_consecutive_slots(limiter: RateLimiter, clock: Clock) -> None:
    interval = 1 / (10 * PACING)
    slots = []
    for asked_after in (0.0, 0.01, 0.0, 0.04):
        clock.now += asked_after
        slots.append(clock.now + limiter.reserve("propeller", rate_per_s=10))
    # Each slot is one interval after the previous one, whenever it was asked for.
    for earlier, later in itertools.pairwise(slots):
        assert later - earlier == pytest.approx(interval, abs=1e-6), slots


def test_the_margin_keeps_a_second_below_the_limit(limiter: RateLimiter) -> None:
    waits = [limiter.reserve("propeller", rate_per_s=10) for _ in range(11)]
    assert 0.9 <= PACING < 1
    assert waits[10] - waits[0] > 1.0, "the 11th request leaves more than a second after the 1st"


def test_a_slot_too_far_away_is_refused_and_not_reserved(limiter: RateLimiter) -> None:
    limiter.reserve("hipe", rate_per_s=1)
    second = limiter.reserve("hipe", rate_per_s=1)
    with pytest.raises(TimeoutError):
        limiter.reserve("hipe", rate_per_s=1, max_wait_s=second)
    third = limiter.reserve("hipe", rate_per_s=1)
    assert third == pytest.approx(2 / PACING, abs=0.05), "the refused call took no slot"


def test_slots_are_shared_by_workers_and_kept_per_target(limiter: RateLimiter) -> None:
    other = RateLimiter(limiter.redis, Keys("t"))
    assert limiter.reserve("atollon", rate_per_s=5) == 0
    assert other.reserve("atollon", rate_per_s=5) > 0, "another worker waits its turn"
    assert other.reserve("propeller", rate_per_s=5) == 0, "per target"


def test_requests_that_left_late_hold_back_the_next_ones(
    limiter: RateLimiter, clock: Clock
) -> None:
    # 2 per second: a window of 2 requests lasts 2 slots (1.05 s). The first left on time,
    # the second late (a busy host woke it 0.3 s after its slot): the third waits until the
    # first is a window old, and the fourth until the late one is, never sooner.
    window = 2 / (2 * PACING)
    began = clock.now
    assert limiter.clear_to_send("propeller", rate_per_s=2) == 0
    clock.now += 0.3
    assert limiter.clear_to_send("propeller", rate_per_s=2) == 0
    limiter.clear_to_send("propeller", rate_per_s=2)
    assert clock.now - began == pytest.approx(window, abs=1e-3)
    limiter.clear_to_send("propeller", rate_per_s=2)
    assert clock.now - began == pytest.approx(0.3 + window, abs=1e-3)
    assert limiter.redis.llen(limiter.sent_key("propeller")) == 2, "only a window's worth kept"


def test_on_time_requests_are_never_held_back_by_what_left(
    limiter: RateLimiter, clock: Clock
) -> None:
    # Callers that wake on their slots: the record of what left adds no wait, and more
    # than a window's worth (20) leave at the bucket's pace.
    began = clock.now
    for _ in range(25):
        limiter.acquire("hipe", rate_per_s=20)
    assert clock.now - began == pytest.approx(24 / (20 * PACING), abs=1e-3)


def test_a_429_s_retry_after_holds_every_worker_s_next_slot(limiter: RateLimiter) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0.5"}), httpx.Response(200)])
    transport = RateLimitedTransport(
        httpx.MockTransport(lambda request: next(answers)), limiter, "propeller", 10
    )
    with httpx.Client(transport=transport, base_url="https://propeller.test") as client:
        assert client.get("/companies").status_code == 429
    other = RateLimiter(limiter.redis, Keys("t"))  # another worker
    assert other.reserve("propeller", rate_per_s=10) == pytest.approx(0.5, abs=1e-3)
    assert other.reserve("hipe", rate_per_s=10) == 0, "per target"
