"""The Atollon adapter against httpx.MockTransport: requests sent, answers read, errors routed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.atollon import (
    AtollonAddress,
    AtollonBillingItemStatus,
    AtollonBillingUpdate,
    AtollonClient,
    AtollonCompany,
    AtollonCompanyPersonRelation,
    AtollonCompanyRelation,
    AtollonContactGroup,
    AtollonContactInfo,
    AtollonContactInput,
    AtollonContacts,
    AtollonPerson,
    AtollonProductInput,
    AtollonStatusRef,
    BillingStatus,
    ExternalId,
    error_table,
    parse_datetime,
)
from erpsync.errors import (
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    ReadUnsupportedError,
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


# --- routing table ------------------------------------------------------------------------


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


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_failure_maps_to_its_class(case: Case) -> None:
    client, _ = make_client(case.answer, api_token=TOKEN)

    with pytest.raises(SyncError) as caught:
        client.upsert_contact(company())

    error = caught.value
    assert type(error) is case.expected
    assert error.code == case.code
    assert error.status_code == case.status
    assert error.retry_after_s == case.retry_after_s
    assert error.system == "atollon"
    assert error.operation == "upsert_contact"
    text = str(error)
    assert "upsert_contact" in text
    if case.status is not None:
        assert f"HTTP {case.status}" in text
    # Neither the vendor's message nor any secret ever reaches the exception's text.
    assert "BODY-MARKER" not in text
    assert TOKEN not in text
    assert TOKEN not in repr(error)
    assert error.hint


def test_a_fail_message_travels_in_the_redacted_excerpt_only() -> None:
    body = fail(f"Invalid contact BODY-MARKER (Authorization: Bearer {TOKEN})")
    client, _ = make_client(reply(200, body), api_token=TOKEN)

    with pytest.raises(PermanentError) as caught:
        client.upsert_contact(company())

    assert caught.value.vendor_code == "FAIL"
    excerpt = caught.value.response_excerpt or ""
    assert "BODY-MARKER" in excerpt
    assert TOKEN not in excerpt
    assert "BODY-MARKER" not in str(caught.value)
    assert TOKEN not in json.dumps(caught.value.to_dict())


def test_unknown_instance_tells_the_operator_to_check_the_instance_name() -> None:
    client, _ = make_client(reply(403, fail("Unknown instance")))

    with pytest.raises(AuthError) as caught:
        client.check()

    assert caught.value.hint is not None
    assert "instance name" in caught.value.hint
    assert caught.value.operation == "check"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.list_billing(),
        lambda c: c.invoice_statuses(),
        lambda c: c.download_document("123"),
        lambda c: c.update_billing([AtollonBillingUpdate.mark("1", ["2"])]),
        lambda c: c.upsert_product(AtollonProductInput(name="Box")),
    ],
    ids=["list_billing", "invoice_statuses", "download_document", "update_billing", "product"],
)
def test_fail_with_http_200_is_never_taken_for_success(
    call: Callable[[AtollonClient], object],
) -> None:
    client, _ = make_client(reply(200, fail("Product not found: P1")))

    with pytest.raises(DependencyError):
        call(client)


@pytest.mark.parametrize(
    ("overrides", "answer", "expected"),
    [
        (
            {"FAIL:related-contact-not-found": ErrorClass.PERMANENT},
            reply(200, fail("Related contact not found")),
            PermanentError,
        ),
        ({"FAIL": ErrorClass.TRANSIENT}, reply(200, fail("Locked record")), TransientError),
        ({"http-500": ErrorClass.PERMANENT}, reply(500), PermanentError),
        (
            {"exception:ConnectError": ErrorClass.AUTH},
            _raise(httpx.ConnectError("refused")),
            AuthError,
        ),
    ],
    ids=["fail-code", "generic-fail", "status", "exception"],
)
def test_error_overrides_change_the_class(
    overrides: dict[str, ErrorClass], answer: Handler, expected: type[SyncError]
) -> None:
    client, _ = make_client(answer, overrides=overrides)

    with pytest.raises(SyncError) as caught:
        client.upsert_contact(company())

    assert type(caught.value) is expected


def test_the_routing_table_lists_fail_codes_with_classes_and_hints() -> None:
    rows = {row["match"]: row for row in error_table().rows()}

    assert rows["FAIL:related-contact-not-found"]["class"] == "dependency"
    assert rows["FAIL:contact-not-found"]["class"] == "dependency"
    assert rows["FAIL:product-not-found"]["class"] == "dependency"
    assert rows["FAIL:unknown-instance"]["class"] == "auth"
    assert "instance" in rows["FAIL:unknown-instance"]["hint"]
    assert rows["FAIL"]["class"] == "permanent"
    assert rows["http-400"]["class"] == "permanent"
    assert rows["http-429"]["class"] == "transient"
    assert rows["http-503"]["class"] == "transient"
    assert rows["exception:Timeout"]["class"] == "transient"
    assert all(row["system"] == "atollon" for row in rows.values())


# --- requests -----------------------------------------------------------------------------

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


@pytest.mark.parametrize(
    ("call", "method", "path", "answer"),
    [op[1:] for op in OPERATIONS],
    ids=[op[0] for op in OPERATIONS],
)
@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_every_call_names_the_instance_and_sends_a_token_only_when_configured(
    call: Callable[[AtollonClient], object],
    method: str,
    path: str,
    answer: Any,
    token: str | None,
) -> None:
    client, recorder = make_client(reply(200, answer), api_token=token)

    call(client)

    request = recorder.last
    assert request.method == method
    assert request.url.path == path
    assert request.url.params["instance"] == INSTANCE
    if token is None:
        assert "authorization" not in request.headers
    else:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_contact_body_is_the_documented_json_without_unset_fields() -> None:
    client, recorder = make_client(reply(200, CONTACT_OK))
    contact = AtollonContactInput(
        company=AtollonCompany(
            company_name='Dupont & Fils "Émballages" 100% +',
            company_company_relation=[
                AtollonCompanyRelation.to_parent("onlineerp", "C000001", "Mother company")
            ],
        ),
        address=[AtollonAddress(street="1 rue Principale", city="Montréal", zip="H2X 1Y4")],
        contacts=AtollonContacts(email=[AtollonContactInfo(contact="a@exemple.qc.ca")]),
        contact_group=[AtollonContactGroup(name="Inactive")],
        external_id=[ExternalId(system="onlineerp", id="C000002")],
        vat_no="123456789RT0001",
    )

    result = client.upsert_contact(contact)

    assert json.loads(recorder.last.content) == {
        "company": {
            "companyName": 'Dupont & Fils "Émballages" 100% +',
            "companyCompanyRelation": [
                {
                    "companyExternalId": [{"system": "onlineerp", "id": "C000001"}],
                    "relationType": "Mother company",
                }
            ],
        },
        "address": [{"street": "1 rue Principale", "city": "Montréal", "zip": "H2X 1Y4"}],
        "contacts": {"email": [{"contact": "a@exemple.qc.ca"}]},
        "contactGroup": [{"name": "Inactive"}],
        "externalId": [{"system": "onlineerp", "id": "C000002"}],
        "vatNo": "123456789RT0001",
    }
    assert result.contact_id == "555001"
    assert result.folder_id == "777"
    assert result.external_id_for("onlineerp") == "C000002"
    assert result.external_id_for("hipe") is None


def test_person_contact_body_names_the_employer_by_external_id() -> None:
    client, recorder = make_client(reply(200, {"result": "SUCCESS", "contactId": "9"}))
    person = AtollonContactInput(
        person=AtollonPerson(
            first_name="Jean",
            last_name="Tremblay",
            company_person_relation=[
                AtollonCompanyPersonRelation(
                    company_external_id=[ExternalId(system="onlineerp", id="C000001")],
                    position_desc="Comptable",
                )
            ],
        ),
        external_id=[ExternalId(system="onlineerp", id="P-1")],
    )

    result = client.upsert_contact(person)

    sent = json.loads(recorder.last.content)
    assert sent["person"] == {
        "firstName": "Jean",
        "lastName": "Tremblay",
        "companyPersonRelation": [
            {
                "companyExternalId": [{"system": "onlineerp", "id": "C000001"}],
                "positionDesc": "Comptable",
            }
        ],
    }
    assert result.contact_id == "9"
    assert result.folder_id is None


def test_a_contact_needs_a_company_or_a_surname() -> None:
    with pytest.raises(ValueError, match="company name or a person's last name"):
        AtollonContactInput(
            person=AtollonPerson(first_name="Jean"),
            external_id=[ExternalId(system="onlineerp", id="P-1")],
        )


def test_product_body_and_answer() -> None:
    answer = {
        "result": "SUCCESS",
        "productId": 4242,
        "productName": "Boîte carton",
        "productRefid": "P00001",
        "product": {"externalId": [{"system": "onlineerp", "id": "P00001"}]},
    }
    client, recorder = make_client(reply(200, answer))
    product = AtollonProductInput(
        name="Boîte carton",
        ref_id="P00001",
        type_name="Product",
        unit_price=Decimal("4990.50"),
        unit_price_currency_name="CAD",
        status_name="Active",
        opening_balance_date=datetime(2022, 9, 9, 10, 10),
        external_id=[ExternalId(system="onlineerp", id="P00001")],
    )

    result = client.upsert_product(product)

    assert json.loads(recorder.last.content) == {
        "name": "Boîte carton",
        "refId": "P00001",
        "typeName": "Product",
        "unitPrice": 4990.5,
        "unitPriceCurrencyName": "CAD",
        "statusName": "Active",
        "openingBalanceDate": "2022-09-09T10:10",
        "externalId": [{"system": "onlineerp", "id": "P00001"}],
    }
    assert result.product_id == "4242"
    assert result.product_refid == "P00001"
    assert result.external_id_for("onlineerp") == "P00001"


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


def test_dates_in_every_documented_form_are_read() -> None:
    assert parse_datetime("2022-09-14T10:00") == datetime(2022, 9, 14, 10, 0)
    assert parse_datetime("2023-01-25T12:47:34.678428") == datetime(2023, 1, 25, 12, 47, 34, 678428)
    assert parse_datetime("2024-04-26") == datetime(2024, 4, 26)
    assert parse_datetime("26.04.2024") == datetime(2024, 4, 26)
    assert parse_datetime("<2022-09-14T10:00>") is None
    assert parse_datetime("") is None
    assert parse_datetime(None) is None


# --- a stated record: absences are sent ----------------------------------------------------


def test_a_stated_contact_sends_each_absence_in_the_form_of_its_field() -> None:
    """A removed value must reach Atollon: an empty list, "" for a text (conventions)."""
    client, recorder = make_client(reply(200, CONTACT_OK))
    contact = AtollonContactInput(
        company=AtollonCompany(company_name="Dupont", company_company_relation=[]),
        address=[],
        contacts=AtollonContacts(email=[], phone=[]),
        external_id=[ExternalId(system="onlineerp", id="C000002")],
        vat_no="",
    )

    client.upsert_contact(contact)

    assert json.loads(recorder.last.content) == {
        "company": {"companyName": "Dupont", "companyCompanyRelation": []},
        "address": [],
        "contacts": {"email": [], "phone": []},
        "externalId": [{"system": "onlineerp", "id": "C000002"}],
        "vatNo": "",
    }


def test_a_product_sent_without_a_price_empties_it_with_null() -> None:
    client, recorder = make_client(reply(200, {"result": "SUCCESS", "productId": "1"}))
    client.upsert_product(
        AtollonProductInput(name="Ruban", unit_price=None, unit_price_currency_name="")
    )
    assert json.loads(recorder.last.content) == {
        "name": "Ruban",
        "unitPrice": None,
        "unitPriceCurrencyName": "",
    }
    client.upsert_product(AtollonProductInput(name="Ruban"))
    assert json.loads(recorder.last.content) == {"name": "Ruban"}, "unset: left out"


# --- the (undocumented) read of contacts and products --------------------------------------


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


def test_contacts_are_read_page_by_page_until_a_short_page() -> None:
    pages = {1: [contact_record(1), contact_record(2)], 2: [contact_record(3)]}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[int(request.url.params["page"])])

    client, recorder = paged_client(answer)

    contacts = list(client.iter_contacts())

    assert [c.external_id_for("onlineerp") for c in contacts] == ["C1", "C2", "C3"]
    assert [dict(r.url.params) for r in recorder.requests] == [
        {"page": "1", "limit": "2", "instance": INSTANCE},
        {"page": "2", "limit": "2", "instance": INSTANCE},
    ]
    assert all(
        r.method == "GET" and r.url.path == "/crab/crawler/contact" for r in recorder.requests
    )
    first = contacts[0]
    assert first.contact_id == "700001"
    assert first.company is not None
    assert first.company.company_name == "Company 1"
    relation = first.company.company_company_relation[0]
    assert relation.company_external_id == [ExternalId(system="onlineerp", id="C0")]
    assert first.contacts is not None
    assert first.contacts.phone == [], "null reads as none"
    assert [e.contact for e in first.contacts.email] == ["c1@x.test"]
    assert first.contact_group == []
    assert first.address[0].city == "Laval"
    assert first.address[0].zip is None


def test_products_are_read_page_by_page() -> None:
    pages: dict[int, list[dict[str, Any]]] = {
        1: [
            {"productId": 1, "name": "A", "unitPrice": 2.5, "statusName": "Active"},
            {"productId": 2, "name": "B", "unitPrice": None, "statusName": "Inactive"},
        ],
        2: [],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[int(request.url.params["page"])])

    client, recorder = paged_client(answer)

    products = list(client.iter_products())

    assert [(p.product_id, p.name, p.unit_price, p.status_name) for p in products] == [
        ("1", "A", Decimal("2.5"), "Active"),
        ("2", "B", None, "Inactive"),
    ]
    assert len(recorder.requests) == 2
    assert recorder.last.url.path == "/crab/crawler/product"


@pytest.mark.parametrize(
    "answer",
    [
        reply(404, {"result": "FAIL", "message": "Unknown request type"}),
        reply(404, text="<html>Not Found</html>"),
        reply(405),
        reply(501),
        reply(200, fail("Either company or person surname is required")),
        reply(200, {"result": "SUCCESS", "contactId": "1"}),
    ],
    ids=["404-fail", "404-html", "405", "501", "fail-200", "not-a-list"],
)
def test_an_atollon_without_the_read_is_a_classified_known_limit(answer: Handler) -> None:
    client, _ = paged_client(answer)

    with pytest.raises(ReadUnsupportedError) as caught:
        list(client.iter_contacts())

    error = caught.value
    assert error.vendor_code == "read-unsupported"
    assert error.error_class is ErrorClass.PERMANENT
    assert "does not offer this read" in str(error)
    assert error.hint is not None
    assert "cannot read" in error.hint
    assert "Unknown request" not in str(error)
    assert "surname" not in str(error)


def test_a_refused_read_for_bad_credentials_stays_an_auth_error() -> None:
    client, _ = paged_client(reply(403, fail("Unknown instance")))
    with pytest.raises(AuthError):
        list(client.iter_contacts())


def test_a_server_that_ignores_the_page_is_an_error_not_an_endless_read() -> None:
    client, recorder = paged_client(reply(200, [contact_record(1), contact_record(2)]))
    with pytest.raises(PermanentError) as caught:
        list(client.iter_contacts())
    assert not isinstance(caught.value, ReadUnsupportedError)
    assert "repeated" in str(caught.value)
    assert len(recorder.requests) == 2
