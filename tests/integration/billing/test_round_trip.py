"""Issue #20, must hold: the billing round trip, each step exactly once, and invoice states.

Atollon billing and time-sheet items → one ERP invoice per activity → the same invoice in
Atollon (``invoice-issued``) → the items Billed; then ERP payments and cancellations → the
Atollon invoice's state. Real Redis, real ``erpsync worker`` subprocesses, the sandbox over
HTTP; ``erpsync reconcile billing`` run as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import REPO, Pipeline
from erpsync.billing import billing_reference
from tests.integration.billing.harness import (
    ACTIVITY_STATUS,
    assert_invoiced_once,
    assert_recorded_once,
    customer_of,
    invoices_by_reference,
    seed,
)

pytestmark = pytest.mark.integration

ACTIVITIES = 100
TARGETS = ("onlineerp", "atollon")
ROUND_TRIP_FLOWS: dict[str, Any] = {
    "billing": {
        "source": "atollon",
        "entity": "billing",
        "targets": ["onlineerp"],
        "mapping": {"onlineerp": {"fields": {"activity_status": ACTIVITY_STATUS}}},
    },
    "invoices": {
        "source": "onlineerp",
        "entity": "invoice",
        "targets": ["atollon"],
        "mapping": {"atollon": {"fields": {"paid": "Paid", "cancelled": "Cancelled"}}},
    },
}
#: the three steps' writes, as fault rules match them
ERP_INVOICE = {"path": "/api/Entity/CustomerInvoice", "methods": ["POST"]}
ATOLLON_INVOICE = {"path": "/crab/crawler/invoice-issued", "methods": ["POST"]}
BILLED = {"path": "/crab/crawler/billing", "methods": ["PUT"]}
#: ... and as the sandbox's stats name their routes (a billing flow POSTs to the ERP nothing
#: but invoices)
ROUTES = {
    "onlineerp": "/api/Entity/{entity}",
    "atollon invoice": "/crab/crawler/invoice-issued",
    "atollon billing": "/crab/crawler/billing",
}
LOST_ANSWERS = 4  # per step
SLOW_MS = 5000


def lost_answers() -> list[dict[str, Any]]:
    """At each step, the first answers lost after the write (``drop_phase: after``)."""
    return [
        {**step, "drop_rate": 1.0, "drop_phase": "after", "count": LOST_ANSWERS}
        for step in (ERP_INVOICE, ATOLLON_INVOICE, BILLED)
    ]


def slow(step: dict[str, Any]) -> dict[str, Any]:
    """Every write of ``step`` held long enough that a worker is killed inside it (the write
    still lands after the wait: its answer goes nowhere)."""
    return {**step, "latency_ms": SLOW_MS}


def requests(p: Pipeline, system: str, method: str, path: str) -> Counter[str]:
    """How the sandbox answered one route, by status ("dropped": no answer)."""
    found: Counter[str] = Counter()
    for row in p.stats(system)["requests"]:
        if row["method"] == method and row["route"] == path:
            found[str(row["status"])] += row["count"]
    return found


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout_s} s: {what}")


def billed_items(p: Pipeline) -> int:
    return sum(
        item["billingStatus"] == "Billed"
        for activity in p.records("atollon", "billing")
        for item in activity["billingItems"]
    )


def reconcile_billing(p: Pipeline) -> tuple[int, dict[str, Any]]:
    """``erpsync reconcile billing --json``: its exit status and report."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", "reconcile", "billing", "--json"],
        cwd=REPO,
        env=p.env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


def status_invoices(p: Pipeline) -> dict[str, int]:
    """The invoices line of ``erpsync status --json``."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--json"],
        cwd=REPO,
        env=p.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, int] = json.loads(result.stdout)["invoices"]
    return found


def assert_reconciled(p: Pipeline, invoices: int) -> dict[str, Any]:
    status, report = reconcile_billing(p)
    atollon = report["targets"]["atollon"]
    counts = atollon["counts"]
    assert (status, report["source_records"], atollon["checked"]) == (0, invoices, invoices), report
    assert counts["in_sync"] == invoices, counts
    assert sum(v for k, v in counts.items() if k != "in_sync") == 0, counts
    return report


def assert_a_mix_of_items_and_customers(activities: list[dict[str, Any]]) -> None:
    """Billing and time-sheet items, and a tenth of the activities without a customer
    contact."""
    types = Counter(item["billingType"] for a in activities for item in a["billingItems"])
    assert types[1] > 50, f"billing items: {types}"
    assert types[2] > 50, f"and time-sheet items: {types}"
    assert sum(a["customerContact"] is None for a in activities) == ACTIVITIES // 10


def assert_each_step_lost_its_answers(p: Pipeline) -> None:
    """Each step's write lost LOST_ANSWERS answers (after the write)."""
    for method, system, route in (
        ("POST", "onlineerp", ROUTES["onlineerp"]),
        ("POST", "atollon", ROUTES["atollon invoice"]),
        ("PUT", "atollon", ROUTES["atollon billing"]),
    ):
        answered = requests(p, system, method, route)
        assert answered["dropped"] == LOST_ANSWERS, (route, answered)


