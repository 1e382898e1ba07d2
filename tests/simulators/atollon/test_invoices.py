"""The Atollon sandbox's invoices and orders, driven over real HTTP: the documented status
list, invoice-issued created and updated, the page's examples, reads by id, number and page."""

from __future__ import annotations

import httpx

from simulators.atollon._orders import page_example
from tests.support.atollon_sandbox import DOC_SALES_ORDER, ext, failed, ok, records


def test_invoice_status_list_is_the_documented_one(atollon: httpx.Client) -> None:
    answer = atollon.get("/crab/crawler/invoice_status")
    assert answer.status_code == 200
    states = answer.json()
    assert [(s["stateId"], s["name"], s["priority"]) for s in states] == [
        ("89342000", "Issued", 99),
        ("89342001", "Pending", 50),
        ("89342002", "Paid", 10),
        # the sandbox instance's own (docs/sandbox-conventions.md): a state for a cancelled
        # invoice, and the state of the page's own Sales Order example
        ("89342003", "Cancelled", 5),
        ("132606101", "Schv\u00e1leno", 60),
    ]
    assert set(states[0]) == {"stateId", "name", "priority", "enabled", "acl", "treeHandle"}


def test_invoice_issued_create_then_update_by_id(atollon: httpx.Client) -> None:
    invoice = {
        "invoiceNumber": "232410001",
        "issuedDate": "2026-10-01",
        "stateName": "Issued",
        "customer": {"customerName": "AGRO", "customerExternalId": ext("C1")},
        "rows": [{"description": "Tracteur", "value": {"netTotal": 650000, "currency": "CAD"}}],
        "totals": {"currency": "CAD", "total": 650000},
    }
    created = ok(atollon.post("/crab/crawler/invoice-issued", json=invoice))
    invoice_id = created["invoiceId"]
    updated = ok(
        atollon.put(
            "/crab/crawler/invoice-issued", params={"id": invoice_id}, json={"stateName": "Paid"}
        )
    )
    assert updated["invoiceId"] == invoice_id
    [stored] = records(atollon, "invoices")
    assert stored["id"] == invoice_id
    assert stored["stateName"] == "Paid"
    assert stored["rows"] == invoice["rows"]
    missing = atollon.put("/crab/crawler/invoice-issued", params={"id": "1"}, json={})
    assert failed(missing) == "Invoice not found: 1"
    bad_state = {**invoice, "stateName": "Lost"}
    answer = atollon.post("/crab/crawler/invoice-issued", json=bad_state)
    assert failed(answer).startswith("Unknown invoice status")
    assert len(records(atollon, "invoices")) == 1


def test_the_pages_own_sales_order_example_is_accepted_as_an_invoice(
    atollon: httpx.Client,
) -> None:
    created = ok(atollon.post("/crab/crawler/invoice-issued", json=DOC_SALES_ORDER))
    assert created["invoiceNumber"] == "232410001"
    stored = atollon.get("/crab/crawler/invoice-issued", params={"id": created["invoiceId"]})
    shown = stored.json()
    assert shown["id"] == created["invoiceId"] != DOC_SALES_ORDER["id"], "the id is Atollon's"
    assert {k: v for k, v in shown.items() if k not in ("id", "created", "modified")} == {
        k: v for k, v in DOC_SALES_ORDER.items() if k not in ("id", "created", "modified")
    }


def test_the_pages_whole_sales_order_example_is_accepted_as_an_invoice(
    atollon: httpx.Client,
) -> None:
    """The example as printed, every null attribute and custom field included."""
    example = page_example()
    assert example["rows"][0]["attributes"]["attrib9_id"] is None
    created = ok(atollon.post("/crab/crawler/invoice-issued", json=example))
    shown = atollon.get("/crab/crawler/invoice-issued", params={"id": created["invoiceId"]}).json()
    assert {k: v for k, v in shown.items() if k not in ("id", "created", "modified")} == {
        k: v for k, v in example.items() if k not in ("id", "created", "modified")
    }


def test_order_received_serves_the_pages_example_and_entered_orders(
    atollon: httpx.Client,
) -> None:
    url = "/crab/crawler/order-received"
    answer = atollon.get(url, params={"id": "133683101"})
    assert answer.status_code == 200
    assert answer.json() == page_example(), "the page's answer, as printed"
    assert failed(atollon.get(url, params={"id": "1"})) == "Order not found: 1"
    assert failed(atollon.get(url)) == "Invalid request: id is required"
    assert failed(atollon.get(url, params={"id": "133683101", "instance": "x"}), 403)

    order = {"invoiceNumber": "SO-2", "customer": {"customerExternalId": ext("C1")}, "rows": []}
    entered = atollon.post("/_sandbox/orders", json=order)
    assert entered.status_code == 201
    read = atollon.get(url, params={"id": entered.json()["id"]}).json()
    assert (read["invoiceNumber"], read["journalName"], read["customer"]) == (
        "SO-2",
        "Sales Order",
        order["customer"],
    )
    assert [o["invoiceNumber"] for o in records(atollon, "orders")] == ["232410001", "SO-2"]
    atollon.post("/_sandbox/reset")
    assert [o["id"] for o in records(atollon, "orders")] == [133683101]


def test_invoices_are_read_by_id_by_number_and_page_by_page(atollon: httpx.Client) -> None:
    """``GET invoice-issued`` is a sandbox convention (the page documents no read)."""
    ids = []
    for index in range(5):
        body = {"invoiceNumber": f"N{index % 4}", "rows": [], "totals": {"total": index}}
        ids.append(ok(atollon.post("/crab/crawler/invoice-issued", json=body))["invoiceId"])
    url = "/crab/crawler/invoice-issued"
    by_number = atollon.get(url, params={"invoiceNumber": "N0"}).json()
    assert [(i["id"], i["totals"]["total"]) for i in by_number] == [(ids[0], 0), (ids[4], 4)]
    assert atollon.get(url, params={"invoiceNumber": "N9"}).json() == []
    one = atollon.get(url, params={"id": ids[2]}).json()
    assert (one["invoiceNumber"], one["stateName"], one["state"]) == ("N2", "Issued", 89342000)
    assert failed(atollon.get(url, params={"id": "404"})) == "Invoice not found: 404"
    pages = [atollon.get(url, params={"offset": o, "limit": 2}).json() for o in (0, 2, 4)]
    assert [[i["id"] for i in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:]]
    assert failed(atollon.get(url, params={"limit": "x"})).endswith("must be a whole number")
