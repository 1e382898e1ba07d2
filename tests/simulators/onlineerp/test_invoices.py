"""The OnlineERP sandbox's invoices over real HTTP: numbered, taxed and totalled, paid or
cancelled, unique by reference, create-only, validated."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.onlineerp_sandbox import assert_error, create, invoice, keys


@pytest.mark.usefixtures("billing_data")
def test_invoice_is_created_with_a_number_and_a_total(api: httpx.Client) -> None:
    answer = api.post("/Entity/CustomerInvoice", json=invoice("ATL-1"))
    assert answer.status_code == 201
    stored = answer.json()
    number = stored["NoFacture"]
    assert isinstance(number, str)
    assert answer.headers["Location"].endswith(f"/api/Entity/CustomerInvoice/{number}")
    facture = stored["Facture"]
    assert facture["Référence"] == "ATL-1"
    assert facture["NoFacture"] == number
    assert facture["InfoClientFacturerA"] == {"NoClient": "C1"}
    assert facture["LigneFacture"][0]["PrixUnitaire"] == 10.0, "the product's price by default"
    assert facture["LigneFacture"][1]["PrixUnitaire"] == 7.25
    assert facture["LigneFacture"][2] == {"DescriptionLigne": "Merci de votre confiance"}
    assert stored["TotalAvantTaxes"] == facture["TotalAvantTaxes"] == 44.5
    assert api.get(f"/Entity/CustomerInvoice/{number}").json() == stored
    by_ref = api.get("/Entity/CustomerInvoice", params={"$filter": "Facture.Référence eq 'ATL-1'"})
    assert by_ref.json() == [stored]
    second = create(api, "CustomerInvoice", invoice("ATL-2"))
    assert second["NoFacture"] != number
    assert keys(api.get("/Entity/CustomerInvoice"), "NoFacture") == [number, second["NoFacture"]]
    by_client = api.get(
        "/Entity/CustomerInvoice",
        params={"$filter": "Facture.InfoClientFacturerA.NoClient eq 'C1'"},
    )
    assert len(by_client.json()) == 2


@pytest.mark.usefixtures("billing_data")
def test_the_erp_taxes_each_line_and_totals_the_invoice(api: httpx.Client) -> None:
    body = invoice("ATL-1")
    body["Facture"]["LigneFacture"][1]["TauxTaxe"] = 5
    stored = create(api, "CustomerInvoice", body)
    lines = stored["Facture"]["LigneFacture"]
    assert [
        (line.get("TauxTaxe"), line.get("MontantLigne"), line.get("MontantTaxe")) for line in lines
    ] == [(14.975, 30.0, 4.49), (5, 14.5, 0.73), (None, None, None)], (
        "the default rate (TPS + TVQ) unless the line names one; a text line is not taxed"
    )
    assert (stored["TotalAvantTaxes"], stored["TotalTaxes"], stored["TotalAvecTaxes"]) == (
        44.5,
        5.22,
        49.72,
    )
    assert (stored["Statut"], stored["MontantPaye"], stored["SoldeDu"]) == ("Ouverte", 0, 49.72)


@pytest.mark.usefixtures("billing_data")
def test_an_invoice_is_paid_in_part_then_in_full_or_cancelled_through_the_sandbox(
    api: httpx.Client, control: httpx.Client
) -> None:
    number = create(api, "CustomerInvoice", invoice("ATL-1"))["NoFacture"]
    other = create(api, "CustomerInvoice", invoice("ATL-2"))["NoFacture"]
    part = control.post(f"/_sandbox/invoices/{number}/payment", json={"Montant": 20})
    assert part.status_code == 200
    assert (part.json()["Statut"], part.json()["MontantPaye"], part.json()["SoldeDu"]) == (
        "PartiellementPayee",
        20,
        31.16,
    )
    rest = control.post(f"/_sandbox/invoices/{number}/payment")
    assert (rest.json()["Statut"], rest.json()["MontantPaye"], rest.json()["SoldeDu"]) == (
        "Payee",
        51.16,
        0,
    )
    assert api.get(f"/Entity/CustomerInvoice/{number}").json() == rest.json()
    cancelled = control.post(f"/_sandbox/invoices/{other}/cancel").json()
    assert (cancelled["Statut"], cancelled["SoldeDu"]) == ("Annulee", 0)
    refused = control.post(f"/_sandbox/invoices/{other}/payment", json={"Montant": 1})
    assert "cancelled" in assert_error(refused, 400, "InvalidBody")
    assert_error(control.post("/_sandbox/invoices/404/cancel"), 404, "NotFound")
    by_state = api.get("/Entity/CustomerInvoice", params={"$filter": "Statut eq 'Payee'"})
    assert [i["NoFacture"] for i in by_state.json()] == [number]


@pytest.mark.usefixtures("billing_data")
def test_invoice_reference_is_unique_409_and_412(api: httpx.Client) -> None:
    first = create(api, "CustomerInvoice", invoice("ATL-1"))
    retry = api.post(
        "/Entity/CustomerInvoice", json=invoice("ATL-1"), headers={"If-None-Match": "*"}
    )
    message = assert_error(retry, 412, "Exists")
    assert first["NoFacture"] in message
    assert_error(api.post("/Entity/CustomerInvoice", json=invoice("ATL-1")), 409, "Exists")
    assert len(api.get("/Entity/CustomerInvoice").json()) == 1


@pytest.mark.usefixtures("billing_data")
def test_invoices_are_create_only(api: httpx.Client) -> None:
    number = create(api, "CustomerInvoice", invoice("ATL-1"))["NoFacture"]
    for answer in (
        api.put(f"/Entity/CustomerInvoice/{number}", json=invoice("ATL-1")),
        api.put("/Entity/CustomerInvoice", json=invoice("ATL-1")),
        api.delete(f"/Entity/CustomerInvoice/{number}"),
    ):
        assert_error(answer, 405, "MethodNotAllowed")
        assert answer.headers["Allow"] == "GET, POST"
    assert api.get(f"/Entity/CustomerInvoice/{number}").status_code == 200


@pytest.mark.usefixtures("billing_data")
def test_invoice_validation_names_what_is_missing(api: httpx.Client, control: httpx.Client) -> None:
    unknown_client = api.post("/Entity/CustomerInvoice", json=invoice("ATL-1", client="C404"))
    assert "C404" in assert_error(unknown_client, 400, "InvalidBody")
    bad_line = invoice("ATL-1")
    bad_line["Facture"]["LigneFacture"].append({"strNoProduit": "P404", "QteFacture": 1})
    answer = api.post("/Entity/CustomerInvoice", json=bad_line)
    assert "P404" in assert_error(answer, 400, "InvalidBody")
    malformed: list[Any] = [
        {"Facture": "x"},
        {"Invoice": {}},
        [],
        invoice(""),
        invoice("ATL-1", LigneFacture=[]),
        invoice("ATL-1", LigneFacture=[{"QteFacture": 1}]),
        invoice("ATL-1", LigneFacture=[{"strNoProduit": "P1"}]),
        invoice("ATL-1", LigneFacture=[{"strNoProduit": "P1", "QteFacture": "2"}]),
        invoice("ATL-1", LigneFacture=["P1"]),
        invoice("ATL-1", InfoClientFacturerA={}),
        invoice("ATL-1", InfoClientFacturerA=None),
        invoice("ATL-1", TypeDoc="AVOIRS"),
        invoice("ATL-1", TypeDoc=["FACTURES"]),
        invoice("ATL-1", DateFacture="15/10/2026"),
    ]
    for body in malformed:
        assert_error(api.post("/Entity/CustomerInvoice", json=body), 400, "InvalidBody")
    assert control.get("/_sandbox/records/CustomerInvoice").json() == []
    assert create(api, "CustomerInvoice", invoice("ATL-1"))["NoFacture"] == "00000001", (
        "failed creates consume no invoice number"
    )
