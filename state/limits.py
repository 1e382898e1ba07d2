"""Per-target protections shared by every worker through Redis: rate limit and circuit.

* The **rate limit** is a token bucket in Redis (a Lua call per request), so that all
  workers on all hosts together stay under the target's allowed rate; Celery's own
  ``rate_limit`` is per worker and cannot do this. A caller that must wait *reserves* the
  next free slot (the bucket goes into debt) and sleeps until it, so requests leave exactly
  one interval apart however late each sleeper wakes, and no interval is lost to callers
  retrying at the same instant; the bucket refills at :data:`PACING` of the configured rate,
  leaving the target a margin for the jitter between taking a token and the request
  arriving (at exactly the limit, a late request followed by a prompt one lands in the same
  second as the ten before it, and a strict target answers 429). A late sleeper can still
  use up more than that margin (a busy host wakes a thread tens of milliseconds late), so
  the moment each request actually leaves is recorded too (a second Lua call): a request
  goes only when fewer than the limit's requests per window left in the last window, so a
  prompt request after a late one waits the difference (``RateLimiter.clear_to_send``).
* The **circuit** opens on authentication/configuration errors at once, or after a run of
  transient failures; while it is open the target's deliveries wait in the delayed set
  (no retry burned, no dead letter written). After the cool-down one delivery probes
  (half-open): success closes the circuit, failure opens it again for longer. Operators
  pause and resume a target by hand with the same mechanism.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from state.keys import Keys
from state.scripts import lua
from state.store import queue_script

CircuitState = Literal["closed", "open", "half_open", "paused"]

#: share of the configured rate the bucket refills at: 5% of each second (50 ms at any
#: rate) absorbs the scheduling jitter of a busy worker host without a 429
PACING = 0.95

# The bucket's tokens now, refilled since its last use (the start of every bucket script).
# KEYS[1] bucket hash; ARGV: rate per s, burst, now, then the script's own argument.
_REFILLED = lua("limits_refilled")

# Token bucket. ARGV[4]: cost. Returns 0 when a token was taken, else the seconds to wait
# for one.
_TAKE = lua("limits_refilled", "limits_take")

# Reserve a token. ARGV[4]: the longest wait. Returns the seconds to wait before using the
# token (0: at once), or -1 when that wait would be longer than allowed (then nothing is
# reserved). Tokens go below zero: each waiting caller holds the next slot, so slots are
# exactly 1/rate apart.
_RESERVE = lua("limits_refilled", "limits_reserve")

# The target said to wait (429 with Retry-After): no slot sooner than ARGV[4] seconds from
# now. Slots already reserved keep their turn.
_HOLD = lua("limits_refilled", "limits_hold")

# The moments the latest requests to a target left. KEYS[1] a list, newest first; ARGV: N
# (the requests allowed per window), the window in seconds, now. Returns 0 when this request
# may leave now (its moment is recorded), else the seconds until the N-th latest leaves the
# window.
_SEND = lua("limits_send")

# Half-open probe: when the circuit is open (or half-open with an expired lease) and its
# time is up, make this caller the probe. ARGV: now, lease end. Returns 1 when admitted.
_PROBE = lua("limits_probe")

# End a probe that brought no news of the target: if the circuit is still half-open under
# this probe's lease (ARGV[1]), the next caller may probe from now (ARGV[2]) on.
_END_PROBE = lua("limits_end_probe")

# A call went through. KEYS[1] the circuit hash. Closes an open or half-open circuit and
# ends a run of failures; a paused circuit stays paused (an operator paused it). Returns 1
# when something changed.
_SUCCESS = lua("limits_success")


class RateLimiter:
    """A token bucket per target shared by every worker."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._take = client.register_script(_TAKE)
        self._reserve = client.register_script(_RESERVE)
        self._send = client.register_script(_SEND)
        self._hold = client.register_script(_HOLD)

    def try_acquire(self, target: str, rate_per_s: float, burst: int = 1) -> float:
        """Take one token; returns 0.0 on success, else the seconds until one is free."""
        wait = self._take(keys=[self.keys.rate(target)], args=[rate_per_s, burst, time.time(), 1])
        return float(wait)

    def reserve(
        self, target: str, rate_per_s: float, burst: int = 1, *, max_wait_s: float = 60.0
    ) -> float:
        """Reserve the next slot at :data:`PACING` of ``rate_per_s``; the seconds until it.

        Raises TimeoutError, reserving nothing, when the slot is more than ``max_wait_s``
        away.
        """
        wait = float(
            self._reserve(
                keys=[self.keys.rate(target)],
                args=[rate_per_s * PACING, burst, time.time(), max_wait_s],
            )
        )
        if wait < 0:
            raise TimeoutError(f"rate limit of {target} did not free a slot in {max_wait_s:g} s")
        return wait

    def acquire(
        self, target: str, rate_per_s: float, burst: int = 1, *, max_wait_s: float = 60.0
    ) -> float:
        """Block until this caller's slot (used before every request to a limited target),
        then, without bursts, until the requests that actually left allow it; returns the
        seconds waited."""
        wait = self.reserve(target, rate_per_s, burst, max_wait_s=max_wait_s)
        if wait > 0:
            time.sleep(wait)
        if burst <= 1:
            wait = max(0.0, wait) + self.clear_to_send(target, rate_per_s)
        return max(0.0, wait)

    def clear_to_send(self, target: str, rate_per_s: float) -> float:
        """Block until fewer than the limit's requests per window left in the last window,
        then record this one as leaving now; returns the seconds waited.

        The window holds ``N = max(1, floor(rate_per_s))`` requests and lasts ``N`` slots of
        :meth:`reserve` (1.05 s for 10 per second): a caller woken on time never waits here,
        one that follows a late one waits until the late one is a window old.
        """
        allowed = max(1, math.floor(rate_per_s))
        window = allowed / (rate_per_s * PACING)
        waited = 0.0
        while True:
            wait = float(
                self._send(keys=[self.sent_key(target)], args=[allowed, window, time.time()])
            )
            if wait <= 0:
                return waited
            time.sleep(wait)
            waited += wait

    def hold(self, target: str, rate_per_s: float, seconds: float, burst: int = 1) -> None:
        """The target answered 429 with ``Retry-After``: every worker's next slot is at least
        ``seconds`` away (slots already reserved keep their turn)."""
        self._hold(
            keys=[self.keys.rate(target)],
            args=[rate_per_s * PACING, burst, time.time(), max(0.0, seconds)],
        )

    def sent_key(self, target: str) -> str:
        """List: when the latest requests to ``target`` left (epoch seconds, newest first)."""
        return f"{self.keys.rate(target)}:sent"


