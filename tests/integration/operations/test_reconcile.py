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
from dataclasses import dataclass
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


@dataclass
class Drift:
    """Drift made by hand in the targets, one record each: in Propeller renamed, moved to
    another parent and deleted; in HIPE archived and typed twice (doubled); in Atollon an
    e-mail changed."""

    customers: dict[str, dict[str, Any]]
    renamed: str
    moved: str
    new_parent: str
    deleted: str
    archived: str
    doubled: str
    #: the HIPE id of each external id, and of the doubled record's second company
    hipe_ids: dict[str, Any]
    second_id: str
    emailed: str


def make_drift(p: Pipeline) -> Drift:
    """Make the drift :class:`Drift` names, through each target's API."""
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
    return Drift(
        customers, renamed, moved, new_parent, deleted, archived, doubled, hipe_ids, second_id,
        emailed,
    )  # fmt: skip


def assert_found_exactly(report: dict[str, Any], d: Drift) -> None:
    """Reconcile's report names each drift as what it is, and nothing else."""
    found = report["targets"]
    assert found["propeller"]["missing"] == [{"key": d.deleted}]
    different: dict[str, Any] = {
        d.renamed: {"name": {"source": str(d.customers[d.renamed]["NomClient"]).strip(),
                             "target": "Renamed by hand"}},
        d.moved: {"parent_key": {"source": d.customers[d.moved]["NoClientParent"],
                                 "target": d.new_parent}},
    }  # fmt: skip
    assert found["propeller"]["different"] == [
        {"key": key, "fields": different[key]} for key in sorted(different)
    ]
    assert (found["propeller"]["orphaned"], found["propeller"]["duplicates"]) == ([], [])
    assert found["hipe"]["different"] == [
        {"key": d.archived, "fields": {"active": {"source": True, "target": False}}}
    ]
    assert found["hipe"]["duplicates"] == [
        {"key": d.doubled, "target_ids": sorted([str(d.hipe_ids[d.doubled]), d.second_id])}
    ]
    assert (found["hipe"]["missing"], found["hipe"]["orphaned"]) == ([], [])
    assert found["atollon"]["different"] == [
        {"key": d.emailed, "fields": {"email": {
            "source": d.customers[d.emailed]["Courriel"], "target": "typed.by.hand@example.com"}}}
    ]  # fmt: skip
    assert [found["atollon"][k] for k in ("missing", "orphaned", "duplicates")] == [[], [], []]
    assert found["propeller"]["in_sync"] == 37
    assert found["hipe"]["in_sync"] == 38
    assert found["atollon"]["in_sync"] == 39


def assert_repaired(p: Pipeline, repaired: dict[str, Any], d: Drift) -> None:
    """What ``reconcile --repair`` sent, how each ended, what it left alone, and its audit."""
    repair = repaired["repair"]
    assert repair["propeller"]["sent"] == 3
    assert repair["propeller"]["outcomes"] == {"applied": 2, "dead_lettered": 1}
    (binned,) = repair["propeller"]["dead_lettered"]
    assert (binned["key"], binned["code"]) == (d.deleted, "40008")
    assert "recycle bin" in binned["hint"]
    assert repair["hipe"]["sent"] == 1
    assert repair["hipe"]["outcomes"] == {"applied": 1}
    (duplicate,) = repair["hipe"]["not_repaired"]
    assert duplicate["key"] == d.doubled
    assert d.second_id in duplicate["hint"]
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


def assert_only_the_unrepairable_left(report: dict[str, Any], d: Drift) -> None:
    """After the repair: the binned company and the duplicate, nothing else."""
    found = report["targets"]
    assert found["propeller"]["missing"] == [{"key": d.deleted}]
    assert found["hipe"]["duplicates"] == [
        {"key": d.doubled, "target_ids": sorted([str(d.hipe_ids[d.doubled]), d.second_id])}
    ]
    counts = {t: found[t]["counts"] for t in TARGETS}
    assert [counts["propeller"][k] for k in ("different", "orphaned", "duplicates")] == [0, 0, 0]
    assert [counts["hipe"][k] for k in ("missing", "different", "orphaned")] == [0, 0, 0]
    assert [counts["atollon"][k] for k in KINDS] == [0, 0, 0, 0]


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

    d = make_drift(p)

    status, report = reconcile(p)
    assert status == 1
    assert_found_exactly(report, d)

    status, repaired = reconcile(p, "--repair", "--timeout", "120", "--actor", "it-ops")
    assert status == 1, "drift was found (and repaired)"
    assert_repaired(p, repaired, d)

    status, report = reconcile(p)
    assert status == 1
    assert_only_the_unrepairable_left(report, d)
