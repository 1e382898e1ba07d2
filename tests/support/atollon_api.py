"""Builders for the Atollon adapter's unit tests: a client over httpx.MockTransport, canned
answers, and the documented examples and failure cases they are checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.atollon import (
    AtollonBillingUpdate,
    AtollonClient,
    AtollonCompany,
    AtollonCompanyRelation,
    AtollonContactInput,
    AtollonProductInput,
    ExternalId,
)
from erpsync.errors import (
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    SyncError,
    TransientError,
)
from erpsync.settings import AtollonSettings

BASE_URL = "https://atollon.example"


INSTANCE = "acme"


TOKEN = "atl-token-5ecr3t-value"  # a fake secret that must never surface


Handler = Callable[[httpx.Request], httpx.Response]


# The documented billing export (crawler import service page, "Billing"), verbatim.
DOCUMENTED_BILLING = r"""
[{
"activity": {
"id": "0123000",
"name": "<Activity name>",
"refId": "<Activity REF ID>",
"statusName": "<Activity custom status name>",
"description": "<Activity notes>",
"created": "<2022-09-01T00:00>",
"modified": "<2022-09-14T10:00>"
},
"project": {
"id": "<project id>",
"name": "<Project name>",
"refId": "<Project REF ID>",
"statusName": "<Activity custom status name>",
"description": "<Activity notes>",
"created": "<2022-09-01T00:00>",
"modified": "<2022-09-14T10:00>"
},
"folder": {
"name": "<Folder name>",
"refId": "<Folder REF ID>"
},
"contact": {
"person": {
"firstName": "<name>",
"lastName": "<surname>"
},
"company": {
"companyName": "<company name>"
},
"externalId": [{
"system": "<system1>",
"id": "<Contact old id>"
}, {
"system": "<sytem2>",
"id": "<Contact old id>"
}],
"regNo": "<registered number of business>",
"vatNo": "<VAT number>"
},
"customer": {
"name": "<Folder name>",
"refId": "<Folder REF ID>"
},
"customerContact": {
"person": {
"firstName": "<name>",
"lastName": "<surname>"
},
"company": {
"companyName": "<company name>"
},
"externalId": [{
"system": "<system1>",
"id": "<Contact old id>"
}, {
"system": "<sytem2>",
"id": "<Contact old id>"
}],
"regNo": "<registered number of business>",
"vatNo": "<VAT number>"
},
"billingItems": [{
"id": "123456",
"productName": "<Product name1>",
"productRefid": "<Product code>",
"name": "<Billing item text>",
"description": "<Billing item description>",
"quantity": 1.0000,
"unitPrice": 1000.00,
"currency": "<EUR, CZK, ...>",
"billingDate": "<2022-09-14T10:00>",
"billingStatus": "ToBeInvoiced",
"billingType": 1,
"productExternalId": [{
"system": "<system1>",
"id": "<Product old id>"
}, {
"system": "<sytem2>",
"id": "<Product old id>"
}]
}, {
"id": "123457",
"productName": "<Product name2>",
"productRefid": "<Product code>",
"name": "<Billing item text>",
"description": "<Billing item description>",
"quantity": 1.0000,
"unitPrice": 1000.00,
"currency": "<EUR, CZK, ...>",
"billingDate": "<2022-09-14T10:00>",
"billingStatus": "ToBeInvoiced",
"billingType": 2,
"productExternalId": [{
"system": "<system1>",
"id": "<Product old id>"
}, {
"system": "<sytem2>",
"id": "<Product old id>"
}]
}],
"documents": [{
"name": "<Document name>",
"id": "123"
}, {
"name": "<Document name2>",
"id": "456"
}]
}]
"""


# The documented invoice state list ("List Invoice Status"), verbatim.
DOCUMENTED_INVOICE_STATUS = [
    {
        "stateId": "89342000",
        "name": "Issued",
        "priority": 99,
        "enabled": 3,
        "acl": "INVS000000002410",
        "treeHandle": "60430000",
    },
    {
        "stateId": "89342001",
        "name": "Pending",
        "priority": 50,
        "enabled": 12,
        "acl": "INVS000000002411",
        "treeHandle": "60430001",
    },
    {
        "stateId": "89342002",
        "name": "Paid",
        "priority": 10,
        "enabled": 1,
        "acl": "INVS000000002412",
        "treeHandle": "60430002",
    },
]


@dataclass
class Recorder:
    """A MockTransport handler that answers with one response and keeps every request."""

    answer: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def make_client(
    answer: Handler,
    *,
    api_token: str | None = None,
    overrides: dict[str, ErrorClass] | None = None,
) -> tuple[AtollonClient, Recorder]:
    recorder = Recorder(answer)
    settings = AtollonSettings(
        base_url=BASE_URL,
        instance=INSTANCE,
        api_token=SecretStr(api_token) if api_token is not None else None,
    )
    http = httpx.Client(base_url=settings.base_url, transport=httpx.MockTransport(recorder))
    return AtollonClient(http, settings, error_overrides=overrides), recorder


def reply(status: int = 200, body: Any = None, **kwargs: Any) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, **kwargs)
        return httpx.Response(status, json=body, **kwargs)

    return answer


def fail(message: str) -> dict[str, str]:
    return {"result": "FAIL", "message": message}


def company(name: str = "Dupont & Fils", key: str = "C000002", parent: str | None = None) -> Any:
    relations = [AtollonCompanyRelation.to_parent("onlineerp", parent)] if parent else None
    return AtollonContactInput(
        company=AtollonCompany(company_name=name, company_company_relation=relations),
        external_id=[ExternalId(system="onlineerp", id=key)],
    )


CONTACT_OK = {
    "result": "SUCCESS",
    "contactId": 555001,
    "folderId": "777",
    "contact": {"externalId": [{"system": "onlineerp", "id": "C000002"}]},
}


@dataclass(frozen=True)
class Case:
    name: str
    answer: Handler
    expected: type[SyncError]
    code: str
    status: int | None
    retry_after_s: float | None = None


def _raise(exc: Exception) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


def _html(status: int) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            content=b"<html><body>Bad gateway</body></html>",
            headers={"content-type": "text/html"},
        )

    return answer


CASES = [
    Case(
        "related contact missing, HTTP 200",
        reply(200, fail("Related contact not found: onlineerp C000001 BODY-MARKER")),
        DependencyError,
        "FAIL:related-contact-not-found",
        200,
    ),
    Case(
        "contact missing, HTTP 200",
        reply(200, fail("Contact not found BODY-MARKER")),
        DependencyError,
        "FAIL:contact-not-found",
        200,
    ),
    Case(
        "product missing, HTTP 200",
        reply(200, fail("Product not found: P00001 BODY-MARKER")),
        DependencyError,
        "FAIL:product-not-found",
        200,
    ),
    Case(
        "related contact missing inside a 500: the message decides",
        reply(500, fail("Related contact not found BODY-MARKER")),
        DependencyError,
        "FAIL:related-contact-not-found",
        500,
    ),
    Case(
        "unknown instance, HTTP 403",
        reply(403, fail("Unknown instance")),
        AuthError,
        "FAIL:unknown-instance",
        403,
    ),
    Case(
        "unknown instance, HTTP 200",
        reply(200, fail("Unknown instance")),
        AuthError,
        "FAIL:unknown-instance",
        200,
    ),
    Case(
        "other FAIL, HTTP 200",
        reply(200, fail("Invalid value of field regNo BODY-MARKER")),
        PermanentError,
        "FAIL",
        200,
    ),
    Case(
        "other FAIL, lower-case result",
        reply(200, {"result": "fail", "message": "whatever BODY-MARKER"}),
        PermanentError,
        "FAIL",
        200,
    ),
    Case(
        "billing item gone",
        reply(200, fail("Billing item not found: 123 BODY-MARKER")),
        PermanentError,
        "FAIL:billing-item-not-found",
        200,
    ),
    Case(
        "malformed request, HTTP 400 with FAIL",
        reply(400, fail("Malformed JSON BODY-MARKER")),
        PermanentError,
        "http-400",
        400,
    ),
    Case(
        "other FAIL, HTTP 403",
        reply(403, fail("Access denied BODY-MARKER")),
        AuthError,
        "http-403",
        403,
    ),
    Case(
        "server trouble, HTTP 500 with FAIL",
        reply(500, fail("Internal error BODY-MARKER")),
        TransientError,
        "http-500",
        500,
    ),
    Case(
        "unavailable, HTTP 503 with FAIL",
        reply(503, fail("Service unavailable BODY-MARKER")),
        TransientError,
        "http-503",
        503,
    ),
    Case("bare 500", reply(500), TransientError, "http-500", 500),
    Case("bare 403", reply(403), AuthError, "http-403", 403),
    Case("bare 401", reply(401), AuthError, "http-401", 401),
    Case(
        "rate limited with Retry-After",
        reply(429, headers={"Retry-After": "7"}),
        TransientError,
        "http-429",
        429,
        retry_after_s=7.0,
    ),
    Case("HTML from a gateway", _html(502), TransientError, "http-502", 502),
    Case("HTML with HTTP 200", _html(200), TransientError, "http-200", 200),
    Case(
        "success without contactId",
        reply(200, {"result": "SUCCESS"}),
        PermanentError,
        "permanent",
        None,
    ),
    Case(
        "connection refused",
        _raise(httpx.ConnectError("refused")),
        TransientError,
        "transient",
        None,
    ),
    Case("read timeout", _raise(httpx.ReadTimeout("slow")), TransientError, "transient", None),
    Case(
        "connection dropped",
        _raise(httpx.RemoteProtocolError("peer closed")),
        TransientError,
        "transient",
        None,
    ),
]


OPERATIONS: list[tuple[str, Callable[[AtollonClient], object], str, str, Any]] = [
    ("check", lambda c: c.check(), "GET", "/crab/crawler/invoice_status", []),
    ("contact", lambda c: c.upsert_contact(company()), "POST", "/crab/crawler/contact", CONTACT_OK),
    (
        "product",
        lambda c: c.upsert_product(AtollonProductInput(name="Box")),
        "POST",
        "/crab/crawler/product",
        {"result": "SUCCESS", "productId": 1},
    ),
    ("billing", lambda c: c.list_billing(), "GET", "/crab/crawler/billing", []),
    (
        "update",
        lambda c: c.update_billing([AtollonBillingUpdate.mark("1", ["2"])]),
        "PUT",
        "/crab/crawler/billing",
        {"result": "SUCCESS"},
    ),
    ("statuses", lambda c: c.invoice_statuses(), "GET", "/crab/crawler/invoice_status", []),
    (
        "document",
        lambda c: c.download_document("123"),
        "GET",
        "/crab/crawler/download_document",
        {"any": "json document"},
    ),
]


def paged_client(answer: Handler, page_size: int = 2) -> tuple[AtollonClient, Recorder]:
    recorder = Recorder(answer)
    settings = AtollonSettings(base_url=BASE_URL, instance=INSTANCE, page_size=page_size)
    http = httpx.Client(base_url=settings.base_url, transport=httpx.MockTransport(recorder))
    return AtollonClient(http, settings), recorder


def contact_record(number: int) -> dict[str, Any]:
    return {
        "contactId": 700000 + number,
        "company": {
            "companyName": f"Company {number}",
            "companyCompanyRelation": [
                {"companyExternalId": [{"system": "onlineerp", "id": "C0"}], "relationType": "M"}
            ],
        },
        "address": [{"street": "1 rue", "city": "Laval", "zip": None}],
        "contacts": {"email": [{"contact": f"c{number}@x.test"}], "phone": None},
        "contactGroup": None,
        "externalId": [{"system": "onlineerp", "id": f"C{number}"}],
        "vatNo": "",
    }
