"""Issue 17, must hold: a worker's deliveries are taken over in seconds when it dies or is
cut off from Redis, whatever the visibility timeout, and a worker that lost its lease
writes nothing more (real workers, real Redis, the sandbox over HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from tests.integration.engine.test_customers_flow import assert_accounted, seed
from tests.integration.pipeline import TARGETS, Pipeline
from tests.integration.verify import assert_targets_match_source
from workers.app import create_app
from workers.broker import Unacked

pytestmark = pytest.mark.integration

#: kombu's visibility timeout and the pump's lease, both far beyond the recovery asked for
TEN_MINUTES: dict[str, Any] = {
    "visibility_timeout_s": 600.0,
    "unacked_restore_interval_s": 10.0,
    "delivery_lease_s": 600.0,
    "lease_s": 15.0,
    "lock_ttl_s": 15.0,
}
#: slow writes and some failures on every target keep deliveries in a worker's hands
SLOW_WRITES = [
    {"methods": ["POST", "PUT", "PATCH"], "latency_ms": 3000},
    {"rate": 0.15, "statuses": [503], "methods": ["POST", "PUT", "PATCH"]},
]


def held(p: Pipeline) -> dict[str, dict[str, Any]]:
    """Per live worker: what its last lease renewal says it holds."""
    found: dict[str, dict[str, Any]] = {}
    for key in p.redis.scan_iter(match=f"{p.prefix}:lease:worker:*"):
        raw = p.redis.get(key)
        if raw:
            found[key.rsplit(":", 1)[-1]] = json.loads(raw)
    return found


def in_flight(p: Pipeline) -> int:
    return sum(p.redis.hlen(p.keys.inflight(t)) for t in TARGETS)


def still_unacked(p: Pipeline, tags: Iterable[str]) -> set[str]:
    unacked = Unacked(create_app(p.settings))
    try:
        return set(unacked.held(tags))
    finally:
        unacked.close()


def restarted(p: Pipeline, tasks: set[str]) -> dict[str, float]:
    times = p.redis.hmget(p.keys.restarted(), sorted(tasks))
    return {t: float(v) for t, v in zip(sorted(tasks), times, strict=True) if v is not None}


def test_a_killed_workers_started_and_prefetched_deliveries_run_again_within_60_s(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(worker=TEN_MINUTES)
    seed(p, 12)
    for system in TARGETS:
        p.faults(system, SLOW_WRITES)
    victim = p.start_worker()
    p.wait_workers(1)
    p.produce()

    # Wait until the victim holds deliveries it started and others it only prefetched.
    deadline = time.monotonic() + 60
    holding: dict[str, str] = {}
    while time.monotonic() < deadline:
        leases = held(p)
        holding = next(iter(leases.values()), {}).get("held", {}) if leases else {}
        if in_flight(p) >= 4 and len(holding) > in_flight(p):
            break
        time.sleep(0.2)
    started = in_flight(p)
    assert started >= 4, f"started {started}\n{p.worker_logs()}"
    assert len(holding) > started, f"held {len(holding)}, started {started}: none prefetched"

    killed_at = time.time()
    p.kill_worker(victim)  # SIGKILL
    # What it held at its death: its last renewal's list, less what it finished since.
    tasks = {task for tag, task in holding.items() if tag in still_unacked(p, holding)}
    assert len(tasks) > started / 2, (len(tasks), started)
    p.start_worker()
    p.wait_workers(1)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(restarted(p, tasks)) < len(tasks):
        time.sleep(0.5)
    again = restarted(p, tasks)
    assert set(again) == tasks, f"{len(tasks) - len(again)} of {len(tasks)} not running again"
    slowest = max(again.values()) - killed_at
    assert slowest < 60, f"the last held delivery ran again {slowest:.1f} s after the kill"
    assert sum(p.counters(t).get("reclaimed", 0) for t in TARGETS) >= len(tasks)

    p.wait_converged(timeout_s=180)
    for system in TARGETS:
        p.faults(system, None)
    assert_targets_match_source(p)  # every record once in every target
    for target in TARGETS:
        counters = p.flow_counters("customers", target)
        assert counters["applied"] == 12, (target, counters)  # each outcome exactly once
    assert_accounted(p)
