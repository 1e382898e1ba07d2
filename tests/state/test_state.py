"""Ledger, locks, delayed set and accounting (fakeredis with Lua)."""

from __future__ import annotations

import random
import subprocess
import sys

import fakeredis
import pytest
import redis

from delivery.policy import RetryPolicy
from state.keys import Keys
from state.limits import Circuit, RateLimiter
from state.store import HOST, LedgerEntry, State


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def state(client: fakeredis.FakeRedis) -> State:
    return State(client, Keys("t"))


def test_ledger_round_trip(state: State) -> None:
    assert state.ledger_get("hipe", "customer", "C1") is None
    entry = LedgerEntry(fingerprint="f1", source_version=3, target_id="42", applied_at=1.5)
    state.ledger_put("hipe", "customer", "C1", entry)
    assert state.ledger_get("hipe", "customer", "C1") == entry
    assert state.ledger_get("propeller", "customer", "C1") is None, "ledgers are per target"


def test_lock_is_exclusive_until_released(state: State) -> None:
    token = state.acquire("t:lock", ttl_s=30)
    assert token is not None
    assert state.acquire("t:lock", ttl_s=30) is None
    state.release("t:lock", "someone-else")
    assert state.acquire("t:lock", ttl_s=30) is None, "only the holder's token releases"
    state.release("t:lock", token)
    assert state.acquire("t:lock", ttl_s=30) is not None


