"""The Atollon adapter's billing: the documented export read field for field, updates sent
as documented, invoice statuses and documents read (httpx.MockTransport)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from adapters.atollon import (
    AtollonBillingItemStatus,
    AtollonBillingUpdate,
    AtollonStatusRef,
    BillingStatus,
)
from erpsync.errors import PermanentError
from tests.support.atollon_api import (
    DOCUMENTED_BILLING,
    DOCUMENTED_INVOICE_STATUS,
    INSTANCE,
    make_client,
    reply,
)


def test_documented_billing_export_is_read_field_for_field() -> None:
    client, recorder = make_client(
        lambda request: httpx.Response(
            200, content=DOCUMENTED_BILLING.encode(), headers={"content-type": "application/json"}
        )
    )

    activities = client.list_billing()

    assert recorder.last.url.params["billingStatus"] == "ToBeInvoiced"
    assert len(activities) == 1
    entry = activities[0]
    assert entry.activity.id == "0123000"  # the leading zero survives
    assert entry.activity.status_name == "<Activity custom status name>"
    assert entry.activity.created == "<2022-09-01T00:00>"
    assert entry.project is not None
    assert entry.project.id == "<project id>"
    assert entry.folder is not None
    assert entry.folder.ref_id == "<Folder REF ID>"
    assert entry.customer is not None
    assert entry.customer.name == "<Folder name>"
    assert entry.contact is not None
    assert entry.contact.company is not None
    assert entry.contact.company.company_name == "<company name>"
    assert entry.contact.person is not None
    assert entry.contact.person.last_name == "<surname>"
    assert entry.contact.external_id_for("<system1>") == "<Contact old id>"
    assert entry.contact.vat_no == "<VAT number>"
    assert entry.customer_contact is not None
    assert entry.customer_contact.external_id_for("<sytem2>") == "<Contact old id>"
    assert [item.id for item in entry.billing_items] == ["123456", "123457"]
    first, second = entry.billing_items
    assert first.product_name == "<Product name1>"
    assert first.product_refid == "<Product code>"
    assert first.name == "<Billing item text>"
    assert first.description == "<Billing item description>"
    assert first.quantity == Decimal("1")
    assert first.unit_price == Decimal("1000")
    assert first.vat_value is None
    assert first.currency == "<EUR, CZK, ...>"
    assert first.billing_date == "<2022-09-14T10:00>"
    assert first.billing_status == BillingStatus.TO_BE_INVOICED
    assert first.billing_type == 1
    assert second.billing_type == 2
    assert first.product_external_id_for("<system1>") == "<Product old id>"
    assert [(d.id, d.name) for d in entry.documents] == [
        ("123", "<Document name>"),
        ("456", "<Document name2>"),
    ]


def test_billing_reads_numeric_ids_vat_and_unknown_fields() -> None:
    body = [
        {
            "activity": {"id": 7000001, "statusName": "Completed", "extraField": 1},
            "billingItems": [
                {
                    "id": 900001,
                    "quantity": 3,
                    "unitPrice": 12.34,
                    "vatValue": 14.975,
                    "billingDate": "2026-10-02T10:00",
                    "billingStatus": "ToBeInvoiced",
                    "productExternalId": [{"system": "onlineerp", "id": "P00002"}],
                    "somethingNew": {"x": 1},
                }
            ],
            "unknownBlock": [],
        }
    ]
    client, recorder = make_client(reply(200, body))

    [entry] = client.list_billing(BillingStatus.BILLED)

    assert recorder.last.url.params["billingStatus"] == "Billed"
    assert entry.activity.id == "7000001"
    assert entry.project is None
    [item] = entry.billing_items
    assert item.id == "900001"
    assert item.unit_price == Decimal("12.34")
    assert item.vat_value == Decimal("14.975")
    assert item.billing_datetime == datetime(2026, 10, 2, 10, 0)
    assert item.product_external_id_for("onlineerp") == "P00002"
    assert entry.documents == []


def test_a_billing_answer_that_is_not_a_list_is_refused() -> None:
    client, _ = make_client(reply(200, {"result": "SUCCESS", "data": []}))

    with pytest.raises(PermanentError, match="unexpected response shape"):
        client.list_billing()


def test_update_billing_sends_the_documented_body() -> None:
    client, recorder = make_client(reply(200, {"result": "SUCCESS"}))
    updates = [
        AtollonBillingUpdate(
            activity=AtollonStatusRef(id="0123000", status_name="Invoiced"),
            project=AtollonStatusRef(id="8000001", status_name="Closed"),
            billing_items=[
                AtollonBillingItemStatus(id="123456", billing_status=BillingStatus.BILLED),
                AtollonBillingItemStatus(id="123457", billing_status=BillingStatus.CANCELLED),
            ],
        ),
        AtollonBillingUpdate.mark("0123001", ["123458"]),
    ]

    client.update_billing(updates)

    assert json.loads(recorder.last.content) == [
        {
            "activity": {"id": "0123000", "statusName": "Invoiced"},
            "project": {"id": "8000001", "statusName": "Closed"},
            "billingItems": [
                {"id": "123456", "billingStatus": "Billed"},
                {"id": "123457", "billingStatus": "Cancelled"},
            ],
        },
        {
            "activity": {"id": "0123001"},
            "billingItems": [{"id": "123458", "billingStatus": "Billed"}],
        },
    ]


def test_update_billing_with_nothing_to_update_sends_nothing() -> None:
    client, recorder = make_client(reply(200, {"result": "SUCCESS"}))

    client.update_billing([])

    assert recorder.requests == []


def test_update_billing_accepts_an_empty_success_answer() -> None:
    client, recorder = make_client(reply(200))

    client.update_billing([AtollonBillingUpdate.mark("1", ["2"])])

    assert len(recorder.requests) == 1


def test_invoice_statuses_read_the_documented_list_and_check_counts_them() -> None:
    client, _ = make_client(reply(200, DOCUMENTED_INVOICE_STATUS))

    states = client.invoice_statuses()
    summary = client.check()

    assert [(s.state_id, s.name, s.priority) for s in states] == [
        ("89342000", "Issued", 99),
        ("89342001", "Pending", 50),
        ("89342002", "Paid", 10),
    ]
    assert states[0].tree_handle == "60430000"
    assert "3 invoice states" in summary
    assert INSTANCE in summary
    assert "customer deactivations are not sent to Atollon" in summary
    assert "a customer deleted in the ERP stays in Atollon as it was" in summary


def test_download_document_returns_the_bytes_and_names_the_document() -> None:
    pdf = b"%PDF-1.7\n\x00\x01binary"
    client, recorder = make_client(
        lambda request: httpx.Response(
            200, content=pdf, headers={"content-type": "application/pdf"}
        )
    )

    content = client.download_document("123123")

    assert content == pdf
    assert recorder.last.url.params["docId"] == "123123"
