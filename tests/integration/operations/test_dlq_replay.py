"""Issue #5, must hold: 40005 dead letters, fixed, replayed with the real CLI, arrive once.

The sandbox answers ten Propeller writes with 40005; a real worker dead-letters them; the
operator clears the fault and runs ``erpsync dlq replay --code 40005`` as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import REPO, Pipeline
from bench.verify import compare_propeller, erp_customers, writes

pytestmark = pytest.mark.integration

SECRETS = ("sandbox-secret", "sandbox-token", "Bearer", "Basic ")
PROPELLER_ONLY = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": ["propeller"],
        "mapping": {"propeller": {}},
    }
}
RATE_PER_S = 4.0


def erpsync(p: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it (ERPSYNC_CONFIG names the pipeline's file)."""
    env = {**p.env(), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def erpsync_json(p: Pipeline, *args: str) -> Any:
    result = erpsync(p, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def seed_flat(p: Pipeline, customers: int) -> None:
    """Seed customers without parents, so that a failed company holds back no child."""
    with p.control("onlineerp") as client:
        client.post("/_sandbox/seed", json={"customers": customers}).raise_for_status()
    with p.erp() as erp:
        for key, customer in erp_customers(p).items():
            if customer["NoClientParent"]:
                erp.put(f"/Entity/Customer/{key}", json={"NoClientParent": None}).raise_for_status()


def ten_dead_letters_shown(p: Pipeline) -> list[dict[str, Any]]:
    """The ten 40005 dead letters as ``dlq list --json`` shows them, after checking list,
    show and export: the operator's hint, and no secret anywhere."""
    listed: list[dict[str, Any]] = erpsync_json(p, "dlq", "list", "--json")
    assert len(listed) == 10, [e["code"] for e in listed]
    assert {e["code"] for e in listed} == {"40005"}
    assert {e["target"] for e in listed} == {"propeller"}
    assert all("duplicate" in (e["hint"] or "") for e in listed), listed[0]["hint"]
    shown = erpsync(p, "dlq", "show", listed[0]["id"])
    exported = erpsync(p, "dlq", "export")
    table = erpsync(p, "dlq", "list")
    for text in (json.dumps(listed), shown.stdout, exported.stdout, table.stdout):
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked"
    assert "remove the duplicate" in shown.stdout
    assert len(exported.stdout.splitlines()) == 10
    return listed


def assert_replayed_again_changes_nothing(
    p: Pipeline, listed: list[dict[str, Any]], counters: dict[str, int]
) -> None:
    """Replaying an applied entry, or a superseded one, writes nothing and says why."""
    with p.control("propeller") as client:
        client.delete("/_sandbox/stats")
    again = erpsync(p, "dlq", "replay", listed[1]["id"])
    assert again.returncode == 1
    assert f"{listed[1]['id']}: already resolved (applied)" in again.stdout
    superseded_again = erpsync(p, "dlq", "replay", listed[0]["id"])
    assert "already resolved (skipped: superseded)" in superseded_again.stdout
    time.sleep(1.0)
    assert writes(p.stats("propeller")) == 0
    assert p.counters("propeller") == counters


def rename_and_apply(p: Pipeline, key: str) -> None:
    """Rename a customer in the ERP, and let the change through to Propeller."""
    with p.erp() as erp:
        erp.put(f"/Entity/Customer/{key}", json={"NomClient": "Renommée & Fils"}).raise_for_status()
    p.produce()
    p.wait_converged(targets=("propeller",))


def assert_audited(p: Pipeline) -> None:
    """The audit log names the operator's replay of nine (one superseded) and nine
    resolutions."""
    audit = erpsync_json(p, "dlq", "audit", "--json")
    replays = [r for r in audit if r["action"] == "replay"]
    assert [(r["who"], r["count"], r["details"]["superseded"]) for r in replays] == [("ops", 9, 1)]
    assert sum(1 for r in audit if r["action"] == "resolved") == 9


def test_40005_dead_letters_replayed_after_the_fix_arrive_exactly_once(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=PROPELLER_ONLY, systems={"propeller": {"rate_limit_per_s": RATE_PER_S}})
    seed_flat(p, 30)
    p.faults(
        "propeller",
        [
            {
                "vendor_code": 40005,
                "path": "/v2/companies*",
                "methods": ["POST", "PATCH"],
                "count": 10,
            }
        ],
    )
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(targets=("propeller",))

    # Ten dead letters, 40005, with the operator's hint and no secret anywhere.
    listed = ten_dead_letters_shown(p)

    # One of them changes in the ERP meanwhile: its newer change goes through on its own,
    # so the dead letter of the older change is superseded and must not be replayed.
    renamed = listed[0]["key"]
    rename_and_apply(p, renamed)

    p.faults("propeller", None)  # the operator fixed the cause
    dry = erpsync_json(p, "dlq", "replay", "--code", "40005", "--dry-run", "--json")
    assert (dry["would_replay"], dry["superseded"]) == (9, 1)
    verdicts = {e["key"]: e["verdict"] for e in dry["entries"]}
    assert verdicts[renamed] == "superseded"
    assert len(erpsync_json(p, "dlq", "list", "--json")) == 10, "a dry run changes nothing"

    started = time.monotonic()
    replay = erpsync(p, "dlq", "replay", "--code", "40005", "--wait", "--actor", "ops")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "replayed 9" in replay.stdout
    assert "skipped 1 superseded by a newer change of the same record" in replay.stdout
    assert "applied 9, skipped 0, dead-lettered again 0, still pending 0" in replay.stdout
    p.wait_converged(targets=("propeller",))
    # Through the normal workers: the target's shared rate limit paced the nine writes.
    assert time.monotonic() - started >= (9 - 1) / RATE_PER_S

    assert erpsync_json(p, "dlq", "list", "--json") == []
    comparison = compare_propeller(p, erp_customers(p))
    assert comparison.equal, str(comparison)  # each company exactly once, renamed one too
    counters = p.counters("propeller")
    assert counters["applied"] + counters["skipped"] == counters["produced"] == 31, counters
    assert counters.get("dead_lettered", 0) == 0
    assert counters["skipped_superseded"] == 1

    # Replaying an entry already replayed changes nothing, and says why.
    assert_replayed_again_changes_nothing(p, listed, counters)

    assert_audited(p)
