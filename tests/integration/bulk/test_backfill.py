"""Issue #9, must hold: ``erpsync backfill`` re-sends a flow through the bulk paths, once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import REPO, Pipeline
from tests.integration.bulk.loads import (
    BULK_TARGETS,
    FLOWS,
    assert_accounted,
    assert_equal_to_source,
    clear_stats,
    requests,
    seed,
    wait_idle,
)

pytestmark = pytest.mark.integration


def run_backfill(
    p: Pipeline, *args: str, timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``erpsync backfill ... --json`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "backfill", *args, "--json"],
        cwd=REPO,
        env=p.env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def backfill(p: Pipeline, *args: str) -> dict[str, Any]:
    """Run ``erpsync backfill`` as a user would, and read its JSON report."""
    done = run_backfill(p, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_backfill_loads_the_targets_in_bulk_and_a_second_one_changes_nothing(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed(p, 600)
    p.start_worker()
    p.wait_workers(1)

    first = backfill(p, "customers")
    assert (first["records"], first["events"], first["deliveries"]) == (600, 600, 1200)
    assert first["targets"] == list(BULK_TARGETS)
    assert first["batches"] >= 4, "600 records for each target went in batch messages"
    assert {t: c["produced"] for t, c in first["outcomes"].items()} == {
        "propeller": 600,
        "hipe": 600,
    }
    p.wait_converged(timeout_s=240, targets=BULK_TARGETS)
    assert_equal_to_source(p)
    propeller, hipe = p.stats("propeller"), p.stats("hipe")
    assert requests(propeller, "POST", "/v2/companies/bulk/{lookupKey}") >= 3
    assert requests(propeller, "POST", "/v2/companies") == 0
    assert requests(hipe, "POST", "/api/imports") >= 1
    assert requests(hipe, "POST", "/api/companies") == 0
    (poll,) = p.produce()
    assert poll.events == 0, "the snapshot moved as for a poll: the next poll emits nothing"

    clear_stats(p)
    second = backfill(p, "customers", "--wait", "--timeout", "200")
    assert second["settled"] is True
    for target in BULK_TARGETS:
        outcome = second["outcomes"][target]
        assert (outcome["produced"], outcome["skipped"], outcome["applied"]) == (600, 600, 0)
    # each target's own time and rate (what its bar's time left is reckoned from)
    assert set(second["timings"]) == set(BULK_TARGETS)
    for timing in second["timings"].values():
        assert timing["seconds"] > 0
        assert timing["per_s"] == pytest.approx(600 / timing["seconds"], rel=0.01)
    wait_idle(p)
    for target in BULK_TARGETS:
        assert p.stats(target)["writes"] == 0, f"an unchanged backfill wrote to {target}"
    assert_accounted(p)


def test_forced_backfill_of_one_target_writes_it_again_and_leaves_the_others(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed(p, 600)
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=240, targets=BULK_TARGETS)
    clear_stats(p)

    report = backfill(p, "customers", "--target", "propeller", "--force", "--wait")
    assert report["targets"] == ["propeller"]
    assert report["outcomes"]["propeller"]["applied"] == 600, report["outcomes"]
    propeller = p.stats("propeller")
    assert requests(propeller, "POST", "/v2/companies/bulk/{lookupKey}") >= 3, "in bulk"
    assert requests(propeller, "POST", "/v2/companies") == 0
    assert p.stats("hipe")["total"] == 0, "a backfill of Propeller leaves HIPE alone"
    counters = p.flow_counters("customers", "propeller")
    assert counters["action_updated"] == 600, "the ledger kept the records' ids: updates"
    assert_equal_to_source(p)
    assert_accounted(p)

    for args, problem in (
        (["nope"], "no enabled flow named 'nope'"),
        (["customers", "--target", "atollon"], "flow 'customers' has no target atollon"),
    ):
        refused = run_backfill(p, *args, timeout_s=120)
        assert (refused.returncode, refused.stdout) == (2, ""), refused.stderr
        assert problem in refused.stderr
