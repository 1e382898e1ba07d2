"""Issue #4, must hold: the customers flow end to end with real workers and the sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench.stack import TARGETS, Pipeline
from bench.verify import (
    count_requests,
    erp_customers,
    propeller_inactive,
    writes,
)
from tests.integration.checks import assert_targets_match_source, unusual_outcomes

pytestmark = pytest.mark.integration


def seed(p: Pipeline, customers: int) -> None:
    with p.control("onlineerp") as client:
        client.post("/_sandbox/seed", json={"customers": customers}).raise_for_status()


def assert_accounted(p: Pipeline) -> None:
    """applied + skipped + dead-lettered = produced, per target and per flow at each target."""
    for target in TARGETS:
        for counters in (p.counters(target), p.flow_counters("customers", target)):
            outcomes = (
                counters.get("applied", 0)
                + counters.get("skipped", 0)
                + counters.get("dead_lettered", 0)
            )
            assert outcomes == counters["produced"], (target, counters)


def levels(customers: dict[str, dict[str, object]]) -> int:
    def depth(key: str) -> int:
        parent = customers[key]["NoClientParent"]
        return 1 if parent is None else 1 + depth(str(parent))

    return max(depth(k) for k in customers)


def test_500_customers_with_hierarchy_arrive_once_in_every_target(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline()
    seed(p, 500)
    assert levels(erp_customers(p)) == 3, "the seed has a 3-level hierarchy"
    p.start_worker()
    p.wait_workers(1)

    (result,) = [r for r in p.produce() if r.stream == "onlineerp.customer"]
    assert result.events == 500
    p.wait_converged(timeout_s=240)

    assert_targets_match_source(p)  # includes: one HIPE company per external id
    for target in TARGETS:
        counters = p.flow_counters("customers", target)
        assert counters["produced"] == 500
        assert counters["applied"] == 500
        assert counters.get("dead_lettered", 0) == 0
    assert_accounted(p)


def clear_stats(p: Pipeline) -> None:
    """Forget the requests every target's sandbox counted so far."""
    for system in TARGETS:
        with p.control(system) as client:
            client.delete("/_sandbox/stats")


def test_edits_and_deactivations_reach_exactly_the_changed_records(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline()
    seed(p, 120)
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged()
    customers = erp_customers(p)

    edited = sorted(customers)[10:30]
    with p.erp() as erp:
        for key in edited:
            erp.put(
                f"/Entity/Customer/{key}", json={"NomClient": f"Renamed {key} & Fils"}
            ).raise_for_status()
    clear_stats(p)
    (result,) = [r for r in p.produce() if r.stream == "onlineerp.customer"]
    assert result.events == 20
    p.wait_converged()
    assert_targets_match_source(p)
    propeller, hipe, atollon = (p.stats(s) for s in TARGETS)
    assert count_requests(propeller, "PATCH", "/v2/companies/") == 20
    assert count_requests(propeller, "POST", "/v2/companies") == 0, "no creates"
    assert count_requests(hipe, "PATCH", "/api/companies/") == 20
    assert count_requests(hipe, "POST", "/api/companies") == 0, "no creates"
    assert count_requests(atollon, "POST", "/crab/crawler/contact") == 20

    parents = {c["NoClientParent"] for c in customers.values()}
    leaves = [k for k in sorted(customers) if k not in parents][:5]
    with p.erp() as erp:
        for key in leaves:
            erp.put(f"/Entity/Customer/{key}", json={"EstActif": False}).raise_for_status()
    p.produce()
    p.wait_converged()
    assert_targets_match_source(p)  # archived in HIPE, marked inactive in Propeller
    hipe_by_key = {c["externalId"]: c for c in p.records("hipe", "companies")}
    assert all(hipe_by_key[k]["archived"] for k in leaves)
    # Propeller: marked by an attribute the API can take back, never sent to the recycle
    # bin, which only the backoffice can empty (issue 15).
    marked = {
        s["sourceId"]
        for c in p.records("propeller", "companies")
        if propeller_inactive(c) and not c.get("recycleBin")
        for s in c.get("sources") or []
    }
    assert marked == set(leaves)
    assert not any(c.get("recycleBin") for c in p.records("propeller", "companies"))

    clear_stats(p)
    results = p.produce()
    assert sum(r.events for r in results) == 0, "no change, no event"
    time.sleep(1.0)
    for system in TARGETS:
        assert writes(p.stats(system)) == 0, f"a quiet poll wrote to {system}"
    assert_accounted(p)


def test_faults_latency_and_a_killed_worker_lose_and_duplicate_nothing(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline()
    seed(p, 200)
    for system in TARGETS:
        p.faults(
            system,
            [{"rate": 0.2, "statuses": [503, 429], "retry_after_s": 0.5, "latency_ms": 200}],
        )
    first = p.start_worker()
    p.start_worker()
    p.wait_workers(2)
    p.produce()

    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline and sum(p.counters(t).get("applied", 0) for t in TARGETS) < 150
    ):
        time.sleep(0.1)
    p.kill_worker(first)  # SIGKILL, mid-way
    p.start_worker()
    p.wait_workers(1)

    p.wait_converged(timeout_s=240)
    for system in TARGETS:
        p.faults(system, None)
    assert_targets_match_source(p)  # nothing lost, nothing duplicated
    for target in TARGETS:
        counters = p.flow_counters("customers", target)
        assert counters["applied"] == 200, unusual_outcomes(p, target)
        assert p.counters(target).get("retries", 0) > 0, "the faults were met and retried"
    assert_accounted(p)
