"""Issue 17, must hold: a worker's deliveries are taken over in seconds when it dies or is
cut off from Redis, whatever the visibility timeout, and a worker that lost its lease
writes nothing more (real workers, real Redis, the sandbox over HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import tomli_w

from bench.stack import TARGETS, Pipeline
from bench.tcp_proxy import TcpProxy
from state.broker import Unacked
from state.leases import first_restarts
from state.messages import create_app
from tests.integration.billing.harness import assert_invoiced_once
from tests.integration.checks import assert_targets_match_source
from tests.integration.engine.test_customers_flow import assert_accounted, seed

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
    """When each of ``tasks`` first started again (given back to its queue)."""
    entries = [str(e) for e in p.redis.lrange(p.keys.restarted(), 0, -1)]
    return first_restarts(entries, tasks, since=0.0)


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


#: the customers and the billing flows (ERP invoices are create-only: one per activity)
FLOWS: dict[str, Any] = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(TARGETS),
        "mapping": {"hipe": {}, "propeller": {}, "atollon": {}},
    },
    "billing": {
        "source": "atollon",
        "entity": "billing",
        "targets": ["onlineerp"],
        "mapping": {"onlineerp": {"fields": {"activity_status": "Invoiced"}}},
    },
}
CUT_OFF_S = 60.0
WRITES = (b"POST ", b"PUT ", b"PATCH ", b"DELETE ")


def where(p: Pipeline) -> str:
    """Where the deliveries are: counters, queues, locks (for a failure's message)."""
    every = (*TARGETS, "onlineerp")
    counters = {t: {k: v for k, v in p.counters(t).items() if "." not in k} for t in every}
    queues = {t: p.redis.llen(f"{p.prefix}:sync.{t}") for t in every}
    held = sorted(p.redis.scan_iter(match=f"{p.prefix}:lock:rec:*"))
    delayed = p.redis.zcard(p.keys.delayed())
    return f"counters {counters}; queues {queues}; delayed {delayed}; locks held {held}"


def proxied(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


def config_through(p: Pipeline, link: TcpProxy, targets: dict[str, TcpProxy]) -> Path:
    """The pipeline's configuration with Redis and every target reached through proxies."""
    redis_at = urlsplit(p.settings.redis_url)
    config = json.loads(json.dumps(p.config))
    config["redis_url"] = urlunsplit(redis_at._replace(netloc=f"127.0.0.1:{link.port}"))
    for system, proxy in targets.items():
        system_config = config["systems"][system]
        system_config["base_url"] = proxied(system_config["base_url"], proxy)
    cut_config = p.directory / "cut-off.toml"
    cut_config.write_text(tomli_w.dumps(config), encoding="utf-8")
    return cut_config


def assert_writing(p: Pipeline, targets: dict[str, TcpProxy]) -> None:
    """Wait until six deliveries are in flight, some of them in a slow write."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and in_flight(p) < 6:
        time.sleep(0.2)
    assert in_flight(p) >= 6, p.worker_logs()
    time.sleep(2.0)  # some of them in the middle of a slow write
    in_the_call = [h for t in targets.values() for h in t.requests_after(0) if h.startswith(WRITES)]
    assert in_the_call, "the worker was writing when it was cut off"


def test_a_worker_cut_off_from_redis_loses_its_deliveries_and_writes_nothing_more(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    # Short HTTP timeouts: a HIPE create whose answer never came may land for 25 s.
    short = {"timeout_s": 10.0, "connect_timeout_s": 5.0}
    p = make_pipeline(flows=FLOWS, worker=TEN_MINUTES, systems=dict.fromkeys(TARGETS, short))
    for system in ("onlineerp", "atollon"):
        with p.control(system) as client:
            client.post(
                "/_sandbox/seed", json={"customers": 12, "activities": 6}
            ).raise_for_status()
    activities = p.records("atollon", "billing")
    for system in (*TARGETS, "onlineerp"):
        p.faults(system, [{"methods": ["POST", "PUT", "PATCH"], "latency_ms": 6000}])

    # The worker to cut off reaches Redis and every target through proxies of the test's.
    redis_at = urlsplit(p.settings.redis_url)
    link = TcpProxy((redis_at.hostname or "127.0.0.1", redis_at.port or 6379))
    targets = {
        system: TcpProxy(("127.0.0.1", urlsplit(endpoint.url).port or 80))
        for system, endpoint in p.sandbox.endpoints.items()
    }
    cut_config = config_through(p, link, targets)
    try:
        p.start_worker(config=cut_config)
        p.wait_workers(1)
        p.produce()
        assert_writing(p, targets)

        link.freeze()
        cut_at = time.time()
        for system in (*TARGETS, "onlineerp"):
            p.faults(system, None)  # the calls under way stay slow; the next ones are quick
        p.start_worker()  # reaches Redis and the targets directly
        time.sleep(CUT_OFF_S - (time.time() - cut_at))
        settled = all(p.settled(t) for t in (*TARGETS, "onlineerp"))
        delayed = p.redis.zcard(p.keys.delayed()) + p.redis.zcard(p.keys.delayed_claimed())
        assert settled, where(p)
        assert delayed == 0, f"{delayed} deliveries still waiting"
        assert sum(p.counters(t).get("reclaimed", 0) for t in (*TARGETS, "onlineerp")) > 0

        link.thaw()
        back_at = time.time()
        time.sleep(20.0)  # it reconnects and meets what it held before the cut
        after = [h for t in targets.values() for h in t.requests_after(back_at)]
        assert not [h for h in after if h.startswith(WRITES)], after
        assert "lease.message_taken_over" in p.worker_logs(tail=10_000), "it held prefetched ones"
    finally:
        link.close()
        for proxy in targets.values():
            proxy.close()

    p.wait_converged(timeout_s=60, targets=(*TARGETS, "onlineerp"))
    assert_targets_match_source(p)  # every record once in every target, HIPE included
    assert_invoiced_once(p, activities)  # one ERP invoice per activity
    for target in TARGETS:
        assert p.flow_counters("customers", target)["applied"] == 12, target
    assert p.flow_counters("billing", "onlineerp")["applied"] == len(activities)
