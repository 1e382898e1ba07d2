"""OnlineERP adapter against httpx.MockTransport: errors, paging, quoting, auth, idempotency."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.onlineerp import (
    MAX_PAGE_SIZE,
    ErpBillTo,
    ErpCustomer,
    ErpInvoice,
    ErpInvoiceCreated,
    ErpInvoiceLine,
    ErpProduct,
    OnlineErpClient,
    odata_literal,
    table,
    where,
)
from erpsync.errors import (
    AmbiguousMatchError,
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    RecordExistsError,
    RecordMissingError,
    SyncError,
    TransientError,
)
from erpsync.settings import OnlineErpSettings

BASE_URL = "https://erp.example/api"
LICENCE = "LIC-4711"
SECRET = "s3cr3t-Xq9-value"
BASIC = "Basic " + base64.b64encode(f"{LICENCE}:{SECRET}".encode()).decode()
BODY_MARKER = "BODY-MARKER-7f3a"

Handler = Callable[[httpx.Request], httpx.Response]


def settings(**overrides: Any) -> OnlineErpSettings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "licence_code": LICENCE,
        "secret": SecretStr(SECRET),
        "company_id": "7",
        "timeout_s": 42.0,
        "connect_timeout_s": 3.0,
        "page_size": 500,
    }
    values.update(overrides)
    return OnlineErpSettings(**values)


def client_for(handler: Handler, **kwargs: Any) -> OnlineErpClient:
    http = httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(handler))
    return OnlineErpClient(http, settings(), **kwargs)


def customer_json(number: str, **extra: Any) -> dict[str, Any]:
    return {
        "NoClient": number,
        "NomClient": f"Client {number}",
        "NoClientParent": None,
        "Courriel": f"{number.lower()}@exemple.qc.ca",
        "Telephone": "+1 514 555 0000",
        "Adresse": {
            "Ligne1": "1 rue Principale",
            "Ville": "Montréal",
            "Province": "QC",
            "CodePostal": "H2X 1Y4",
            "Pays": "CA",
        },
        "NoTPS": "123456789RT0001",
        "Langue": "FR",
        "EstActif": True,
        **extra,
    }


def invoice() -> ErpInvoice:
    return ErpInvoice(
        reference="ATL-7000001",
        description="Intervention 1",
        bill_to=ErpBillTo(customer_number="C000042"),
        lines=[
            ErpInvoiceLine(
                product_number="P00007", quantity=Decimal(2), unit_price=Decimal("12.50")
            ),
            ErpInvoiceLine(description="Travaux facturables"),
        ],
    )


def vendor_error(
    status: int, code: str | None, message: str = "", **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"Message": f"{message} {BODY_MARKER} {SECRET}".strip()}
    if code is not None:
        body["Code"] = code
    return httpx.Response(status, json=body, headers=headers)


# --------------------------------------------------------------------------- the error table


def _raise(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def _answer(response: httpx.Response) -> Handler:
    return lambda request: response


def _call_list(c: OnlineErpClient) -> object:
    return list(c.iter_customers())


def _call_create_invoice(c: OnlineErpClient) -> object:
    return c.create_invoice(invoice())


def _call_create_customer(c: OnlineErpClient) -> object:
    return c.create_customer(ErpCustomer(number="C000001", name="Dupont", parent_number="C000009"))


def _call_update(c: OnlineErpClient) -> object:
    return c.update_product(ErpProduct(number="P00001", description="Boîte"))


def _call_delete(c: OnlineErpClient) -> object:
    c.delete_customer("C000001")
    return None


def _call_get(c: OnlineErpClient) -> object:
    return c.get_customer("C000001")


def _call_check(c: OnlineErpClient) -> object:
    return c.check()


@dataclass
class Case:
    id: str
    handler: Handler
    call: Callable[[OnlineErpClient], object]
    error_type: type[SyncError]
    status_code: int | None = None
    vendor_code: str | None = None
    retry_after_s: float | None = None
    operation: str = "list customers"
    words: list[str] = field(default_factory=list)


CASES = [
    Case(
        "RobotOffline 503",
        _answer(vendor_error(503, "RobotOffline", "Robot non connecté", **{"Retry-After": "30"})),
        _call_list,
        TransientError,
        503,
        "RobotOffline",
        30.0,
    ),
    Case(
        "RobotTimeout 504",
        _answer(vendor_error(504, "RobotTimeout", "Délai dépassé")),
        _call_list,
        TransientError,
        504,
        "RobotTimeout",
    ),
    Case(
        "Exists 409 on create",
        _answer(vendor_error(409, "Exists", "Le client existe déjà")),
        _call_create_customer,
        RecordExistsError,
        409,
        "Exists",
        operation="create customer",
    ),
    Case(
        "Exists 412 on invoice create",
        _answer(vendor_error(412, "Exists", "La facture existe déjà")),
        _call_create_invoice,
        RecordExistsError,
        412,
        "Exists",
        operation="create invoice",
    ),
    Case(
        "412 without a body",
        _answer(httpx.Response(412)),
        _call_create_invoice,
        RecordExistsError,
        412,
        None,
        operation="create invoice",
    ),
    Case(
        "NotFound 404 on update",
        _answer(vendor_error(404, "NotFound", "Produit introuvable")),
        _call_update,
        RecordMissingError,
        404,
        "NotFound",
        operation="update product",
    ),
    Case(
        "NotFound 404 on delete",
        _answer(vendor_error(404, "NotFound", "Client introuvable")),
        _call_delete,
        RecordMissingError,
        404,
        "NotFound",
        operation="delete customer",
    ),
    Case(
        "InvalidBody naming the invoice's customer",
        _answer(vendor_error(400, "InvalidBody", "Client C000042 inexistant")),
        _call_create_invoice,
        DependencyError,
        400,
        "InvalidBody/Customer",
        operation="create invoice",
        words=["customer"],
    ),
    Case(
        "InvalidBody naming a line's product",
        _answer(vendor_error(400, "InvalidBody", "LigneFacture[0]: P00007")),
        _call_create_invoice,
        DependencyError,
        400,
        "InvalidBody/Product",
        operation="create invoice",
        words=["product"],
    ),
    Case(
        "InvalidBody saying the product is unknown",
        _answer(vendor_error(400, "InvalidBody", "Unknown product")),
        _call_create_invoice,
        DependencyError,
        400,
        "InvalidBody/Product",
        operation="create invoice",
    ),
    Case(
        "InvalidBody naming the customer's parent",
        _answer(vendor_error(400, "InvalidBody", "NoClientParent C000009 n'existe pas")),
        _call_create_customer,
        DependencyError,
        400,
        "InvalidBody/Customer",
        operation="create customer",
    ),
    Case(
        "other InvalidBody",
        _answer(vendor_error(400, "InvalidBody", "DateFacture invalide")),
        _call_create_invoice,
        PermanentError,
        400,
        "InvalidBody",
        operation="create invoice",
    ),
    Case(
        "InvalidFilter",
        _answer(vendor_error(400, "InvalidFilter", "Champ inconnu")),
        _call_list,
        PermanentError,
        400,
        "InvalidFilter",
    ),
    Case(
        "Unauthorized 401",
        _answer(vendor_error(401, "Unauthorized", "Bad licence")),
        _call_check,
        AuthError,
        401,
        "Unauthorized",
        operation="check",
    ),
    Case(
        "Forbidden 403 (company)",
        _answer(vendor_error(403, "Forbidden", "Company 7")),
        _call_check,
        AuthError,
        403,
        "Forbidden",
        operation="check",
    ),
    Case(
        "401 without a body",
        _answer(httpx.Response(401)),
        _call_get,
        AuthError,
        401,
        None,
        operation="get customer",
    ),
    Case(
        "MethodNotAllowed 405",
        _answer(vendor_error(405, "MethodNotAllowed", "PUT")),
        _call_update,
        PermanentError,
        405,
        "MethodNotAllowed",
        operation="update product",
    ),
    Case(
        "429 with Retry-After",
        _answer(httpx.Response(429, headers={"Retry-After": "12"})),
        _call_list,
        TransientError,
        429,
        None,
        12.0,
    ),
    Case(
        "500 without a code",
        _answer(httpx.Response(500, json={"Message": BODY_MARKER})),
        _call_list,
        TransientError,
        500,
        None,
    ),
    Case(
        "502 HTML page from a proxy",
        _answer(httpx.Response(502, html=f"<html><body>{BODY_MARKER}</body></html>")),
        _call_list,
        TransientError,
        502,
        None,
    ),
    Case(
        "undocumented code falls back on the status",
        _answer(vendor_error(400, "SomethingNew", "?")),
        _call_list,
        PermanentError,
        400,
        "SomethingNew",
    ),
    Case(
        "404 without the vendor's code (wrong base_url)",
        _answer(httpx.Response(404, html=f"<h1>{BODY_MARKER}</h1>")),
        _call_get,
        PermanentError,
        404,
        None,
        operation="get customer",
    ),
    Case(
        "ConnectError",
        _raise(httpx.ConnectError("connection refused")),
        _call_list,
        TransientError,
    ),
    Case(
        "ReadTimeout",
        _raise(httpx.ReadTimeout("timed out")),
        _call_create_invoice,
        TransientError,
        operation="create invoice",
    ),
    Case(
        "RemoteProtocolError",
        _raise(httpx.RemoteProtocolError("peer closed connection")),
        _call_list,
        TransientError,
    ),
    Case(
        "HTML page with 200",
        _answer(httpx.Response(200, html=f"<html>{BODY_MARKER}</html>")),
        _call_list,
        TransientError,
        200,
    ),
    Case(
        "truncated JSON",
        _answer(
            httpx.Response(
                200,
                content=b'[{"NoClient": "C1", "NomClient": "' + BODY_MARKER.encode(),
                headers={"content-type": "application/json"},
            )
        ),
        _call_list,
        TransientError,
        200,
    ),
    Case(
        "a wrong type in the answer",
        _answer(httpx.Response(200, json=[customer_json("C1", EstActif={"x": BODY_MARKER})])),
        _call_list,
        PermanentError,
        words=["unexpected response shape", "EstActif"],
    ),
    Case(
        "a missing key in the answer",
        _answer(httpx.Response(200, json=[{"NomClient": BODY_MARKER}])),
        _call_list,
        PermanentError,
        words=["unexpected response shape", "NoClient"],
    ),
    Case(
        "an object where a list was expected",
        _answer(httpx.Response(200, json={"value": []})),
        _call_list,
        PermanentError,
        words=["unexpected response shape"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_status_code_and_exception_maps_to_its_class(case: Case) -> None:
    client = client_for(case.handler)
    with pytest.raises(SyncError) as caught:
        case.call(client)
    exc = caught.value
    assert type(exc) is case.error_type
    assert exc.system == "onlineerp"
    assert exc.operation == case.operation
    assert exc.status_code == case.status_code
    assert exc.vendor_code == case.vendor_code
    assert exc.retry_after_s == case.retry_after_s
    text = str(exc)
    assert text.startswith(f"onlineerp {case.operation} failed")
    if case.status_code is not None:
        assert f"HTTP {case.status_code}" in text
    for word in case.words:
        assert word in text
    for leak in (SECRET, BASIC, BODY_MARKER, "Robot non connecté", "Message"):
        assert leak not in text
    if exc.response_excerpt:
        assert SECRET not in exc.response_excerpt
    assert exc.hint


def test_transport_errors_chain_the_original_exception() -> None:
    client = client_for(_raise(httpx.ConnectError("refused")))
    with pytest.raises(TransientError) as caught:
        client.check()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_table_lists_every_documented_code_with_a_hint() -> None:
    rows = {row["match"]: row for row in table().rows()}
    expected = {
        "NotFound": "conflict",
        "Exists": "conflict",
        "InvalidFilter": "permanent",
        "InvalidBody": "permanent",
        "InvalidBody/Customer": "dependency",
        "InvalidBody/Product": "dependency",
        "Unauthorized": "auth",
        "Forbidden": "auth",
        "MethodNotAllowed": "permanent",
        "RobotOffline": "transient",
        "RobotTimeout": "transient",
        "http-412": "conflict",
        "http-409": "conflict",
    }
    for match, error_class in expected.items():
        assert rows[match]["class"] == error_class, match
        assert rows[match]["system"] == "onlineerp"
        assert rows[match]["hint"]
    assert "robot at the customer's site is not connected" in rows["RobotOffline"]["hint"]


def test_error_overrides_from_the_configuration_change_the_class() -> None:
    offline = _answer(vendor_error(503, "RobotOffline"))
    with pytest.raises(PermanentError) as caught:
        list(
            client_for(
                offline, error_overrides={"RobotOffline": ErrorClass.PERMANENT}
            ).iter_customers()
        )
    assert caught.value.vendor_code == "RobotOffline"

    unknown_customer = _answer(vendor_error(400, "InvalidBody", "C000042"))
    overrides = {"InvalidBody/Customer": ErrorClass.PERMANENT}
    with pytest.raises(PermanentError):
        client_for(unknown_customer, error_overrides=overrides).create_invoice(invoice())

    refused = _answer(httpx.Response(503))
    with pytest.raises(AuthError):
        client_for(refused, error_overrides={"http-503": ErrorClass.AUTH}).check()


# --------------------------------------------------------------------------- paging


class FakeHub:
    """Serves ``records`` with $top/$skip like the HUB, recording every request."""

    def __init__(self, records: list[dict[str, Any]], *, ignore_skip: bool = False) -> None:
        self.records = records
        self.ignore_skip = ignore_skip
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        top = int(params["$top"])
        skip = 0 if self.ignore_skip else int(params.get("$skip", "0"))
        return httpx.Response(200, json=self.records[skip : skip + top])

    def pages_asked(self) -> list[tuple[int, int]]:
        return [(int(r.url.params["$skip"]), int(r.url.params["$top"])) for r in self.requests]


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


# --------------------------------------------------------------------------- filters


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


# --------------------------------------------------------------------------- auth, headers


class Recorder:
    """Answers every request with a plausible success and remembers it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "GET" and "$top" in request.url.params:
            return httpx.Response(200, json=[customer_json("C000001")])
        if "CustomerInvoice" in request.url.path:
            body = json.loads(request.content)
            return httpx.Response(201, json={"NoFacture": "F-1", **body, "TotalAvantTaxes": 25.0})
        if request.method == "POST":
            return httpx.Response(201, content=request.content)
        if request.method == "PUT":
            return httpx.Response(200, content=request.content)
        return httpx.Response(200, json=customer_json("C000001"))


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
