"""The Propeller adapter's company fields (issue 15): cleared values, detaching a parent,
attributes, and the fields the bulk docs leave out (httpx.MockTransport)."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from adapters.propeller import (
    PropellerAttributeValue,
    PropellerCompanyInput,
)
from erpsync.errors import (
    PermanentError,
    SyncError,
)
from tests.support.propeller_api import (
    FakePropeller,
    bulk_reply,
    company_input,
    company_json,
    error_body,
    failed_item,
    make,
    ok_item,
    paged,
    sent_json,
)


def test_writing_sends_a_cleared_text_as_empty_and_a_cleared_enum_as_its_default() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(9, "C-1")})
    )
    body = PropellerCompanyInput.writing(
        {
            "source_id": "C-1",
            "name": "Acme",
            "email": None,
            "phone": None,
            "taxNumber": None,
            "budget": None,
            "notes": "kept",
            "parent": None,
        }
    )
    make(fake).update_company("C-1", body)
    (request,) = fake.requests
    assert request.method == "PATCH"
    assert sent_json(request) == {
        "name": "Acme",
        "email": "",
        "phone": "",
        "taxNumber": "",
        "budget": "N",
        "notes": "kept",
    }


def test_detach_parent_patches_parent_null_only() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(9, "C-1")})
    )
    make(fake).detach_parent("C-1")
    (request,) = fake.requests
    assert (request.method, request.url.path) == ("PATCH", "/v2/companies/sourceId/C-1")
    assert parse_qs(request.url.query.decode()) == {"source": ["ERPSYNC"], "language": ["EN"]}
    assert request.content == b'{"parent":null}'


def test_a_refused_detach_is_a_permanent_schema_error() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            400, json=error_body(10007, 400, "SchemaValidationException")
        )
    )
    with pytest.raises(PermanentError) as refused:
        make(fake).detach_parent("C-1")
    assert refused.value.vendor_code == "10007"


def test_set_attributes_is_one_bulk_item_with_skip_create() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("C-1", "update", 9)]))
    marker = PropellerAttributeValue(name="ERPSYNC_INACTIVE", value="Y")
    assert make(fake).set_attributes("C-1", [marker]) is True
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/bulk/sourceId"
    assert sent_json(request) == {
        "companies": [
            {
                "sourceId": "C-1",
                "source": "ERPSYNC",
                "language": "EN",
                "attributes": [{"name": "ERPSYNC_INACTIVE", "value": "Y"}],
            }
        ],
        "directives": [{"operation": "skipCreate", "fields": []}],
    }


def test_set_attributes_on_a_missing_company_is_false_and_other_failures_raise() -> None:
    marker = PropellerAttributeValue(name="ERPSYNC_INACTIVE", value="Y")
    missing = FakePropeller(resource=bulk_reply([failed_item("C-1", 40006, "CompanyNotFound")]))
    assert make(missing).set_attributes("C-1", [marker]) is False
    refused = FakePropeller(
        resource=bulk_reply([failed_item("C-1", 10017, "PayloadValidationError")])
    )
    with pytest.raises(SyncError):
        make(refused).set_attributes("C-1", [marker])


@pytest.mark.parametrize("field_name", ["email", "phone"])
def test_bulk_items_refuse_fields_the_bulk_docs_leave_out(field_name: str) -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    with pytest.raises(ValueError, match=field_name):
        make(fake).upsert_companies_bulk([company_input("A", **{field_name: "x"})])
    assert fake.requests == []


def test_single_calls_refuse_attributes() -> None:
    fake = FakePropeller()
    marker = PropellerAttributeValue(name="ERPSYNC_INACTIVE", value="Y")
    with pytest.raises(ValueError, match="attributes"):
        make(fake).create_company(company_input("C-3", attributes=[marker]))
    assert fake.requests == []


def test_search_of_every_company_sends_no_date_filter_and_reads_attributes() -> None:
    item = {**company_json(1, "A"), "attributes": [{"name": "ERPSYNC_INACTIVE", "value": "Y"}]}
    fake = FakePropeller(resource=paged([item], with_pages=True))
    client = make(fake, page_size=2)
    (found,) = client.search_companies(modified_from=None, expands=("sources", "attributes"))
    (request,) = fake.requests
    assert sent_json(request) == {"page": 1, "offset": 2}
    assert parse_qs(request.url.query.decode()) == {"expands": ["sources,attributes"]}
    assert found.attribute("ERPSYNC_INACTIVE") == "Y"
    assert "attributes" in found.model_fields_set
    assert "email" not in found.model_fields_set, "the reply did not carry it"
