"""Issue 15: every field and line of an ERP invoice equals what its Atollon billing items say.

Real Redis, a real ``erpsync worker`` process, the producer and the sandbox over HTTP; the
ERP and Atollon seeded alike (Atollon's billing items name ERP customers and products by
their ``onlineerp`` external ids). The billing flow maps the items' currency and VAT rate
to custom ERP fields. After one poll and convergence, each activity's items became exactly
one ERP invoice whose every field (the whole ``Facture``, every key but the amounts the ERP
computes itself) and every line is what the Atollon items hold, read from the crawler
doc's billing shape and the ERP's documented ``Facture`` (docs/sandbox-conventions.md);
the same invoice is recorded in Atollon (``invoice-issued``) row for line; the items are
``Billed``. The tests of issue 6
(tests/integration/billing) cover exactly-once under kills and duplicate messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from bench.stack import Pipeline
from state.dlq import DeadLetterStore

pytestmark = pytest.mark.integration

TARGET = ("onlineerp",)
ACTIVITY_STATUS = "Invoiced"
FLOWS: dict[str, Any] = {
    "billing": {
        "source": "atollon",
        "entity": "billing",
        "targets": ["onlineerp"],
        "mapping": {
            "onlineerp": {
                "fields": {"activity_status": ACTIVITY_STATUS},
                "custom_fields": {"Devise": "currency", "LigneFacture.TauxTaxe": "vat_rate"},
            }
        },
    }
}
ERP_SYSTEM = "onlineerp"


def text(value: Any) -> str | None:
    """A text as compared: stripped, blank as None."""
    stripped = str(value).strip() if value is not None else ""
    return stripped or None


def erp_id(ids: Any) -> str | None:
    for entry in ids or []:
        if entry.get("system") == ERP_SYSTEM:
            return str(entry["id"])
    return None


#: what erpsync writes on a line, and what the ERP computes there itself (amounts, taxes)
SENT_LINE = ("strNoProduit", "QteFacture", "PrixUnitaire", "DescriptionLigne", "TauxTaxe")
ERP_LINE = frozenset({"MontantLigne", "MontantTaxe"})
#: invoice fields the ERP or erpsync make (checked apart), not the items
MADE = frozenset({"NoFacture", "Référence", "Description", "TotalTaxes", "TotalAvecTaxes"})


def sent(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines as erpsync writes them (the ERP's own amounts left out)."""
    return [{name: line.get(name) for name in SENT_LINE} for line in lines]


def canonical(lines: list[dict[str, Any]]) -> str:
    """Lines as comparable text: every key and value, in the lines' order."""
    return json.dumps(sent(lines), sort_keys=True)


