"""Issue 15, must hold: drift made by hand in the targets is found exactly and repaired.

A real worker process, a real Redis, the sandbox over HTTP. The customers flow converges;
then people edit the targets behind erpsync's back, through each vendor's own API: a
Propeller company renamed, another moved under a different parent, a third deleted (it goes
to the recycle bin), a HIPE company archived, a second HIPE company made with an existing
external id, an Atollon contact's e-mail changed. ``erpsync reconcile customers --json``
reports exactly that, by kind and key; ``--repair`` fixes all of it through the workers but
the duplicate and the binned company, each with its operator hint; a second reconcile
reports only those two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bench.stack import REPO, TARGETS, Pipeline
from bench.verify import erp_customers
from simulators.server import CREDENTIALS
from state.dlq import DeadLetterStore

pytestmark = pytest.mark.integration

SOURCE = "ERPSYNC"  # the Propeller source of our sourceIds (the settings' default)
ERP_SYSTEM = "onlineerp"  # the Atollon externalId system of our ERP keys
KINDS = ("missing", "different", "orphaned", "duplicates")


def reconcile(p: Pipeline, *args: str) -> tuple[int, dict[str, Any]]:
    """``erpsync reconcile customers --json …`` as an operator runs it: exit status, JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "cli", "reconcile", "customers", "--json", *args],
        cwd=REPO,
        env=p.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    for secret in ("sandbox-secret", "sandbox-token"):
        assert secret not in done.stdout + done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, found


def propeller(p: Pipeline) -> httpx.Client:
    """Propeller's REST API with a bearer token, as a person's script would use it."""
    creds = CREDENTIALS["propeller"]
    base = p.sandbox.endpoints["propeller"].url
    token = httpx.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": creds["client_id"],
              "client_secret": creds["client_secret"]},
        timeout=30,
    )  # fmt: skip
    token.raise_for_status()
    return httpx.Client(
        base_url=f"{base}/v2",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        params={"source": SOURCE, "language": "EN"},
        timeout=30,
    )


def hipe(p: Pipeline) -> httpx.Client:
    return httpx.Client(
        base_url=f"{p.sandbox.endpoints['hipe'].api_url}/api",
        headers={"X-ACCESS-TOKEN": CREDENTIALS["hipe"]["access_token"]},
        timeout=30,
    )


def atollon(p: Pipeline) -> httpx.Client:
    return httpx.Client(
        base_url=f"{p.sandbox.endpoints['atollon'].api_url}/crab",
        params={"instance": CREDENTIALS["atollon"]["instance"]},
        timeout=30,
    )


def no_drift(report: dict[str, Any]) -> None:
    for target in TARGETS:
        found = report["targets"][target]
        assert "not_checked" not in found, (target, found)
        assert [found[k] for k in ("missing", "different", "orphaned", "duplicates")] == [
            [], [], [], []
        ], (target, found)  # fmt: skip


