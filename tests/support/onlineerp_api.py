"""Builders for the OnlineERP adapter's unit tests: a client over httpx.MockTransport, canned
pages and answers, and the documented failure cases.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.onlineerp import (
    ErpBillTo,
    ErpCustomer,
    ErpInvoice,
    ErpInvoiceLine,
    ErpProduct,
    OnlineErpClient,
)
from erpsync.errors import (
    AuthError,
    DependencyError,
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
