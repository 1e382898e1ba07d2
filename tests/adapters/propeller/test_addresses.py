"""The Propeller adapter's address calls: listed by type and page, created, upserted in bulk
and deleted (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from adapters.propeller import (
    PropellerAddressInput,
)
from erpsync.errors import (
    RecordMissingError,
)
from tests.support.propeller_api import (
    FakePropeller,
    address_json,
    bulk_reply,
    error_body,
    make,
    sent_json,
)


def test_list_addresses_filters_by_type() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": [address_json(1, "delivery"), address_json(2, "delivery")]}
        )
    )
    found = make(fake).list_addresses("C-1", type="delivery")
    assert [a.id for a in found] == [1, 2]
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/sourceId/C-1/addresses"
    assert request.url.params["type"] == "delivery"
    assert request.url.params["source"] == "ERPSYNC"


def test_list_addresses_follows_the_page_count() -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return httpx.Response(
            200, json={"data": [address_json(page, "invoice")], "page": page, "pages": 2}
        )

    fake = FakePropeller(resource=resource)
    assert [a.id for a in make(fake).list_addresses("C-1")] == [1, 2]
    assert len(fake.requests) == 2


def test_create_address_returns_the_new_id() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(201, json={"data": {"id": 77}}))
    address = make(fake).create_address(
        "C-1", PropellerAddressInput(type="invoice", street="Main", city="Gent", country="BE")
    )
    assert address.id == 77
    assert address.city == "Gent"
    assert sent_json(fake.requests[0]) == {
        "type": "invoice",
        "street": "Main",
        "city": "Gent",
        "country": "BE",
    }


def test_upsert_addresses_bulk_maps_outcomes_by_code() -> None:
    fake = FakePropeller(
        resource=bulk_reply(
            [
                {"key": "HQ", "lookupKey": "code", "success": True, "action": "update", "id": 5},
                {"key": None, "lookupKey": "code", "success": True, "action": "create", "id": 6},
            ]
        )
    )
    outcomes = make(fake).upsert_addresses_bulk(
        "C-1",
        [
            PropellerAddressInput(type="invoice", code="HQ", street="A", city="B", country="BE"),
            PropellerAddressInput(type="delivery", street="A", city="B", country="BE"),
        ],
    )
    assert [(o.key, o.action, o.id) for o in outcomes] == [("HQ", "update", 5), (None, "create", 6)]
    assert fake.requests[0].url.path == "/v2/companies/sourceId/C-1/addresses/bulk"
    assert [a["type"] for a in sent_json(fake.requests[0])["addresses"]] == ["invoice", "delivery"]


def test_delete_of_a_missing_address_is_record_missing() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(90006, 404)))
    with pytest.raises(RecordMissingError) as caught:
        make(fake).delete_address("C-1", 106077)
    assert fake.requests[0].url.path == "/v2/companies/sourceId/C-1/addresses/106077"
    assert caught.value.vendor_code == "90006"
