"""The Atollon adapter's reads of contacts and products, page by page, and the reads an
Atollon does not offer (httpx.MockTransport)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.atollon import ExternalId
from erpsync.errors import AuthError, ErrorClass, PermanentError, ReadUnsupportedError
from tests.support.atollon_api import INSTANCE, Handler, contact_record, fail, paged_client, reply


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
