"""Issue 8, must hold: erpsync survives what production does to it, shown by a chaos run.

One short run (about 1,000 customers, a minute and a quarter of chaos, then convergence) is
part of the default test run; every test below reads its report. The 30-minute soak is
``pytest -m soak tests/chaos`` or ``python -m bench.chaos --minutes 30``, run by hand.
What the run does is described in :mod:`bench.chaos`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos import ChaosReport, ChaosSettings, run_chaos
from bench.stack import TARGETS

#: the module's run happens in the setup of whichever test comes first
pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(1200)]

SHORT = ChaosSettings(minutes=1.25, customers=1000)
SOAK = ChaosSettings(minutes=30, customers=2000, converge_timeout_s=1800)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ChaosReport:
    """One short chaos run; its worker logs and ``report.json`` stay in a temporary directory."""
    directory = tmp_path_factory.mktemp("chaos")
    result = run_chaos(SHORT, directory)
    (directory / "report.json").write_text(json.dumps(result.as_dict(), indent=2), "utf-8")
    return result


def explain(report: ChaosReport) -> str:
    return "\n".join(
        [f"seed {report.seed}", *report.problems, *report.observations, *report.timeline]
    )


def test_targets_equal_the_source_with_no_duplicate_and_no_lost_change(
    report: ChaosReport,
) -> None:
    assert report.converge_s is not None, explain(report)
    assert all(c.endswith(": equal") for c in report.comparisons), explain(report)
    assert len(report.comparisons) == 4, "customers in three targets, products in Atollon"
    assert report.duplicates == 0, explain(report)
    assert report.lost == 0, explain(report)
    assert report.unaccounted_lost == 0, explain(report)
    assert report.problems == [], explain(report)


def test_it_converges_soon_after_the_last_kill_and_held_deliveries_run_again_in_seconds(
    report: ChaosReport,
) -> None:
    assert report.converged_after_last_kill_s is not None, explain(report)
    assert report.converged_after_last_kill_s < 120, explain(report)
    assert report.held_at_kills > 0, "the killed workers held deliveries"
    assert report.held_not_restarted == 0, explain(report)
    assert report.recovery_after_kill_s["max"] < 60, report.recovery_after_kill_s


def test_every_dead_letter_is_explained_and_replayed_to_convergence(report: ChaosReport) -> None:
    assert report.dead_letters > 0, "the permanent vendor errors injected were dead-lettered"
    assert report.dead_letters_unexplained == [], explain(report)
    assert report.replayed > 0
    assert report.dead_letters_left == 0, explain(report)


def test_the_run_met_every_kind_of_chaos(report: ChaosReport) -> None:
    assert report.customers >= SHORT.customers
    assert sum(report.edits.values()) > 50
    assert {"rename", "rename_back", "deactivate", "reactivate", "new_child", "product"} <= set(
        report.edits
    )
    assert report.kills >= 5
    assert report.worker_restarts >= report.kills - SHORT.workers
    assert report.worker_unexpected_exits == 0, explain(report)  # outside the Redis restart
    assert report.producer_restarts.get("clean", 0) >= 1
    assert report.producer_restarts.get("mid_poll", 0) >= 1
    assert report.redis_restarts == 1
    assert report.redis_outcomes_resumed_after_s is not None, "work resumed after Redis came back"
    for target in TARGETS:
        injected = report.faults_injected[target]
        assert injected.get("429", 0) > 0, target
        assert injected.get("drop", 0) > 0, target
        assert sum(v for k, v in injected.items() if k.startswith("5")) > 0, target
    assert report.faults_met.get("timeout", 0) > 0, "HIPE answers slower than its timeout"
    assert report.retries > 0
    assert report.duplicates_published > 0
    assert report.stale_published > 0
    assert report.skipped.get("stale", 0) > 0, "older versions arrived after newer ones"
    assert report.skipped.get("unchanged", 0) > 0, "duplicates were recognised"


@pytest.mark.soak
@pytest.mark.timeout(3 * 3600)
def test_soak_thirty_minutes(tmp_path: Path) -> None:
    soak = run_chaos(SOAK, tmp_path)
    assert soak.ok, explain(soak)
    assert soak.duplicates == 0
    assert soak.lost == 0
    assert soak.dead_letters_left == 0
