"""ERP invoice states to the Atollon invoice: found once by number, then by the ledger's id.

Atollon is a fake behind ``httpx.MockTransport`` answering as the sandbox conventions say
(``GET invoice-issued?invoiceNumber=`` a list, ``PUT invoice-issued?id=`` with
``{"stateName"}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from adapters import make_client
from delivery.engine import ApplyContext
from delivery.sinks.invoices import AtollonInvoiceSink, invoice_state_map
from delivery.sinks.router import NotViewableError, ViewableSinkRouter, route
from erpsync.errors import AmbiguousMatchError, DependencyError, PermanentError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings
from state.store import LedgerEntry
from tests.support import make_event

SETTINGS = AtollonSettings(base_url="http://127.0.0.1:9", instance="sandbox")


@dataclass
class FakeAtollon:
    invoices: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/crab/crawler/invoice-issued"
        if request.method == "GET" and "invoiceNumber" in request.url.params:
            number = request.url.params["invoiceNumber"]
            self.calls.append(f"find {number}")
            return httpx.Response(
                200, json=[i for i in self.invoices if i["invoiceNumber"] == number]
            )
        if request.method == "GET":
            offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
            self.calls.append(f"list {offset}")
            return httpx.Response(200, json=self.invoices[offset : offset + limit])
        assert request.method == "PUT"
        invoice_id = request.url.params["id"]
        state = json.loads(request.content)["stateName"]
        self.calls.append(f"put {invoice_id} {state}")
        next(i for i in self.invoices if i["id"] == invoice_id)["stateName"] = state
        return httpx.Response(200, json={"result": "SUCCESS", "invoiceId": invoice_id})


def make_sink(atollon: FakeAtollon, fields: dict[str, str] | None = None) -> AtollonInvoiceSink:
    mapping = TargetMapping.model_validate({"fields": fields or {}})
    return AtollonInvoiceSink(
        SETTINGS, make_client(SETTINGS, transport=httpx.MockTransport(atollon)), mapping
    )


def payload(number: str = "00000001", state: str = "open", **more: Any) -> dict[str, Any]:
    return {
        "number": number,
        "reference": "ATL-7000001-1a2b3c4d",
        "state": state,
        "customer_key": "C000042",
        "date": "2026-10-09",
        "currency": None,
        "total": "21.0",
        "total_taxes": "3.14",
        "total_with_taxes": "24.14",
        "amount_paid": "0",
        "balance": "24.14",
        "lines": [
            {
                "product_key": "P00001",
                "description": "Travaux",
                "quantity": "2",
                "unit_price": "10.5",
                "net": "21.0",
                "tax_rate": "14.975",
                "tax": "3.14",
            },
            {"product_key": None, "description": "Merci", "quantity": None, "unit_price": None},
        ],
        **more,
    }


def event(body: dict[str, Any]) -> ChangeEvent:
    """An ERP invoice's state, keyed by its number."""
    return make_event(body, flow="invoices", entity="invoice", key=body["number"])


def context(target_id: str | None = None) -> ApplyContext:
    ledger = (
        None
        if target_id is None
        else LedgerEntry(fingerprint="x", source_version=0, target_id=target_id)
    )
    return ApplyContext(ledger=ledger, parent=None, lookup=lambda entity, key: None)


def recorded(number: str = "00000001", state: str = "Issued", **more: Any) -> dict[str, Any]:
    ext = [{"system": "onlineerp", "id": "C000042"}]
    return {
        "id": f"A{number[-1]}",
        "invoiceNumber": number,
        "externalReferenceNumber": "ATL-7000001-1a2b3c4d",
        "issuedDate": "2026-10-09",
        "stateName": state,
        "customer": {"customerExternalId": ext, "contactExternalId": ext},
        "rows": [
            {
                "orderIndex": 0,
                "value": {
                    "netTotal": 21.0,
                    "currency": "CAD",
                    "unitPrice": 10.5,
                    "unitQuantity": 2.0,
                    "VATPercent": 14.975,
                    "VATValue": 3.14,
                },
                "product": {"productExternalId": [{"system": "onlineerp", "id": "P00001"}]},
            }
        ],
        "totals": {"currency": "CAD", "total": 24.14, "totalWithVAT": 24.14},
        **more,
    }


def test_the_default_map_and_the_flows_overrides() -> None:
    assert invoice_state_map(None) == {
        "open": "Issued",
        "partly_paid": "Pending",
        "paid": "Paid",
        "cancelled": "Cancelled",
    }
    mapping = TargetMapping.model_validate({"fields": {"paid": "Payée", "cancelled": " "}})
    assert invoice_state_map(mapping)["paid"] == "Payée"
    assert invoice_state_map(mapping)["cancelled"] == "Cancelled", "a blank name is no name"


