"""The shared rate limit reserves evenly spaced slots, with a margin below the target's limit.

The limiter reads the clock once per call; these tests give it a clock of their own, so what
they check is the arithmetic of the slots, not how fast a loaded machine runs the calls.
"""

from __future__ import annotations

import itertools
import time
import types

import fakeredis
import pytest

from erpsync.keys import Keys
from workers import limits
from workers.limits import PACING, RateLimiter


class Clock:
    """The limiter's ``time.time``, moved by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(limits, "time", types.SimpleNamespace(time=clock.time, sleep=time.sleep))
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
