"""The Propeller adapter's company calls: lookups, single writes, searches page by page,
clears, detaching and attributes (httpx.MockTransport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from adapters.propeller import (
    PropellerAddressInput,
    PropellerCompanyInput,
    PropellerCompanyRef,
)
from erpsync.errors import (
    PermanentError,
)
from tests.support.propeller_api import (
    FakePropeller,
    company_input,
    company_json,
    error_body,
    make,
    paged,
    sent_json,
)


def test_get_company_looks_up_by_source_id_source_and_language() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": company_json(5, "C/5 é", debtorId=123), "messages": [], "total": 1}
        )
    )
    company = make(fake, source="MYERP", language="NL").get_company("C/5 é")
    assert company is not None
    assert company.id == 5
    assert company.debtor_id == "123"
    assert company.source_id_for("ERPSYNC") == "C/5 é"
    assert company.date_modified == datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.url.raw_path.split(b"?")[0] == b"/v2/companies/sourceId/C%2F5%20%C3%A9"
    assert request.url.params["source"] == "MYERP"
    assert request.url.params["language"] == "NL"


def test_get_company_returns_none_only_for_company_not_found() -> None:
    missing = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(40006, 404)))
    assert make(missing).get_company("C-9") is None
    no_route = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(10008, 404)))
    with pytest.raises(PermanentError):
        make(no_route).get_company("C-9")


def test_create_company_sends_one_flat_shape() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            201, json={"data": {"id": 42}, "messages": ["Company created"], "total": 1}
        )
    )
    company = make(fake).create_company(
        company_input(
            "C-3",
            parent=PropellerCompanyRef(source_id="P-1", source="ERPSYNC"),
            tax_number="BE0123",
            debtor_id="1001",
            email="a@b.example",
        )
    )
    assert company.id == 42
    assert company.name == "Company C-3"
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.url.path == "/v2/companies"
    assert sent_json(request) == {
        "sourceId": "C-3",
        "source": "ERPSYNC",
        "language": "EN",
        "name": "Company C-3",
        "parent": {"sourceId": "P-1", "source": "ERPSYNC"},
        "taxNumber": "BE0123",
        "debtorId": "1001",
        "email": "a@b.example",
    }


def test_single_calls_refuse_inline_addresses() -> None:
    fake = FakePropeller()
    address = PropellerAddressInput(type="invoice", street="Main", city="Gent", country="BE")
    with pytest.raises(ValueError, match="addresses"):
        make(fake).create_company(company_input("C-3", addresses=[address]))
    assert fake.requests == []
    fake.resource = lambda r: httpx.Response(201, json={"data": {"id": 3}})
    make(fake).create_company(company_input("C-3", addresses=[]))
    assert "addresses" not in sent_json(fake.requests[0])


def test_update_company_patches_only_the_changes() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": company_json(9, "C-4", name="New"), "messages": ["Company updated"]}
        )
    )
    company = make(fake).update_company("C-4", PropellerCompanyInput(source_id="C-4", name="New"))
    assert company.id == 9
    assert company.name == "New"
    (request,) = fake.requests
    assert request.method == "PATCH"
    assert request.url.path == "/v2/companies/sourceId/C-4"
    assert request.url.params["source"] == "ERPSYNC"
    assert sent_json(request) == {"name": "New"}


def test_delete_company_uses_the_lookup_key() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": {}, "messages": ["Company deleted"]})
    )
    make(fake).delete_company("C-5")
    (request,) = fake.requests
    assert request.method == "DELETE"
    assert request.url.path == "/v2/companies/sourceId/C-5"
    assert request.url.params["language"] == "EN"


def test_search_pages_to_the_last_page_by_page_count() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 6)]
    fake = FakePropeller(resource=paged(items, with_pages=True))
    found = list(
        make(fake, page_size=2).search_companies(
            modified_from=datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            modified_to=datetime(2026, 3, 2, 0, 0, 0),
        )
    )
    assert [c.id for c in found] == [1, 2, 3, 4, 5]
    assert len(fake.requests) == 3
    first = sent_json(fake.requests[0])
    assert first == {
        "dateModified": {"from": "2026-03-01T10:00:00", "to": "2026-03-02T00:00:00"},
        "page": 1,
        "offset": 2,
    }
    assert [sent_json(r)["page"] for r in fake.requests] == [1, 2, 3]
    assert fake.requests[0].url.path == "/v2/companies/search"


def test_search_stops_on_a_full_last_page_when_the_page_count_says_so() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 5)]
    fake = FakePropeller(resource=paged(items, with_pages=True))
    found = list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert len(found) == 4
    assert len(fake.requests) == 2


def test_search_stops_on_a_short_page_without_a_page_count() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 4)]
    fake = FakePropeller(resource=paged(items, with_pages=False))
    found = list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert [c.id for c in found] == [1, 2, 3]
    assert len(fake.requests) == 2
    assert "to" not in sent_json(fake.requests[0])["dateModified"]


def test_search_stops_on_an_empty_page() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 5)]
    fake = FakePropeller(resource=paged(items, with_pages=False))
    found = list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert len(found) == 4
    assert len(fake.requests) == 3  # the third page is empty: the end


def test_search_with_no_match_makes_one_call() -> None:
    fake = FakePropeller(resource=paged([], with_pages=True))
    assert list(make(fake).search_companies(modified_from=datetime(2026, 1, 1))) == []
    assert len(fake.requests) == 1


def test_search_refuses_a_server_that_ignores_the_page() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 3)]
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": items, "offset": 2, "total": 9})
    )
    with pytest.raises(PermanentError, match="repeats"):
        list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert len(fake.requests) == 2