def test_drift_made_in_the_targets_is_found_exactly_and_repaired(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline()
    with p.control("onlineerp") as client:
        client.post("/_sandbox/seed", json={"customers": 40}).raise_for_status()
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=180)

    status, report = reconcile(p)
    assert status == 0, report
    assert report["flow"] == "customers"
    no_drift(report)
    assert all(report["targets"][t]["checked"] == 40 for t in TARGETS)

    customers = erp_customers(p)
    parents = {c["NoClientParent"] for c in customers.values() if c["NoClientParent"]}
    leaves = sorted(k for k, c in customers.items() if c["NoClientParent"] and k not in parents)
    roots = sorted(k for k, c in customers.items() if not c["NoClientParent"])
    renamed, moved, deleted, archived, doubled, emailed = leaves[:6]
    new_parent = next(r for r in roots if r != customers[moved]["NoClientParent"])
    assert customers[emailed]["Courriel"], "the seed gives every customer an e-mail"

    with propeller(p) as api:
        api.patch(f"/companies/sourceId/{renamed}", json={"name": "Renamed by hand"}
                  ).raise_for_status()  # fmt: skip
        api.patch(
            f"/companies/sourceId/{moved}",
            json={"parent": {"sourceId": new_parent, "source": SOURCE}},
        ).raise_for_status()
        api.delete(f"/companies/sourceId/{deleted}").raise_for_status()
    hipe_ids = {c["externalId"]: c["id"] for c in p.records("hipe", "companies")}
    with hipe(p) as api:
        api.delete(f"/companies/{hipe_ids[archived]}/archived").raise_for_status()
        second = api.post("/companies", json={"name": "Typed twice", "externalId": doubled})
        second.raise_for_status()
    second_id = str(second.json()["id"])
    with atollon(p) as api:
        answer = api.post(
            "/crawler/contact",
            json={
                "company": {"companyName": str(customers[emailed]["NomClient"]).strip()},
                "externalId": [{"system": ERP_SYSTEM, "id": emailed}],
                "contacts": {"email": [{"contact": "typed.by.hand@example.com"}]},
            },
        )
        answer.raise_for_status()
        assert answer.json()["result"] == "SUCCESS", answer.text

    status, report = reconcile(p)
    assert status == 1
    found = report["targets"]
    assert found["propeller"]["missing"] == [{"key": deleted}]
    different: dict[str, Any] = {
        renamed: {"name": {"source": str(customers[renamed]["NomClient"]).strip(),
                           "target": "Renamed by hand"}},
        moved: {"parent_key": {"source": customers[moved]["NoClientParent"],
                               "target": new_parent}},
    }  # fmt: skip
    assert found["propeller"]["different"] == [
        {"key": key, "fields": different[key]} for key in sorted(different)
    ]
    assert (found["propeller"]["orphaned"], found["propeller"]["duplicates"]) == ([], [])
    assert found["hipe"]["different"] == [
        {"key": archived, "fields": {"active": {"source": True, "target": False}}}
    ]
    assert found["hipe"]["duplicates"] == [
        {"key": doubled, "target_ids": sorted([str(hipe_ids[doubled]), second_id])}
    ]
    assert (found["hipe"]["missing"], found["hipe"]["orphaned"]) == ([], [])
    assert found["atollon"]["different"] == [
        {"key": emailed, "fields": {"email": {
            "source": customers[emailed]["Courriel"], "target": "typed.by.hand@example.com"}}}
    ]  # fmt: skip
    assert [found["atollon"][k] for k in ("missing", "orphaned", "duplicates")] == [[], [], []]
    assert found["propeller"]["in_sync"] == 37
    assert found["hipe"]["in_sync"] == 38
    assert found["atollon"]["in_sync"] == 39

    status, repaired = reconcile(p, "--repair", "--timeout", "120", "--actor", "it-ops")
    assert status == 1, "drift was found (and repaired)"
    repair = repaired["repair"]
    assert repair["propeller"]["sent"] == 3
    assert repair["propeller"]["outcomes"] == {"applied": 2, "dead_lettered": 1}
    (binned,) = repair["propeller"]["dead_lettered"]
    assert (binned["key"], binned["code"]) == (deleted, "40008")
    assert "recycle bin" in binned["hint"]
    assert repair["hipe"]["sent"] == 1
    assert repair["hipe"]["outcomes"] == {"applied": 1}
    (duplicate,) = repair["hipe"]["not_repaired"]
    assert duplicate["key"] == doubled
    assert second_id in duplicate["hint"]
    assert repair["atollon"] == {
        "sent": 1, "outcomes": {"applied": 1}, "waiting": 0, "dead_lettered": [],
        "not_repaired": [],
    }  # fmt: skip
    assert all(repair[t]["waiting"] == 0 for t in TARGETS)
    audit = [
        row for row in DeadLetterStore(p.redis, p.keys).audit_log()
        if row["action"] == "reconcile_repair"
    ]  # fmt: skip
    assert len(audit) == 1
    assert audit[0]["who"] == "it-ops"
    assert audit[0]["details"]["sent"] == {"propeller": 3, "hipe": 1, "atollon": 1}

    status, report = reconcile(p)
    assert status == 1
    found = report["targets"]
    assert found["propeller"]["missing"] == [{"key": deleted}]
    assert found["hipe"]["duplicates"] == [
        {"key": doubled, "target_ids": sorted([str(hipe_ids[doubled]), second_id])}
    ]
    counts = {t: found[t]["counts"] for t in TARGETS}
    assert [counts["propeller"][k] for k in ("different", "orphaned", "duplicates")] == [0, 0, 0]
    assert [counts["hipe"][k] for k in ("missing", "different", "orphaned")] == [0, 0, 0]
    assert [counts["atollon"][k] for k in KINDS] == [0, 0, 0, 0]