def test_lock_of_a_dead_process_on_this_host_is_taken_over(
    state: State, client: fakeredis.FakeRedis
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    client.set("t:lock", f"{HOST}:{dead.stdout.strip()}:abcd", px=60_000)
    assert state.acquire("t:lock", ttl_s=30) is not None
    client.set("t:lock2", "otherhost:1:abcd", px=60_000)
    assert state.acquire("t:lock2", ttl_s=30) is None, "another host's holder is trusted"


def test_delayed_set_claims_only_due_members_once(state: State) -> None:
    state.schedule({"n": 1}, due_at=100.0)
    state.schedule({"n": 2}, due_at=200.0)
    assert state.claim_due(now=150.0) == ['{"n":1}']
    assert state.claim_due(now=150.0) == [], "a claimed member is not claimed twice"
    assert state.delayed_count() == 2, "claimed but not yet re-published still counts"
    state.done(['{"n":1}'])
    assert state.delayed_count() == 1


def test_claims_of_a_dead_pump_are_recovered(state: State) -> None:
    state.schedule({"n": 1}, due_at=100.0)
    assert state.claim_due(now=100.0) == ['{"n":1}']
    assert state.recover_claims(older_than_s=60, now=130.0) == 0
    assert state.recover_claims(older_than_s=60, now=200.0) == 1
    assert state.claim_due(now=200.0) == ['{"n":1}']


def test_outcomes_are_counted_once_per_delivery(state: State) -> None:
    assert state.mark_produced("hipe", "d1")
    assert not state.mark_produced("hipe", "d1")
    assert state.record_outcome("hipe", "d1", "applied")
    assert not state.record_outcome("hipe", "d1", "skipped"), "a redelivery is not counted"
    assert state.counters("hipe") == {"produced": 1, "applied": 1}


def test_forgetting_a_dead_letter_lets_its_replay_count(state: State) -> None:
    state.mark_produced("hipe", "d1")
    state.record_outcome("hipe", "d1", "dead_lettered")
    assert not state.forget_outcome("hipe", "d1", "applied"), "only the outcome it had"
    assert state.forget_outcome("hipe", "d1", "dead_lettered")
    assert state.record_outcome("hipe", "d1", "applied")
    assert state.counters("hipe") == {"produced": 1, "applied": 1, "dead_lettered": 0}


def test_versions_are_reserved_in_blocks(state: State) -> None:
    assert state.next_versions("onlineerp", "customer", 3) == 1
    assert state.next_versions("onlineerp", "customer", 2) == 4


def test_rate_limiter_shares_one_bucket(client: fakeredis.FakeRedis) -> None:
    limiter = RateLimiter(client, Keys("t"))
    assert limiter.try_acquire("propeller", rate_per_s=10, burst=2) == 0
    assert limiter.try_acquire("propeller", rate_per_s=10, burst=2) == 0
    wait = limiter.try_acquire("propeller", rate_per_s=10, burst=2)
    assert 0 < wait <= 0.1 + 1e-6
    other = RateLimiter(client, Keys("t"))
    assert other.try_acquire("propeller", rate_per_s=10, burst=2) > 0, "shared by workers"
    assert other.try_acquire("hipe", rate_per_s=10, burst=2) == 0, "per target"


def test_circuit_opens_after_a_run_of_failures_and_probes_once(client: fakeredis.FakeRedis) -> None:
    circuit = Circuit(client, Keys("t"), failure_threshold=3, cooldown_s=10)
    assert circuit.admit("hipe", now=0) == 0
    assert not circuit.failure("hipe", "503", now=0)
    assert not circuit.failure("hipe", "503", now=0)
    assert circuit.failure("hipe", "503", now=0)
    assert circuit.status("hipe").state == "open"
    assert circuit.admit("hipe", now=5) == pytest.approx(5)
    assert circuit.admit("hipe", now=11) == 0, "the first caller after the cool-down probes"
    assert circuit.admit("hipe", now=11) > 0, "a second caller waits for the probe"
    circuit.success("hipe")
    assert circuit.status("hipe").state == "closed"
    assert circuit.admit("hipe", now=12) == 0


def test_auth_failure_opens_at_once_and_failed_probe_waits_longer(
    client: fakeredis.FakeRedis,
) -> None:
    circuit = Circuit(client, Keys("t"), failure_threshold=5, cooldown_s=10)
    assert circuit.failure("propeller", "401", immediate=True, now=0)
    assert circuit.admit("propeller", now=10) == 0
    assert circuit.failure("propeller", "401", immediate=True, now=10)
    assert circuit.status("propeller").until == pytest.approx(30), "cool-down doubles"


def test_pause_holds_until_resume(client: fakeredis.FakeRedis) -> None:
    circuit = Circuit(client, Keys("t"))
    circuit.pause("hipe")
    assert circuit.admit("hipe", now=1e12) > 0
    circuit.success("hipe")
    assert circuit.status("hipe").state == "paused", "success does not resume a pause"
    circuit.resume("hipe")
    assert circuit.admit("hipe") == 0


def test_backoff_uses_full_jitter_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(transient_base_s=1, transient_cap_s=8)
    rng = random.Random(1)
    delays = [policy.transient_delay(10, None, rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in delays)
    assert max(delays) > 6, "spread over the whole range"
    assert min(delays) < 2, "spread over the whole range"
    assert policy.transient_delay(1, 30.0, rng) >= 30.0


def test_a_lock_is_given_back_through_a_redis_restart(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A producer's poll ends while Redis restarts: its stream lock must not stay taken
    for its TTL (5 minutes of no polls) though the producer lives on."""
    token = state.acquire("t:lock:stream", ttl_s=300)
    assert token is not None
    release = state._release
    failures = [redis.ConnectionError("Connection refused")] * 2

    def flaky(*, keys: list[str], args: list[str]) -> object:
        if failures:
            raise failures.pop()
        return release(keys=keys, args=args)

    monkeypatch.setattr(state, "_release", flaky)
    monkeypatch.setattr("state.store.time.sleep", lambda _s: None)
    state.release("t:lock:stream", token)
    assert state.acquire("t:lock:stream", ttl_s=300) is not None, "given back once Redis was"


def test_a_lock_release_gives_up_when_redis_stays_away(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**_kwargs: object) -> object:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(state, "_release", down)
    with pytest.raises(redis.ConnectionError):
        state.release("t:lock:stream", "token", patience_s=0)