def test_100_activities_invoiced_recorded_and_billed_once_through_kills_and_lost_answers(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    # A short Atollon timeout: a POST killed in flight is looked for again soon after it.
    p = make_pipeline(flows=ROUND_TRIP_FLOWS, systems={"atollon": {"timeout_s": 8.0}})
    activities = seed(p, ACTIVITIES)
    assert_a_mix_of_items_and_customers(activities)

    # A worker killed inside each step's write in turn (held by the sandbox: the killed
    # write never lands), so the next one resumes each record where its saga stopped.
    p.faults("onlineerp", [slow(ERP_INVOICE)])
    first = p.start_worker()
    p.wait_workers(1)
    billing = next(r for r in p.produce() if r.stream == "atollon.billing")
    assert billing.events == ACTIVITIES
    time.sleep(1.0)
    p.kill_worker(first)  # SIGKILL inside step 1
    assert len(invoices_by_reference(p)) == 0

    p.faults("onlineerp", None)
    p.faults("atollon", [slow(ATOLLON_INVOICE)])
    second = p.start_worker()
    p.wait_workers(1)
    wait_until("step 1 done for some", lambda: len(invoices_by_reference(p)) >= 8)
    time.sleep(1.0)
    p.kill_worker(second)  # SIGKILL inside step 2, its checkpoint 'recording' written
    assert p.records("atollon", "invoices") == []

    p.faults("atollon", [slow(BILLED)])
    third = p.start_worker()
    p.wait_workers(1)
    wait_until("step 2 done for some", lambda: len(p.records("atollon", "invoices")) >= 8)
    time.sleep(1.0)
    p.kill_worker(third)  # SIGKILL inside step 3
    assert billed_items(p) == 0

    # The last worker finishes every saga, its first answers at each step lost after the
    # write (drop_phase: after): the ERP's 412, the look-up by number, a repeated PUT.
    p.faults("onlineerp", lost_answers()[:1])
    p.faults("atollon", lost_answers()[1:])
    p.start_worker()
    p.wait_workers(1)
    p.wait_converged(timeout_s=300, targets=TARGETS)
    p.produce()  # the billed activities leave the work queue; the invoices' open states
    p.wait_converged(timeout_s=120, targets=TARGETS)

    assert_invoiced_once(p, activities)  # one ERP and one Atollon invoice each, every item
    assert_each_step_lost_its_answers(p)
    counters = p.flow_counters("billing", "onlineerp")
    assert counters.get("dead_lettered", 0) == 0, counters
    assert p.counters("atollon").get("dead_lettered", 0) == 0
    assert_reconciled(p, ACTIVITIES)
    assert status_invoices(p) == {
        "issued": ACTIVITIES,
        "recorded_in_atollon": ACTIVITIES,
        "paid": 0,
        "partly_paid": 0,
        "cancelled": 0,
    }, "each counted once, whatever was resumed or retried"


def test_30_paid_and_5_cancelled_erp_invoices_move_exactly_those_atollon_invoices_once(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=ROUND_TRIP_FLOWS)
    activities = seed(p, ACTIVITIES)
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=240, targets=TARGETS)
    p.produce()  # the invoices the first poll did not see yet: open, as Atollon shows them
    p.wait_converged(timeout_s=120, targets=TARGETS)
    assert_invoiced_once(p, activities)
    shown = {str(i["invoiceNumber"]): i for i in p.records("atollon", "invoices")}
    assert {i["stateName"] for i in shown.values()} == {"Issued"}
    puts_before = requests(p, "atollon", "PUT", ROUTES["atollon invoice"])
    assert puts_before == Counter(), "an open invoice is recorded open: nothing to update"

    numbers = sorted(shown)
    paid, cancelled = numbers[:30], numbers[30:35]
    with p.control("onlineerp") as erp:
        for number in paid:
            erp.post(f"/_sandbox/invoices/{number}/payment").raise_for_status()
        for number in cancelled:
            erp.post(f"/_sandbox/invoices/{number}/cancel").raise_for_status()
    result = next(r for r in p.produce() if r.stream == "onlineerp.invoice")
    assert result.changed == 35, result
    p.wait_converged(timeout_s=120, targets=TARGETS)
    assert next(r for r in p.produce() if r.stream == "onlineerp.invoice").events == 0

    after = {str(i["invoiceNumber"]): i["stateName"] for i in p.records("atollon", "invoices")}
    assert after == {
        number: "Paid" if number in paid else "Cancelled" if number in cancelled else "Issued"
        for number in numbers
    }
    assert requests(p, "atollon", "PUT", ROUTES["atollon invoice"]) == Counter({"200": 35})
    report = assert_reconciled(p, ACTIVITIES)
    assert report["flow"] == "invoices", "the billing flow is reconciled through its invoices"
    assert status_invoices(p) == {
        "issued": ACTIVITIES,
        "recorded_in_atollon": ACTIVITIES,
        "paid": 30,
        "partly_paid": 0,
        "cancelled": 5,
    }


def test_time_sheets_kept_apart_get_invoices_of_their_own_each_recorded_once(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    flows = json.loads(json.dumps(ROUND_TRIP_FLOWS))
    flows["billing"]["mapping"]["onlineerp"]["fields"]["time_sheets"] = "apart"
    p = make_pipeline(flows=flows)
    activities = seed(p, 30)
    expected: dict[str, str] = {}  # reference -> customer
    for activity in activities:
        kinds: dict[int, list[str]] = {}
        for item in activity["billingItems"]:
            kinds.setdefault(item["billingType"], []).append(str(item["id"]))
        for ids in kinds.values():
            reference = billing_reference(str(activity["activity"]["id"]), ids)
            expected[reference] = str(customer_of(activity))
    assert len(expected) > len(activities), "some activities have both kinds of items"
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=240, targets=TARGETS)
    p.produce()
    p.wait_converged(timeout_s=120, targets=TARGETS)

    invoices = invoices_by_reference(p)
    customers = {
        ref: [i["Facture"]["InfoClientFacturerA"]["NoClient"] for i in found]
        for ref, found in invoices.items()
    }
    assert customers == {ref: [c] for ref, c in expected.items()}, "one invoice per kind"
    assert_recorded_once(p, invoices)
    assert billed_items(p) == sum(len(a["billingItems"]) for a in activities)
    assert_reconciled(p, len(expected))
