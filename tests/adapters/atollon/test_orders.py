"""``GET order-received``: the documented read of one received sales order."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from adapters.atollon.invoices import AtollonInvoiceClient
from erpsync.errors import ErrorClass, SyncError
from erpsync.settings import AtollonSettings
from simulators.atollon._orders import page_example

BASE_URL = "https://atollon.example"


def make_client(answer: httpx.Response) -> tuple[AtollonInvoiceClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    settings = AtollonSettings(base_url=BASE_URL, instance="acme")
    http = httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(handler))
    return AtollonInvoiceClient(http, settings), seen


def test_the_pages_sales_order_is_read_field_by_field() -> None:
    client, seen = make_client(httpx.Response(200, json=page_example()))
    order = client.get_order_received("133683101")
    [request] = seen
    assert (request.method, request.url.path) == ("GET", "/crab/crawler/order-received")
    assert dict(request.url.params) == {"id": "133683101", "instance": "acme"}
    assert (order.id, order.invoice_number, order.journal_name, order.state_name) == (
        "133683101",
        "232410001",
        "Sales Order",
        "Schv\u00e1leno",
    )
    assert (order.issued_date, order.taxation_date, order.external_number) == (
        "2024-04-26",
        "2024-04-26",
        None,
    )
    assert order.customer is not None
    assert order.customer.customer_name == "AGRO s.r.o."
    assert [(e.system, e.id) for e in order.customer.customer_external_id] == [
        ("<system1>", "<Contact old id>"),
        ("<system2>", "<Contact old id>"),
    ]
    [row] = order.rows
    assert (row.order_index, row.value.net_total, row.value.vat_percent) == (
        0,
        Decimal(650000),
        Decimal(21),
    )
    assert row.value.vat_value == Decimal(136500)
    assert row.product is not None
    assert row.product.item_name == "Lindner Geotrac"
    assert order.totals is not None
    assert (order.totals.currency, order.totals.total, order.totals.total_with_vat) == (
        "CZK",
        Decimal(786500),
        Decimal(786500),
    )


def test_an_unknown_order_is_a_permanent_fail_without_the_message_in_the_error() -> None:
    body = {"result": "FAIL", "message": "Order not found: 9"}
    client, _ = make_client(httpx.Response(200, content=json.dumps(body).encode()))
    with pytest.raises(SyncError) as caught:
        client.get_order_received("9")
    assert caught.value.error_class is ErrorClass.PERMANENT
    assert (caught.value.vendor_code, caught.value.operation) == ("FAIL", "get_order_received")


def test_an_empty_id_is_refused_before_any_call() -> None:
    client, seen = make_client(httpx.Response(200, json={}))
    with pytest.raises(ValueError, match="order_id"):
        client.get_order_received("")
    assert seen == []


def test_an_answer_that_is_not_an_order_is_an_unexpected_shape() -> None:
    client, _ = make_client(httpx.Response(200, json={"invoiceNumber": "x"}))
    with pytest.raises(SyncError) as caught:
        client.get_order_received("1")
    assert "id" in str(caught.value)
