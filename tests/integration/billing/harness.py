"""What the billing integration tests share: the seed, the flows and the checks of the result.

Both simulators are seeded with the same parameters, so the billing items refer to ERP
customers and products that exist (through their externalIds for the ``onlineerp`` system).
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from bench.stack import Pipeline
from erpsync.billing import billing_reference

TARGET = ("onlineerp",)
ACTIVITIES = 50
CUSTOMERS = 200
ACTIVITY_STATUS = "Invoiced"
BILLING_FLOW: dict[str, Any] = {
    "billing": {
        "source": "atollon",
        "entity": "billing",
        "targets": ["onlineerp"],
        "mapping": {"onlineerp": {"fields": {"activity_status": ACTIVITY_STATUS}}},
    }
}


def seed(p: Pipeline, activities_count: int = ACTIVITIES) -> list[dict[str, Any]]:
    """The same seed in the ERP and in Atollon; returns the activities to invoice."""
    for system in ("onlineerp", "atollon"):
        with p.control(system) as client:
            client.post(
                "/_sandbox/seed", json={"customers": CUSTOMERS, "activities": activities_count}
            ).raise_for_status()
    activities = p.records("atollon", "billing")
    assert len(activities) == activities_count
    assert all(
        item["billingStatus"] == "ToBeInvoiced" for a in activities for item in a["billingItems"]
    )
    assert {len(a["billingItems"]) for a in activities} <= {1, 2, 3, 4, 5}
    return activities


def erp_key(ids: list[dict[str, Any]] | None) -> str | None:
    return next((str(e["id"]) for e in ids or [] if e["system"] == "onlineerp"), None)


def customer_of(activity: dict[str, Any]) -> str | None:
    """The ERP customer of an activity: its customerContact's, else its contact's."""
    for contact in (activity["customerContact"], activity["contact"]):
        key = erp_key((contact or {}).get("externalId"))
        if key is not None:
            return key
    return None


def expected_reference(activity: dict[str, Any]) -> str:
    return billing_reference(
        str(activity["activity"]["id"]), [str(i["id"]) for i in activity["billingItems"]]
    )


def invoices_by_reference(p: Pipeline) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for invoice in p.records("onlineerp", "CustomerInvoice"):
        found.setdefault(invoice["Facture"]["Référence"], []).append(invoice)
    return found


def assert_invoiced_once(p: Pipeline, activities: list[dict[str, Any]]) -> None:
    """One invoice per activity with the items' lines and total; every item Billed."""
    invoices = invoices_by_reference(p)
    assert sum(len(v) for v in invoices.values()) == len(activities)
    for activity in activities:
        matching = invoices.get(expected_reference(activity), [])
        assert len(matching) == 1, (activity["activity"]["id"], len(matching))
        (invoice,) = matching
        facture = invoice["Facture"]
        assert facture["InfoClientFacturerA"]["NoClient"] == customer_of(activity)
        items = sorted(activity["billingItems"], key=lambda i: str(i["id"]))
        assert [
            (line["strNoProduit"], line["QteFacture"], line["PrixUnitaire"])
            for line in facture["LigneFacture"]
        ] == [(erp_key(i["productExternalId"]), i["quantity"], i["unitPrice"]) for i in items]
        total = sum(
            (Decimal(str(i["quantity"])) * Decimal(str(i["unitPrice"])) for i in items),
            Decimal(0),
        )
        assert invoice["TotalAvantTaxes"] == pytest.approx(float(total), abs=0.006)
    assert_recorded_once(p, invoices)
    after = p.records("atollon", "billing")
    statuses = Counter(item["billingStatus"] for a in after for item in a["billingItems"])
    assert statuses == {"Billed": sum(len(a["billingItems"]) for a in activities)}
    assert {a["activity"]["statusName"] for a in after} == {ACTIVITY_STATUS}


def assert_recorded_once(p: Pipeline, invoices: dict[str, list[dict[str, Any]]]) -> None:
    """Every ERP invoice recorded in Atollon exactly once, as the ERP stored it."""
    recorded = Counter(str(i["invoiceNumber"]) for i in p.records("atollon", "invoices"))
    numbers = {i["NoFacture"] for found in invoices.values() for i in found}
    assert recorded == Counter(numbers), "one Atollon invoice per ERP invoice, no other"
    by_number = {str(i["invoiceNumber"]): i for i in p.records("atollon", "invoices")}
    for (invoice,) in invoices.values():
        shown, facture = by_number[invoice["NoFacture"]], invoice["Facture"]
        assert (shown["externalReferenceNumber"], shown["issuedDate"]) == (
            facture["Référence"],
            facture["DateFacture"],
        )
        assert shown["customer"]["customerExternalId"] == [
            {"system": "onlineerp", "id": facture["InfoClientFacturerA"]["NoClient"]}
        ]
        assert shown["totals"]["totalWithVAT"] == invoice["TotalAvecTaxes"]
        assert [
            (
                row["product"]["productExternalId"],
                row["value"]["unitQuantity"],
                row["value"]["unitPrice"],
                row["value"]["netTotal"],
                row["value"]["VATPercent"],
                row["value"]["VATValue"],
            )
            for row in shown["rows"]
        ] == [
            (
                [{"system": "onlineerp", "id": line["strNoProduit"]}],
                line["QteFacture"],
                line["PrixUnitaire"],
                line["MontantLigne"],
                line["TauxTaxe"],
                line["MontantTaxe"],
            )
            for line in facture["LigneFacture"]
        ]
        assert sum(row["value"]["netTotal"] for row in shown["rows"]) == pytest.approx(
            invoice["TotalAvantTaxes"], abs=0.006
        )


def invoice_posts(p: Pipeline) -> Counter[str]:
    """How the ERP's sandbox answered POSTs, by status ("dropped": no answer). A billing
    flow POSTs nothing but invoices (the sandbox counts by route template, not entity)."""
    posts: Counter[str] = Counter()
    for row in p.stats("onlineerp")["requests"]:
        if row["method"] == "POST":
            posts[str(row["status"])] += row["count"]
    return posts


def wait_drained(p: Pipeline, timeout_s: float = 60.0) -> None:
    """Until the target's queue is empty and no message is unacknowledged (all processed)."""
    queue, unacked = f"{p.prefix}:sync.onlineerp", f"{p.prefix}:unacked"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if p.redis.llen(queue) == 0 and p.redis.hlen(unacked) == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"messages still queued after {timeout_s} s")


def billing_stream_poll(p: Pipeline) -> Any:
    (result,) = [r for r in p.produce() if r.stream == "atollon.billing"]
    return result
