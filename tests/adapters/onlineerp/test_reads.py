"""The OnlineERP adapter's reads: paging to the last page, filters quoted and escaped, invoices
found by reference (httpx.MockTransport)."""

from __future__ import annotations

import pytest

from adapters.onlineerp import (
    MAX_PAGE_SIZE,
    odata_literal,
    where,
)
from erpsync.errors import (
    AmbiguousMatchError,
    PermanentError,
)
from tests.support.onlineerp_api import FakeHub, client_for, customer_json, invoice


def test_paging_stops_on_the_last_short_page() -> None:
    hub = FakeHub([customer_json(f"C{i:06d}") for i in range(1, 6)])
    client = client_for(hub)
    pages = list(client.iter_customer_pages(page_size=2))
    assert [[c.number for c in page] for page in pages] == [
        ["C000001", "C000002"],
        ["C000003", "C000004"],
        ["C000005"],
    ]
    assert hub.pages_asked() == [(0, 2), (2, 2), (4, 2)], "no request after the short page"
    assert all(r.url.params["$orderby"] == "NoClient asc" for r in hub.requests)


def test_paging_stops_on_an_empty_page() -> None:
    hub = FakeHub([customer_json(f"C{i:06d}") for i in range(1, 5)])
    numbers = [c.number for c in client_for(hub).iter_customers(page_size=2)]
    assert numbers == ["C000001", "C000002", "C000003", "C000004"]
    assert hub.pages_asked() == [(0, 2), (2, 2), (4, 2)]


def test_an_empty_entity_is_one_request() -> None:
    hub = FakeHub([])
    assert list(client_for(hub).iter_products()) == []
    assert hub.pages_asked() == [(0, 500)], "page_size comes from the settings"
    assert hub.requests[0].url.params["$orderby"] == "NoProduit asc"


def test_page_size_is_capped_at_the_hub_maximum() -> None:
    hub = FakeHub([])
    list(client_for(hub).iter_customer_pages(page_size=5000))
    assert hub.pages_asked() == [(0, MAX_PAGE_SIZE)]
    with pytest.raises(ValueError, match="page_size"):
        list(client_for(hub).iter_customers(page_size=0))


def test_a_server_that_ignores_skip_does_not_loop_forever() -> None:
    hub = FakeHub([customer_json(f"C{i:06d}") for i in range(1, 6)], ignore_skip=True)
    with pytest.raises(PermanentError, match="same page came back twice"):
        list(client_for(hub).iter_customers(page_size=2))
    assert len(hub.requests) == 2


def test_products_are_read_with_their_group_and_price() -> None:
    record = {
        "NoProduit": "P00001",
        "Description": "Boîte carton",
        "PrixVente": 12.34,
        "Devise": "CAD",
        "CodeTaxe": "TPS 5 %",
        "Unite": None,
        "EstActif": True,
        "GroupeProduit": {"CodeGroupe": "vêtements"},
        "Champ_Perso": "x",
    }
    (product,) = client_for(FakeHub([record])).iter_products()
    assert product.number == "P00001"
    assert str(product.price) == "12.34"
    assert (product.currency, product.tax_code, product.unit) == ("CAD", "TPS 5 %", None)
    assert product.group is not None
    assert product.group.code == "vêtements"
    assert product.to_erp() == record, "extra vendor fields survive a round trip"


def test_filter_literals_are_quoted_and_escaped() -> None:
    assert odata_literal("O'Brien") == "'O''Brien'"
    assert odata_literal("''") == "''''''"
    assert odata_literal(True) == "true"
    assert odata_literal(False) == "false"
    assert odata_literal(None) == "null"
    assert odata_literal(12) == "12"
    assert odata_literal(1.5) == "1.5"
    assert (
        where({"GroupeProduit.CodeGroupe": "vêtements", "EstActif": True})
        == "GroupeProduit.CodeGroupe eq 'vêtements' and EstActif eq true"
    )
    with pytest.raises(ValueError, match="field"):
        where({"NomClient eq 'x' or 1": "y"})
    with pytest.raises(ValueError, match="finite"):
        odata_literal(float("nan"))


def test_a_filter_reaches_the_server_intact_whatever_the_name_holds() -> None:
    name = 'Dupont & Fils "Émballages" 100% + l\'ami #1 ☕'
    hub = FakeHub([])
    list(client_for(hub).iter_customers(filter=where({"NomClient": name})))
    (request,) = hub.requests
    assert (
        request.url.params["$filter"]
        == "NomClient eq 'Dupont & Fils \"Émballages\" 100% + l''ami #1 ☕'"
    )
    raw = request.url.query.decode()
    assert "&" not in raw.split("filter=")[1].split("&$")[0].replace("%26", "")


def test_find_invoice_filters_on_the_reference() -> None:
    stored = {"NoFacture": "F-1001", "Facture": invoice().to_erp(exclude_none=True)}
    hub = FakeHub([stored])
    found = client_for(hub).find_invoice("ATL-7000001")
    assert found is not None
    assert found.number == "F-1001"
    assert found.invoice.reference == "ATL-7000001"
    assert hub.requests[0].url.path == "/api/Entity/CustomerInvoice"
    assert hub.requests[0].url.params["$filter"] == "Facture.Référence eq 'ATL-7000001'"
    assert client_for(FakeHub([])).find_invoice("none") is None


def test_two_invoices_with_one_reference_are_ambiguous() -> None:
    stored = {"NoFacture": "F-1", "Facture": invoice().to_erp(exclude_none=True)}
    hub = FakeHub([stored, {**stored, "NoFacture": "F-2"}])
    with pytest.raises(AmbiguousMatchError):
        client_for(hub).find_invoice("ATL-7000001")
