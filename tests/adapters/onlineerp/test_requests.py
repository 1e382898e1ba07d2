"""The OnlineERP adapter's requests: auth, company id and timeouts, escaped keys, the invoice's
If-None-Match and shape, vendor names, no secret anywhere (httpx.MockTransport)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.onlineerp import (
    ErpCustomer,
    ErpInvoiceCreated,
    ErpInvoiceLine,
    OnlineErpClient,
)
from erpsync.errors import (
    AuthError,
)
from tests.support.onlineerp_api import (
    BASE_URL,
    BASIC,
    LICENCE,
    SECRET,
    Recorder,
    _answer,
    client_for,
    customer_json,
    invoice,
    settings,
    vendor_error,
)


def test_basic_auth_company_id_and_timeouts_on_every_request() -> None:
    recorder = Recorder()
    client = client_for(recorder)
    client.check()
    list(client.iter_customers())
    client.get_customer("C000001")
    client.create_customer(ErpCustomer(number="C000002", name="B"))
    client.update_customer(ErpCustomer(number="C000002", name="B2"))
    client.delete_customer("C000002")
    client.create_invoice(invoice())
    assert len(recorder.requests) == 7
    for request in recorder.requests:
        assert request.headers["Authorization"] == BASIC
        assert request.headers["COMPANY_ID"] == "7"
        assert request.extensions["timeout"] == {
            "connect": 3.0,
            "read": 42.0,
            "write": 42.0,
            "pool": 42.0,
        }


def test_the_injected_client_is_not_given_the_secret() -> None:
    recorder = Recorder()
    http = httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(recorder))
    OnlineErpClient(http, settings()).check()
    assert http.auth is None
    assert "authorization" not in {k.lower() for k in http.headers}


def test_keys_are_escaped_in_paths() -> None:
    recorder = Recorder()
    client = client_for(recorder)
    client.get_customer("A/B 1")
    assert recorder.requests[0].url.raw_path == b"/api/Entity/Customer/A%2FB%201"


def test_invoice_create_sends_if_none_match_and_the_facture_shape() -> None:
    recorder = Recorder()
    created = client_for(recorder).create_invoice(invoice())
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.url.path == "/api/Entity/CustomerInvoice"
    assert request.headers["If-None-Match"] == "*"
    assert json.loads(request.content) == {
        "Facture": {
            "TypeDoc": "FACTURES",
            "Référence": "ATL-7000001",
            "Description": "Intervention 1",
            "InfoClientFacturerA": {"NoClient": "C000042"},
            "LigneFacture": [
                {"strNoProduit": "P00007", "QteFacture": 2.0, "PrixUnitaire": 12.5},
                {"DescriptionLigne": "Travaux facturables"},
            ],
        }
    }
    assert created.number == "F-1"
    assert created.invoice.reference == "ATL-7000001"
    assert created.total_before_taxes is not None
    assert float(created.total_before_taxes) == 25.0


def test_other_writes_do_not_send_if_none_match() -> None:
    recorder = Recorder()
    client_for(recorder).create_customer(ErpCustomer(number="C000002", name="B"))
    assert "If-None-Match" not in recorder.requests[0].headers


def test_customer_writes_use_the_vendor_names_and_keep_custom_fields() -> None:
    recorder = Recorder()
    source = ErpCustomer.model_validate(customer_json("C000003", Champ_Perso_1="VIP"))
    updated = client_for(recorder).update_customer(source)
    (request,) = recorder.requests
    assert request.method == "PUT"
    assert request.url.path == "/api/Entity/Customer/C000003"
    assert json.loads(request.content) == customer_json("C000003", Champ_Perso_1="VIP")
    assert updated.model_extra == {"Champ_Perso_1": "VIP"}
    assert updated.address is not None
    assert updated.address.city == "Montréal"


def test_get_answers_none_for_an_unknown_record() -> None:
    missing = _answer(vendor_error(404, "NotFound", "introuvable"))
    assert client_for(missing).get_customer("C999999") is None
    assert client_for(missing).get_product("P99999") is None
    assert client_for(missing).get_invoice("F-9") is None


def test_check_describes_the_company_without_the_secret() -> None:
    description = client_for(Recorder()).check()
    assert LICENCE in description
    assert "company 7" in description
    assert SECRET not in description


@pytest.mark.parametrize(
    "answer",
    [
        {"NoFacture": "F-1", "Facture": invoice().to_erp()},
        {"Facture": {"NoFacture": "F-1", **invoice().to_erp()}},
        {"NoFacture": "F-1", **invoice().to_erp()},
    ],
    ids=["number beside Facture", "number inside Facture", "bare Facture"],
)
def test_a_stored_invoice_is_read_whichever_level_holds_its_number(
    answer: dict[str, Any],
) -> None:
    created = ErpInvoiceCreated.model_validate(answer)
    assert created.number == "F-1"
    assert created.invoice.bill_to.customer_number == "C000042"


def test_an_invoice_line_needs_a_product_or_a_text() -> None:
    with pytest.raises(ValueError, match="strNoProduit"):
        ErpInvoiceLine(quantity=Decimal(1))


def test_auth_error_dict_carries_no_secret() -> None:
    with pytest.raises(AuthError) as caught:
        client_for(_answer(vendor_error(401, "Unauthorized"))).check()
    dumped = json.dumps(caught.value.to_dict(), ensure_ascii=False)
    assert SECRET not in dumped
    assert BASIC.split()[1] not in dumped
