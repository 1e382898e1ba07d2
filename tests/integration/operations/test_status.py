"""Issue #5, must hold: ``erpsync status --json`` reports what the test set up.

Propeller is consumed and dead-letters five writes with two codes; HIPE is paused by hand
and first has no consumer (its deliveries wait in its queue), then a consumer that parks
them (scheduled, no retry burned), then it is resumed and everything arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import Pipeline
from bench.verify import compare_hipe, erp_customers
from tests.integration.operations.test_dlq_replay import erpsync, erpsync_json, seed_flat

pytestmark = pytest.mark.integration

CUSTOMERS = 20
FLOWS = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": ["propeller", "hipe"],
        "mapping": {"propeller": {}, "hipe": {}},
    }
}


def targets_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in status["targets"]}


def assert_status_with_dead_letters_and_hipe_paused(p: Pipeline) -> None:
    """``erpsync status`` (JSON and table) and ``target list`` once Propeller settled with
    five dead letters and HIPE, paused, has no consumer."""
    status = erpsync_json(p, "status", "--json")
    targets = targets_of(status)
    propeller, hipe = targets["propeller"], targets["hipe"]
    assert propeller["dlq"] == {"10007": 2, "40005": 3}
    assert propeller["dlq_total"] == 5
    assert propeller["circuit"]["state"] == "closed"
    assert (propeller["queue_depth"], propeller["in_flight"]) == (0, 0)
    assert propeller["scheduled_retries"] == 0
    assert propeller["lag_s"] == 0.0
    assert propeller["counters"]["applied"] == CUSTOMERS - 5
    assert propeller["counters"]["dead_lettered"] == 5
    assert hipe["circuit"]["state"] == "paused"
    assert hipe["circuit"]["reason"] == "paused by tester"
    assert hipe["queued_deliveries"] == CUSTOMERS, "no consumer: every delivery waits queued"
    assert 1 <= hipe["queue_depth"] <= CUSTOMERS, "messages (a batch message holds several)"
    assert (hipe["in_flight"], hipe["scheduled_retries"], hipe["dlq"]) == (0, 0, {})
    assert hipe["lag_s"] > 0
    assert hipe["lag_exact"] is True
    assert status["dlq_total"] == 5
    (customers,) = status["flows"]
    assert customers["stream"]["last_records"] == CUSTOMERS
    assert customers["stream"]["last_changed"] == CUSTOMERS
    assert customers["stream"]["last_error"] is None
    assert customers["targets"]["hipe"]["queued"] == CUSTOMERS
    assert customers["targets"]["propeller"]["dlq"] == {"10007": 2, "40005": 3}
    listed = {t["name"]: t["state"] for t in erpsync_json(p, "target", "list", "--json")}
    assert listed == {"propeller": "closed", "hipe": "paused"}
    human = erpsync(p, "status")
    assert human.returncode == 0
    assert "paused" in human.stdout
    assert "40005×3" in human.stdout


def wait_until_every_hipe_delivery_is_parked(p: Pipeline) -> dict[str, Any]:
    """HIPE's status once all its deliveries are scheduled (within 90 s)."""
    deadline = time.monotonic() + 90
    while True:
        hipe = targets_of(erpsync_json(p, "status", "--json"))["hipe"]
        if hipe["scheduled_retries"] == CUSTOMERS:
            break
        assert time.monotonic() < deadline, hipe
        time.sleep(0.2)
    return hipe


def test_status_reports_dlq_counts_queue_depths_and_circuit_states(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed_flat(p, CUSTOMERS)
    p.faults(
        "propeller",
        [
            {"vendor_code": 40005, "path": "/v2/companies*", "methods": ["POST"], "count": 3},
            {"vendor_code": 10007, "path": "/v2/companies*", "methods": ["POST"], "count": 2},
        ],
    )
    paused = erpsync(p, "target", "pause", "hipe", "--actor", "tester")
    assert paused.returncode == 0, paused.stderr
    p.start_worker("--queues", "propeller")
    p.wait_workers(1)
    p.produce()
    p.wait_converged(targets=("propeller",))

    assert_status_with_dead_letters_and_hipe_paused(p)

    # A consumer for the paused target parks its deliveries: scheduled, no retry burned.
    p.start_worker("--queues", "hipe")
    hipe = wait_until_every_hipe_delivery_is_parked(p)
    assert hipe["circuit"]["state"] == "paused"
    assert hipe["counters"].get("applied", 0) == 0
    assert hipe["counters"].get("retries", 0) == 0
    assert hipe["lag_s"] > 0

    resumed = erpsync(p, "target", "resume", "hipe", "--actor", "tester")
    assert resumed.returncode == 0, resumed.stderr
    p.wait_converged(targets=("propeller", "hipe"))
    hipe = targets_of(erpsync_json(p, "status", "--json"))["hipe"]
    assert hipe["circuit"]["state"] == "closed"
    assert (hipe["queue_depth"], hipe["queued_deliveries"]) == (0, 0)
    assert (hipe["scheduled_retries"], hipe["lag_s"]) == (0, 0.0)
    assert hipe["counters"]["applied"] == CUSTOMERS
    comparison = compare_hipe(p, erp_customers(p))
    assert comparison.equal, str(comparison)
    audit = erpsync_json(p, "dlq", "audit", "--json")
    assert [(r["action"], r["who"]) for r in audit if r["action"].startswith("target.")] == [
        ("target.resume", "tester"),
        ("target.pause", "tester"),
    ]