@dataclass(frozen=True)
class CircuitStatus:
    """A target's circuit as stored in Redis."""

    state: CircuitState
    until: float = 0.0
    reason: str = ""
    failures: int = 0
    openings: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "until": self.until,
            "reason": self.reason,
            "failures": self.failures,
            "openings": self.openings,
        }


class Circuit:
    """Open, half-open and closed, per target, shared by every worker."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 15.0,
        cooldown_max_s: float = 300.0,
        probe_lease_s: float = 30.0,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.cooldown_max_s = cooldown_max_s
        self.probe_lease_s = probe_lease_s
        self._probe = client.register_script(_PROBE)
        self._end_probe = client.register_script(_END_PROBE)
        self._success = client.register_script(_SUCCESS)

    def status(self, target: str) -> CircuitStatus:
        raw: dict[str, str] = self.redis.hgetall(self.keys.circuit(target))  # type: ignore[assignment]
        if not raw:
            return CircuitStatus("closed")
        return CircuitStatus(
            state=raw.get("state", "closed"),  # type: ignore[arg-type]
            until=float(raw.get("until", "0") or 0),
            reason=raw.get("reason", ""),
            failures=int(raw.get("failures", "0") or 0),
            openings=int(raw.get("openings", "0") or 0),
        )

    def admit(self, target: str, now: float | None = None) -> float:
        """0.0 when a delivery may go to the target now, else seconds to wait.

        When an open circuit's cool-down has passed, exactly one caller is admitted as the
        probe (half-open, leased so that a probe that dies frees the slot).
        """
        return self.admit_lease(target, now)[0]

    def admit_lease(self, target: str, now: float | None = None) -> tuple[float, float | None]:
        """Like :meth:`admit`, with the lease end when this caller is the probe.

        The probe hands the lease back with :meth:`end_probe` once it is done.
        """
        now = time.time() if now is None else now
        status = self.status(target)
        if status.state == "closed":
            return 0.0, None
        if status.state == "paused":
            return 5.0, None
        if now < status.until:
            return status.until - now, None
        # Cool-down over (or a probe's lease expired): one caller becomes the probe.
        lease = now + self.probe_lease_s
        admitted = self._probe(keys=[self.keys.circuit(target)], args=[now, lease])
        return (0.0, lease) if int(admitted) else (0.5, None)

    def end_probe(self, target: str, lease: float, now: float | None = None) -> bool:
        """The probe is done; if it brought no news, the next delivery probes at once.

        A probe that succeeded closed the circuit and one that failed opened it again; one
        that never reached the target (a parent to wait for, a stale or unchanged change, a
        busy record) or whose data the target refused leaves it half-open, and without
        this every delivery of the target would wait for the whole lease (30 s), again
        and again. Returns True when the slot was handed on.
        """
        now = time.time() if now is None else now
        ended = self._end_probe(keys=[self.keys.circuit(target)], args=[lease, now])
        return bool(ended)

    def success(self, target: str, *, client: Any = None) -> None:
        """A call went through: close the circuit and reset the failure run.

        One atomic step (``client``: a pipeline to queue it on, e.g. with the ledger write).
        """
        if client is None:
            self._success(keys=[self.keys.circuit(target)])
        else:
            queue_script(client, self._success, [self.keys.circuit(target)], [])

    def failure(
        self, target: str, reason: str, *, immediate: bool = False, now: float | None = None
    ) -> bool:
        """Record a failure; opens the circuit (returns True) at the threshold or at once."""
        now = time.time() if now is None else now
        key = self.keys.circuit(target)
        status = self.status(target)
        if status.state == "paused":
            return False
        failures = int(self.redis.hincrby(key, "failures", 1))
        if not immediate and status.state == "closed" and failures < self.failure_threshold:
            return False
        openings = status.openings + 1
        cooldown = min(self.cooldown_max_s, self.cooldown_s * (2 ** min(openings - 1, 10)))
        self.redis.hset(
            key,
            mapping={
                "state": "open",
                "until": str(now + cooldown),
                "reason": reason[:300],
                "openings": str(openings),
            },
        )
        return True

    def pause(self, target: str, reason: str = "paused by an operator") -> None:
        self.redis.hset(
            self.keys.circuit(target),
            mapping={"state": "paused", "until": "0", "reason": reason, "failures": "0"},
        )

    def resume(self, target: str) -> None:
        self.redis.hset(
            self.keys.circuit(target),
            mapping={
                "state": "closed",
                "until": "0",
                "reason": "",
                "failures": "0",
                "openings": "0",
            },
        )


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
