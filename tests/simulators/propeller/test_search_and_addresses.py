"""The Propeller sandbox's search (envelope, paging, filters) and addresses (CRUD, checks,
bulk by code)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Clock
from tests.support.propeller_sandbox import (
    ADDRESS,
    START_STAMP,
    assert_error,
    bulk,
    create,
    erp,
    get,
    records,
)


def test_search_envelope_and_paging_where_offset_is_the_page_size(api: httpx.Client) -> None:
    bulk(api, [erp(f"C{i}", name=f"n{i}") for i in range(5)])
    answer = api.post("/v2/companies/search", json={"page": 2, "offset": 2})
    assert answer.status_code == 200
    body = answer.json()
    assert [c["name"] for c in body["data"]] == ["n2", "n3"]
    assert {k: v for k, v in body.items() if k != "data"} == {
        "messages": ["Completed"],
        "start": 3,
        "end": 4,
        "page": 2,
        "offset": 2,
        "total": 5,
        "pages": 3,
    }
    default = api.post("/v2/companies/search", json={}).json()
    assert (default["offset"], default["page"], len(default["data"])) == (12, 1, 5)
    beyond = api.post("/v2/companies/search", json={"page": 9, "offset": 2}).json()
    assert (beyond["data"], beyond["total"]) == ([], 5)


def test_search_pages_straddle_equal_timestamps(api: httpx.Client, clock: Clock) -> None:
    clock.advance(0.2)
    bulk(api, [erp(f"A{i}") for i in range(3)])
    clock.advance(0.7)  # still the same second: the API keeps whole seconds
    bulk(api, [erp(f"B{i}") for i in range(2)])
    clock.advance(1)
    bulk(api, [erp("C0")])
    window = {"from": START_STAMP, "to": START_STAMP}
    pages = [
        api.post(
            "/v2/companies/search", json={"dateModified": window, "page": p, "offset": 2}
        ).json()
        for p in (1, 2, 3)
    ]
    stamps = {c["dateModified"] for page in pages for c in page["data"]}
    assert stamps == {START_STAMP}, "five companies share one second, across three pages"
    ids = [c["id"] for page in pages for c in page["data"]]
    assert ids == sorted(ids), "equal stamps are ordered by id, so pages are stable"
    assert len(ids) == 5
    assert pages[0]["total"] == 5
    since = api.post(
        "/v2/companies/search",
        params={"expands": "sources"},
        json={"dateModified": {"from": "2026-01-01T00:00:01"}},
    ).json()
    assert [c["sources"][0]["sourceId"] for c in since["data"]] == ["C0"]
    inclusive = api.post("/v2/companies/search", json={"dateModified": {"from": START_STAMP}})
    assert inclusive.json()["total"] == 6, "from is inclusive: a cursor re-reads its own second"


def test_search_filters_are_inclusive_and_exclude_the_recycle_bin(
    api: httpx.Client, clock: Clock
) -> None:
    bulk(api, [erp("old", debtorId="D1")])
    clock.advance(1500)  # within the token's 30 minutes
    bulk(api, [erp("new", debtorId=42)])
    bulk(api, [erp("gone")])
    api.delete("/v2/companies/sourceId/gone")
    later = "2026-01-01T00:25:00"

    def search(body: dict[str, Any]) -> list[str]:
        answer = api.post("/v2/companies/search", params={"expands": "sources"}, json=body)
        assert answer.status_code == 200, answer.text
        return [c["sources"][0]["sourceId"] for c in answer.json()["data"]]

    assert search({}) == ["old", "new"]
    assert search({"dateModified": {"from": later}}) == ["new"]
    assert search({"dateModified": {"to": START_STAMP}}) == ["old"]
    assert search({"dateModified": {"from": START_STAMP, "to": later}}) == ["old", "new"]
    assert search({"dateCreated": {"from": later, "to": later}}) == ["new"]
    assert search({"debtorIds": ["42"]}) == ["new"]


@pytest.mark.parametrize(
    "paging",
    [{"page": 0}, {"page": -1}, {"page": "1"}, {"offset": 0}, {"offset": "x"}, {"offset": 1001}],
)
def test_bad_page_or_offset_is_10015(api: httpx.Client, paging: dict[str, Any]) -> None:
    answer = api.post("/v2/companies/search", json=paging)
    assert_error(answer, 400, 10015, "PaginatedResponseException")


def test_search_rejects_other_date_formats_and_unknown_keys_10007(api: httpx.Client) -> None:
    for body in (
        {"dateModified": {"from": "2026-01-01T00:00:00Z"}},
        {"dateModified": {"from": "2026-01-01"}},
        {"dateModified": {"since": START_STAMP}},
        {"sort": "dateModified"},
    ):
        answer = api.post("/v2/companies/search", json=body)
        assert_error(answer, 400, 10007, "SchemaValidationException")


def test_search_is_not_counted_as_a_write(api: httpx.Client) -> None:
    api.post("/v2/companies/search", json={})
    create(api, name="x")
    assert api.get("/_sandbox/stats").json()["writes"] == 1


def test_create_list_get_update_and_delete_addresses(api: httpx.Client) -> None:
    company = create(api, name="x", source="ERP", sourceId="C1")
    base = "/v2/companies/sourceId/C1/addresses"
    answer = api.post(base, json={**ADDRESS, "postalCode": "H2Y 1Z5"})
    assert answer.status_code == 201
    assert answer.json()["messages"] == ["Address created"]
    delivery = answer.json()["data"]
    assert (delivery["gender"], delivery["icp"], delivery["isDefault"]) == ("U", "N", "N")
    assert (delivery["active"], delivery["fax"], delivery["name"]) == ("Y", None, None)
    invoice = api.post(base, json={**ADDRESS, "type": "invoice"}).json()["data"]
    listed = api.get(base).json()
    assert [a["id"] for a in listed["data"]] == [delivery["id"], invoice["id"]]
    assert listed["total"] == 2
    only = api.get(base, params={"type": "invoice"}).json()["data"]
    assert [a["id"] for a in only] == [invoice["id"]]
    assert_error(api.get(base, params={"type": "home"}), 400, 10007, "SchemaValidationException")
    one = get(api, f"/v2/companies/id/{company['id']}/addresses/{delivery['id']}")
    assert one["postalCode"] == "H2Y 1Z5"
    patched = api.patch(f"{base}/{delivery['id']}", json={"city": "Laval"})
    assert patched.json()["data"]["city"] == "Laval"
    deleted = api.delete(f"{base}/{delivery['id']}")
    assert deleted.json() == {"data": {}, "messages": ["Address deleted"]}
    assert [a["id"] for a in records(api, "addresses")] == [invoice["id"]]


def test_address_required_fields_10007(api: httpx.Client) -> None:
    create(api, name="x", source="ERP", sourceId="C1")
    answer = api.post(
        "/v2/companies/sourceId/C1/addresses", json={"street": "1 rue", "country": "Canada"}
    )
    assert set(assert_error(answer, 400, 10007, "SchemaValidationException")) == {
        "#: required key [type] not found",
        "#: required key [city] not found",
        "#/country: string [Canada] does not match pattern ^[A-Z]{2}$",
    }


def test_unknown_address_is_90006(api: httpx.Client) -> None:
    first = create(api, name="first", source="ERP", sourceId="C1")
    create(api, name="second", source="ERP", sourceId="C2")
    address = api.post("/v2/companies/sourceId/C2/addresses", json=ADDRESS).json()["data"]
    messages = assert_error(
        api.get("/v2/companies/sourceId/C1/addresses/106077"), 404, 90006, "AddressNotFound"
    )
    assert messages == [
        f"Address with id [106077] not found for [Companies] with id [{first['id']}]"
    ]
    other_company = api.delete(f"/v2/companies/sourceId/C1/addresses/{address['id']}")
    assert_error(other_company, 404, 90006, "AddressNotFound")
    assert_error(
        api.patch("/v2/companies/sourceId/C1/addresses/abc", json={}), 404, 90006, "AddressNotFound"
    )


def test_addresses_of_an_unknown_company_are_40007(api: httpx.Client) -> None:
    answer = api.get("/v2/companies/sourceId/nobody/addresses")
    assert assert_error(answer, 404, 40007, "ParentCompanyNotFound") == [
        "Parent resource [Company] with sourceId [nobody] not found"
    ]
    assert_error(
        api.post("/v2/companies/id/1/addresses", json=ADDRESS), 404, 40007, "ParentCompanyNotFound"
    )


def test_bulk_addresses_upsert_by_code(api: httpx.Client) -> None:
    create(api, name="x", source="ERP", sourceId="C1")
    path = "/v2/companies/sourceId/C1/addresses/bulk"
    first = api.post(path, json={"addresses": [{**ADDRESS, "code": "HQ"}, ADDRESS]}).json()
    assert first["messages"] == ["Completed"]
    hq, nameless = first["data"]
    assert hq == {
        "action": "create",
        "id": hq["id"],
        "key": "HQ",
        "lookupKey": "code",
        "success": True,
    }
    assert nameless["action"] == "create"
    again = api.post(
        path, json={"addresses": [{**ADDRESS, "code": "HQ", "city": "Gatineau"}, ADDRESS]}
    )
    updated, created = again.json()["data"]
    assert (updated["action"], updated["id"]) == ("update", hq["id"])
    assert created["action"] == "create", "an address without a code is always created"
    stored = {a["id"]: a for a in records(api, "addresses")}
    assert len(stored) == 3
    assert stored[hq["id"]]["city"] == "Gatineau"
    missing = api.post(path, json={"addresses": [{"code": "X"}]})
    assert_error(missing, 400, 10007, "SchemaValidationException")
