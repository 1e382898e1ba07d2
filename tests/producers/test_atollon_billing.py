"""The Atollon billing stream: grouping per activity and the mapping onto canonical invoices."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from adapters import make_client
from adapters.atollon import AtollonBillingActivity, AtollonClient
from erpsync.billing import REFERENCE_MAX_LEN, billing_reference
from erpsync.events import content_fingerprint
from erpsync.models import Invoice
from erpsync.settings import AtollonSettings
from producers.atollon import AtollonBilling, billing_records

ERP = "onlineerp"
ACTIVITIES = TypeAdapter(list[AtollonBillingActivity])


def item(item_id: str, **overrides: Any) -> dict[str, Any]:
    """A billing item in the documented shape."""
    data: dict[str, Any] = {
        "id": item_id,
        "productName": "Boîte double cannelure",
        "productRefid": "P00007",
        "name": f"Travaux {item_id}",
        "description": "Travaux facturables",
        "quantity": 3.0,
        "unitPrice": 12.5,
        "vatValue": 14.975,
        "currency": "CAD",
        "billingDate": "2026-10-03T10:00",
        "billingStatus": "ToBeInvoiced",
        "billingType": 1,
        "productExternalId": [{"system": "other", "id": "X1"}, {"system": ERP, "id": "P00007"}],
    }
    data.update(overrides)
    return data


def activity(
    activity_id: str, items: list[dict[str, Any]], customer: str | None = "C000042"
) -> dict[str, Any]:
    """An activity of ``GET billing`` (as the vendor documents it)."""
    ids = [{"system": "crm", "id": "K-9"}]
    if customer is not None:
        ids.append({"system": ERP, "id": customer})
    return {
        "activity": {
            "id": activity_id,
            "name": "Intervention",
            "refId": f"ACT-{activity_id}",
            "statusName": "Completed",
            "created": "2026-09-01T00:00",
            "modified": "2026-10-05T09:00",
        },
        "project": {"id": "8000001", "name": "Projet", "statusName": "Open"},
        "folder": {"name": "Client", "refId": "F-1"},
        # The activity's own contact carries another ERP key: the customer contact decides.
        "contact": {"externalId": [{"system": ERP, "id": "C999999"}]},
        "customer": {"name": "Client", "refId": "F-1"},
        "customerContact": {"company": {"companyName": "Client inc."}, "externalId": ids},
        "billingItems": items,
        "documents": [],
    }


def records(
    *entries: dict[str, Any], today: dt.date = dt.date(2030, 1, 2)
) -> dict[str, dict[str, Any]]:
    parsed = ACTIVITIES.validate_python(list(entries))
    return {r.key: r.payload for r in billing_records(parsed, ERP, today=lambda: today)}


# -- the reference ---------------------------------------------------------------------------


def test_the_reference_depends_on_the_activity_and_the_set_of_items_only() -> None:
    reference = billing_reference("7000001", ["900012", "900010", "900011"])
    assert reference == billing_reference("7000001", ["900010", "900011", "900012"])
    assert reference == billing_reference("7000001", ["900011", "900010", "900012", "900010"])
    assert reference.startswith("ATL-7000001-")
    assert len(reference) <= REFERENCE_MAX_LEN
    assert reference != billing_reference("7000001", ["900010", "900011"]), "a subset differs"
    assert reference != billing_reference("7000002", ["900010", "900011", "900012"])


def test_a_long_activity_id_gives_a_hashed_reference_within_the_length() -> None:
    reference = billing_reference("723387101-0042", ["1", "2"])
    assert len(reference) <= REFERENCE_MAX_LEN
    assert reference.startswith("ATL-")
    assert reference == billing_reference("723387101-0042", ["2", "1"])
    assert reference != billing_reference("723387101-0042", ["1"])


# -- the mapping -----------------------------------------------------------------------------


def test_an_activity_becomes_one_invoice_with_a_line_per_item() -> None:
    entry = activity(
        "7000001",
        [
            item("900011", quantity=2.0, unitPrice=100.25, billingDate="2026-10-09T16:30"),
            item("900010", quantity=1.5, unitPrice=0.1, vatValue=5.0),
            item(
                "900012",
                name="Déplacement",
                quantity=1,
                unitPrice=45,
                productExternalId=[{"system": "other", "id": "Z"}],
            ),
        ],
    )
    (payload,) = records(entry).values()
    invoice = Invoice.model_validate(payload)

    assert invoice.reference == billing_reference("7000001", ["900010", "900011", "900012"])
    assert invoice.customer_key == "C000042", "the customer contact's ERP key, not the contact's"
    assert invoice.activity_id == "7000001"
    assert invoice.project_id == "8000001"
    assert invoice.billing_item_ids == ["900010", "900011", "900012"]
    assert invoice.currency == "CAD"
    assert invoice.date == "2026-10-09", "the latest billing date"
    assert "ACT-7000001" in invoice.description
    first, second, third = invoice.lines
    assert (first.source_item_id, first.product_key) == ("900010", "P00007")
    assert (first.quantity, first.unit_price, first.vat_rate) == (
        Decimal("1.5"),
        Decimal("0.1"),
        Decimal(5),
    )
    assert (second.quantity, second.unit_price, second.vat_rate) == (
        Decimal(2),
        Decimal("100.25"),
        Decimal("14.975"),
    )
    assert third.product_key is None, "no ERP product key: a text line"
    assert third.description == "Déplacement"
    assert invoice.total_before_tax == Decimal("1.5") * Decimal("0.1") + Decimal(
        "200.50"
    ) + Decimal(45)


def test_the_payload_does_not_depend_on_the_order_atollon_lists_items_in() -> None:
    items = [item("900010"), item("900011", quantity=7.0), item("900012", unitPrice=3.3)]
    forward = records(activity("7000001", items))["7000001"]
    backward = records(activity("7000001", list(reversed(items))))["7000001"]
    assert content_fingerprint("upsert", forward) == content_fingerprint("upsert", backward)


def test_every_activity_is_its_own_record_keyed_by_activity_id() -> None:
    found = records(
        activity("7000001", [item("900010")]),
        activity("7000002", [item("900020"), item("900021")], customer="C000007"),
    )
    assert set(found) == {"7000001", "7000002"}
    assert found["7000002"]["customer_key"] == "C000007"
    assert found["7000002"]["billing_item_ids"] == ["900020", "900021"]


def test_an_item_listed_twice_is_invoiced_once() -> None:
    found = records(
        activity("7000001", [item("900010"), item("900011")]),
        activity("7000001", [item("900011")]),
    )
    assert found["7000001"]["billing_item_ids"] == ["900010", "900011"]
    assert len(found["7000001"]["lines"]) == 2


def test_an_activity_mixing_currencies_becomes_one_invoice_per_currency() -> None:
    found = records(
        activity("7000001", [item("900010"), item("900011", currency="EUR"), item("900012")])
    )
    assert set(found) == {"7000001/C000042/CAD", "7000001/C000042/EUR"}
    cad = Invoice.model_validate(found["7000001/C000042/CAD"])
    eur = Invoice.model_validate(found["7000001/C000042/EUR"])
    assert (cad.currency, cad.billing_item_ids) == ("CAD", ["900010", "900012"])
    assert (eur.currency, eur.billing_item_ids) == ("EUR", ["900011"])
    assert cad.reference != eur.reference


def test_the_customer_is_the_customer_contact_else_the_contact() -> None:
    both = activity("7000001", [item("900010")])
    contact_only = activity("7000002", [item("900020")])
    contact_only["customerContact"] = None
    no_key_in_customer_contact = activity("7000003", [item("900030")], customer=None)
    found = records(both, contact_only, no_key_in_customer_contact)
    assert {key: payload["customer_key"] for key, payload in found.items()} == {
        "7000001": "C000042",
        "7000002": "C999999",
        "7000003": "C999999",
    }


def test_a_customer_without_an_erp_key_still_becomes_a_record_that_the_sink_refuses() -> None:
    entry = activity("7000001", [item("900010")], customer=None)
    entry["contact"] = {"person": {"lastName": "Roy"}, "externalId": []}
    (payload,) = records(entry).values()
    assert payload["customer_key"] is None
    with pytest.raises(ValidationError):
        Invoice.model_validate(payload)


def test_time_sheet_items_are_invoiced_with_the_others_or_apart_as_configured() -> None:
    entry = activity(
        "7000001", [item("900010"), item("900011", billingType=2), item("900012", billingType=2)]
    )
    parsed = ACTIVITIES.validate_python([entry])
    together = billing_records(parsed, ERP)
    assert [(r.key, r.payload["billing_item_ids"]) for r in together] == [
        ("7000001", ["900010", "900011", "900012"])
    ]
    assert together == billing_records(parsed, ERP, time_sheets="together")
    apart = billing_records(parsed, ERP, time_sheets="apart")
    assert [(r.key, r.payload["billing_item_ids"]) for r in apart] == [
        ("7000001/C000042/CAD", ["900010"]),
        ("7000001/C000042/CAD/timesheets", ["900011", "900012"]),
    ]
    assert apart[0].payload["reference"] != apart[1].payload["reference"]
    only_time_sheets = ACTIVITIES.validate_python(
        [activity("7000002", [item("900020", billingType=2)])]
    )
    assert [r.key for r in billing_records(only_time_sheets, ERP, time_sheets="apart")] == [
        "7000002"
    ], "an activity with one kind of item keeps its plain key"
    with pytest.raises(ValueError, match="time_sheets"):
        billing_records(parsed, ERP, time_sheets="merged")


def test_a_missing_price_is_not_invoiced_at_zero() -> None:
    (payload,) = records(activity("7000001", [item("900010", unitPrice=None)])).values()
    with pytest.raises(ValidationError):
        Invoice.model_validate(payload)


def test_the_date_falls_back_to_the_activity_then_to_today() -> None:
    undated = activity("7000001", [item("900010", billingDate=None)])
    assert records(undated)["7000001"]["date"] == "2026-10-05", "the activity's modified date"
    bare = copy.deepcopy(undated)
    bare["activity"]["modified"] = None
    bare["activity"]["created"] = None
    assert records(bare, today=dt.date(2030, 1, 2))["7000001"]["date"] == "2030-01-02"


# -- the stream ------------------------------------------------------------------------------


def test_the_stream_lists_items_to_be_invoiced_as_one_page() -> None:
    seen: list[httpx.Request] = []
    body = [activity("7000001", [item("900010")]), activity("7000002", [item("900020")])]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    settings = AtollonSettings(base_url="http://127.0.0.1:9/", instance="sandbox")
    with make_client(settings, transport=httpx.MockTransport(handler)) as http:
        stream = AtollonBilling(
            "billing", "atollon", "billing", ["onlineerp"], client=AtollonClient(http, settings)
        )
        pages = list(stream.pages())
    assert [[r.key for r in page] for page in pages] == [["7000001", "7000002"]]
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/crab/crawler/billing"
    assert request.url.params["billingStatus"] == "ToBeInvoiced"
    assert request.url.params["instance"] == "sandbox"
    assert pages[0][0].payload["activity_id"] == "7000001"