def test_a_paid_invoice_is_found_by_number_then_set_paid_once() -> None:
    atollon = FakeAtollon(invoices=[recorded()])
    result = make_sink(atollon).apply(event(payload(state="paid")), context())
    assert (result.action, result.target_id, result.counts) == ("updated", "A1", ("invoice_paid",))
    assert atollon.calls == ["find 00000001", "put A1 Paid"]
    assert atollon.invoices[0]["stateName"] == "Paid"

    atollon.calls.clear()
    result = make_sink(atollon).apply(event(payload(state="cancelled")), context("A1"))
    assert atollon.calls == ["put A1 Cancelled"], "the ledger's id: no look-up"
    assert result.target_id == "A1"


def test_a_state_atollon_already_shows_is_not_put_again() -> None:
    atollon = FakeAtollon(invoices=[recorded(state="Issued")])
    result = make_sink(atollon).apply(event(payload(state="open")), context())
    assert (result.action, result.target_id, result.counts) == ("unchanged", "A1", ())
    assert atollon.calls == ["find 00000001"]


def test_an_invoice_not_recorded_yet_waits_unless_it_is_still_open() -> None:
    atollon = FakeAtollon()
    result = make_sink(atollon).apply(event(payload(state="open")), context())
    assert (result.action, result.target_id) == ("unchanged", None), (
        "the billing saga records it with the state it reads from the ERP"
    )
    with pytest.raises(DependencyError) as caught:
        make_sink(atollon).apply(event(payload(state="paid")), context())
    assert caught.value.vendor_code == "invoice-not-recorded"
    assert "00000001" in (caught.value.hint or "")
    assert [c for c in atollon.calls if c.startswith("put")] == []


def test_a_repair_of_a_missing_invoice_names_the_billing_flow() -> None:
    atollon = FakeAtollon()
    forced = ApplyContext(ledger=None, parent=None, lookup=lambda e, k: None, forced=True)
    with pytest.raises(PermanentError) as caught:
        make_sink(atollon).apply(event(payload(state="open")), forced)
    assert caught.value.vendor_code == "invoice-not-recorded"
    assert "billing flow" in (caught.value.hint or "")
    assert atollon.calls == ["find 00000001"]


def test_two_atollon_invoices_with_one_number_are_an_ambiguity() -> None:
    atollon = FakeAtollon(invoices=[recorded(), {**recorded(), "id": "A7"}])
    with pytest.raises(AmbiguousMatchError) as caught:
        make_sink(atollon).apply(event(payload(state="paid")), context())
    assert "A1, A7" in (caught.value.hint or "")


def test_an_unmapped_erp_state_is_permanent_with_a_hint() -> None:
    atollon = FakeAtollon(invoices=[recorded()])
    with pytest.raises(PermanentError) as caught:
        make_sink(atollon).apply(event(payload(state="EnRecouvrement")), context())
    assert caught.value.vendor_code == "unmapped-invoice-state"
    assert "EnRecouvrement" in str(caught.value)
    assert atollon.calls == []


def test_the_view_of_an_erp_invoice_equals_what_atollon_shows_of_it() -> None:
    atollon = FakeAtollon(invoices=[recorded(state="Paid"), {"id": "B1", "invoiceNumber": "X"}])
    sink = make_sink(atollon)
    (observed,) = sink.observed("invoice")
    assert (observed.key, observed.target_id) == ("00000001", "A1")
    expected = sink.expected("invoice", payload(state="paid"))
    assert expected == {
        "number": "00000001",
        "reference": "ATL-7000001-1a2b3c4d",
        "customer_key": "C000042",
        "date": "2026-10-09",
        "state": "Paid",
        "total": "21",
        "total_taxes": "3.14",
        "total_with_taxes": "24.14",
        "lines": [
            {
                "product_key": "P00001",
                "quantity": "2",
                "unit_price": "10.5",
                "net": "21",
                "tax_rate": "14.975",
                "tax": "3.14",
            }
        ],
    }, "the text line is not recorded in Atollon; no currency unless the ERP has one"
    assert {k: observed.fields[k] for k in expected} == expected
    assert observed.fields["currency"] == "CAD"
    other = sink.expected("invoice", payload(state="open", total_with_taxes="30"))
    assert {k for k in other if other[k] != observed.fields.get(k)} == {
        "state",
        "total_with_taxes",
    }
    assert sink.known_limits("invoice") == []


class _Customers:
    target = "atollon"

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return True

    def apply(self, event: ChangeEvent, context: ApplyContext) -> Any:
        raise AssertionError("not routed here")


def test_a_router_sends_each_entity_to_its_sink_and_shows_what_each_can() -> None:
    atollon = FakeAtollon(invoices=[recorded()])
    invoices = make_sink(atollon)
    router = route("atollon", [_Customers(), invoices])
    assert isinstance(router, ViewableSinkRouter)
    assert router.handles("customer")
    assert router.handles("invoice")
    assert not router.handles("product")
    result = router.apply(event(payload(state="paid")), context())
    assert result.target_id == "A1"
    assert router.needs_parent(event(payload())) is False
    assert [o.key for o in router.observed("invoice")] == ["00000001"]
    assert router.known_limits("customer") == []
    with pytest.raises(NotViewableError, match="cannot show its customer records"):
        router.observed("customer")
    with pytest.raises(NotViewableError):
        router.expected("customer", {})
    assert route("atollon", [invoices]) is invoices