def expected_lines(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ERP line per billing item, in the items' order: the product by its ERP key, the
    quantity, the unit price, the item's text, and the mapped VAT rate."""
    return [
        {
            "strNoProduit": erp_id(item["productExternalId"]),
            "QteFacture": item["quantity"],
            "PrixUnitaire": item["unitPrice"],
            "DescriptionLigne": text(item["name"]),
            "TauxTaxe": item["vatValue"],
        }
        for item in sorted(items, key=lambda i: str(i["id"]))
    ]


def customer(activity: dict[str, Any]) -> str | None:
    """The ERP customer billed: the export's ``customerContact``, else its ``contact`` (the
    crawler doc's billing shape carries both; either may be absent)."""
    for contact in (activity.get("customerContact"), activity.get("contact")):
        found = erp_id((contact or {}).get("externalId"))
        if found is not None:
            return found
    return None


def expected_facture(activity: dict[str, Any]) -> dict[str, Any]:
    """The invoice fields an activity's items decide (the reference and the description are
    checked apart: erpsync makes them)."""
    items = activity["billingItems"]
    (currency,) = {item["currency"] for item in items}
    total = Decimal(0)
    for item in items:
        total += Decimal(str(item["quantity"])) * Decimal(str(item["unitPrice"]))
    return {
        "TypeDoc": "FACTURES",  # a customer invoice (the Acomba mapping page's TypeDoc)
        "DateFacture": max(item["billingDate"] for item in items)[:10],
        "InfoClientFacturerA": {"NoClient": customer(activity)},
        "LigneFacture": expected_lines(items),
        "TotalAvantTaxes": float(round(total, 2)),
        "Devise": currency,
    }


def by_customer_and_lines(invoices: list[dict[str, Any]]) -> dict[tuple[Any, str], dict[str, Any]]:
    """The stored invoices by customer and canonical lines."""
    by_lines: dict[tuple[Any, str], dict[str, Any]] = {}
    for stored in invoices:
        facture = stored["Facture"]
        by_lines[
            (facture["InfoClientFacturerA"]["NoClient"], canonical(facture["LigneFacture"]))
        ] = stored
    return by_lines


def no_invoice_problem(
    activity: dict[str, Any], want: dict[str, Any], invoices: list[dict[str, Any]]
) -> tuple[str, Any]:
    """An activity with no invoice of its lines, shown beside two of its customer's."""
    customer = want["InfoClientFacturerA"]["NoClient"]
    near = [
        sent(i["Facture"]["LigneFacture"])
        for i in invoices
        if i["Facture"]["InfoClientFacturerA"]["NoClient"] == customer
    ]
    return (
        activity["activity"]["id"],
        {"no invoice with lines": want["LigneFacture"], "the customer's": near[:2]},
    )


def erp_invoice_problems(
    activity: dict[str, Any], invoice: dict[str, Any], want: dict[str, Any]
) -> list[tuple[str, Any]]:
    """How the ERP invoice of an activity differs from what its items decide: fields and
    lines, fields nobody sent, its description, its stored total."""
    problems: list[tuple[str, Any]] = []
    facture = invoice["Facture"]
    got = {name: facture.get(name) for name in want}
    got["LigneFacture"] = sent(facture["LigneFacture"])
    if got != want:
        problems.append((activity["activity"]["id"], {"expected": want, "found": got}))
    unexpected = set(facture) - set(want) - MADE
    for line in facture["LigneFacture"]:
        unexpected |= set(line) - set(SENT_LINE) - ERP_LINE
    if unexpected:
        problems.append((activity["activity"]["id"], f"unexpected fields {unexpected}"))
    description = facture.get("Description") or ""
    refs = (activity["activity"]["refId"], activity["activity"]["name"])
    if not all(ref in description for ref in refs):
        problems.append((activity["activity"]["id"], f"description {description!r}"))
    if invoice["TotalAvantTaxes"] != want["TotalAvantTaxes"]:
        problems.append((activity["activity"]["id"], "the stored total"))
    return problems


def as_recorded(atollon: dict[str, Any]) -> dict[str, Any]:
    """An Atollon invoice-issued's number, date, customer and rows."""
    return {
        "invoiceNumber": atollon.get("invoiceNumber"),
        "issuedDate": atollon.get("issuedDate"),
        "customer": erp_id(atollon["customer"].get("customerExternalId")),
        "rows": [
            (
                row["description"],
                row["value"]["unitQuantity"],
                row["value"]["unitPrice"],
                row["value"]["currency"],
                row["value"]["VATPercent"],
                erp_id(row["product"].get("productExternalId")),
            )
            for row in sorted(atollon["rows"], key=lambda r: r["orderIndex"])
        ],
    }


def as_the_erp_stored(invoice: dict[str, Any]) -> dict[str, Any]:
    """The same of the ERP invoice: what Atollon must have recorded."""
    facture = invoice["Facture"]
    return {
        "invoiceNumber": invoice["NoFacture"],
        "issuedDate": facture["DateFacture"],
        "customer": facture["InfoClientFacturerA"]["NoClient"],
        "rows": [
            (
                line["DescriptionLigne"],
                line["QteFacture"],
                line["PrixUnitaire"],
                facture["Devise"],
                line["TauxTaxe"],
                line["strNoProduit"],
            )
            for line in facture["LigneFacture"]
        ],
    }


def test_every_field_and_line_of_each_invoice_is_what_its_atollon_items_hold(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    for system in ("onlineerp", "atollon"):
        with p.control(system) as client:
            client.post(
                "/_sandbox/seed", json={"customers": 60, "activities": 30}
            ).raise_for_status()
    activities = p.records("atollon", "billing")
    assert len(activities) == 30
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(targets=TARGET)

    invoices = p.records("onlineerp", "CustomerInvoice")
    assert len(invoices) == len(activities)
    references = [invoice["Facture"]["Référence"] for invoice in invoices]
    assert len(set(references)) == len(references), "one reference per invoice"
    by_lines = by_customer_and_lines(invoices)
    problems: list[tuple[str, Any]] = []
    recorded: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for activity in activities:
        want = expected_facture(activity)
        invoice = by_lines.get(
            (want["InfoClientFacturerA"]["NoClient"], canonical(want["LigneFacture"]))
        )
        if invoice is None:
            problems.append(no_invoice_problem(activity, want, invoices))
            continue
        problems += erp_invoice_problems(activity, invoice, want)
        recorded.append((activity, invoice))
    assert problems == [], problems[:5]

    # The same invoice recorded in Atollon (invoice-issued): number, reference, date,
    # customer, and a row per line with the line's text, quantity, price, currency, VAT.
    issued = {i.get("externalReferenceNumber"): i for i in p.records("atollon", "invoices")}
    assert len(issued) == len(invoices)
    for activity, invoice in recorded:
        facture = invoice["Facture"]
        atollon = issued.get(facture["Référence"])
        assert atollon is not None, facture["Référence"]
        assert as_recorded(atollon) == as_the_erp_stored(invoice), activity["activity"]["id"]

    after = p.records("atollon", "billing")
    assert {item["billingStatus"] for a in after for item in a["billingItems"]} == {"Billed"}
    assert {a["activity"]["statusName"] for a in after} == {ACTIVITY_STATUS}
    dead = [(e.key, e.code) for e in DeadLetterStore(p.redis, p.keys).iter_entries()]
    assert dead == []
