"""The Propeller sandbox's injected faults, records, reset and seed, and the documented bulk
fields, clears, detaching and attributes (issue 15)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.propeller import PropellerSimulator
from tests.support.propeller_sandbox import ADDRESS, assert_error, bulk, create, erp, get, records


@pytest.mark.parametrize(
    ("code", "status", "type_"),
    [
        (10005, 400, "InvalidJSONPayload"),
        (10006, 400, "InvalidLookupKey"),
        (10007, 400, "SchemaValidationException"),
        (10015, 400, "PaginatedResponseException"),
        (10016, 400, "LookupKeyNotFound"),
        (40004, 400, "CompanyExists"),
        (40005, 400, "CompanyMultipleFound"),
        (40006, 404, "CompanyNotFound"),
        (40007, 404, "ParentCompanyNotFound"),
        (40008, 405, "CompanyNotAllowed"),
        (90006, 404, "AddressNotFound"),
        (429, 429, "TooManyRequests"),
    ],
)
def test_injected_vendor_codes_answer_the_exact_body(
    api: httpx.Client, code: int, status: int, type_: str
) -> None:
    api.post("/_sandbox/faults", json={"vendor_code": code, "path": "/v2/companies", "count": 1})
    assert_error(api.post("/v2/companies", json={"name": "x"}), status, code, type_)
    assert records(api, "companies") == []
    assert api.post("/v2/companies", json={"name": "x"}).status_code == 201


def test_injected_429_says_when_to_retry(api: httpx.Client) -> None:
    api.post("/_sandbox/faults", json={"vendor_code": "TooManyRequests", "count": 2})
    assert api.get("/v2/companies/id/1").headers["Retry-After"] == "1"
    api.post("/_sandbox/faults", json={"vendor_code": 429, "retry_after_s": 7})
    assert api.get("/v2/companies/id/1").headers["Retry-After"] == "7"


def test_injected_http_statuses_use_the_error_body(api: httpx.Client) -> None:
    api.post("/_sandbox/faults", json={"statuses": [503], "count": 1})
    assert_error(api.get("/v2/companies/id/1"), 503, 503, "ServiceUnavailable")


def test_records_reset_and_seed(api: httpx.Client) -> None:
    bulk(api, [erp("C1", name="x")])
    api.post("/v2/companies/sourceId/C1/addresses", json=ADDRESS)
    (company,) = records(api, "companies")
    assert company["recycleBin"] is False
    (address,) = records(api, "addresses")
    assert address["companyId"] == company["id"]
    assert api.post("/_sandbox/seed", json={"customers": 5}).json() == {"seeded": {}}
    assert api.post("/_sandbox/reset").status_code == 200
    assert records(api, "companies") == records(api, "addresses") == []
    assert api.get("/v2/companies/sourceId/C1").status_code == 404, "the token survives a reset"


def test_a_strict_sandbox_refuses_email_and_phone_in_bulk_like_the_reference(
    api: httpx.Client, simulator: PropellerSimulator
) -> None:
    """Doc 002's reference field list leaves out email and phone; its 10007 example names
    the key. ``--propeller-bulk strict`` follows that reading."""
    simulator.bulk_mode = "strict"
    try:
        for key in ("email", "phone"):
            answer = api.post(
                "/v2/companies/bulk/sourceId",
                json={"companies": [erp("A", name="A"), erp("B", name="B", **{key: "x"})]},
            )
            messages = assert_error(answer, 400, 10007, "SchemaValidationException")
            assert messages == [f"#/companies/1: extraneous key [{key}] is not permitted"]
    finally:
        simulator.bulk_mode = "guide"
    assert api.post("/v2/companies/search", json={}).json()["total"] == 0, "nothing applied"
    # The single calls take them (the company field table).
    company = create(api, name="C", email="c@x.example", phone="1", source="ERP", sourceId="C")
    assert (company["email"], company["phone"]) == ("c@x.example", "1")


def test_by_default_bulk_items_carry_email_and_phone_like_the_guide(api: httpx.Client) -> None:
    """The integration guide's bulk example names ``email`` in ``skipIfNotEmpty``: the
    sandbox's default takes both fields in items, and still refuses any other unknown key."""
    answer = api.post(
        "/v2/companies/bulk/sourceId",
        json={"companies": [erp("A", name="A"), erp("B", name="B", mobile="1")]},
    )
    messages = assert_error(answer, 400, 10007, "SchemaValidationException")
    assert messages == ["#/companies/1: extraneous key [mobile] is not permitted"]
    bulk(api, [erp("A", name="A", email="a@x.example", phone="1"), erp("B", name="B")])
    bulk(api, [erp("A", name="A", email="", phone="")])
    found = {c["sources"][0]["sourceId"]: c for c in records(api, "companies")}
    assert (found["A"]["email"], found["A"]["phone"]) == ("", ""), "cleared by bulk"
    assert (found["B"]["email"], found["B"]["phone"]) == (None, None)
    with pytest.raises(ValueError, match="strict"):
        PropellerSimulator(bulk="lenient")


def test_empty_text_clears_a_field_and_reads_back_empty(api: httpx.Client) -> None:
    create(api, name="C", email="c@x.example", taxNumber="BE1", source="ERP", sourceId="C1")
    answer = api.patch(
        "/v2/companies/sourceId/C1",
        params={"source": "ERP"},
        json={"email": "", "taxNumber": None},
    )
    assert answer.status_code == 200, answer.text
    company = get(api, "/v2/companies/sourceId/C1")
    assert (company["email"], company["taxNumber"], company["name"]) == ("", None, "C")


def test_patch_parent_null_detaches_and_bulk_moves(api: httpx.Client) -> None:
    bulk(api, [erp("P1", name="P1"), erp("P2", name="P2")])
    bulk(api, [erp("K", name="K", parent={"sourceId": "P1", "source": "ERP"})])
    p2 = get(api, "/v2/companies/sourceId/P2")["id"]
    bulk(api, [erp("K", name="K", parent={"sourceId": "P2", "source": "ERP"})])
    assert get(api, "/v2/companies/sourceId/K")["parent"] == {"id": p2}
    answer = api.patch("/v2/companies/sourceId/K", params={"source": "ERP"}, json={"parent": None})
    assert answer.status_code == 200, answer.text
    assert get(api, "/v2/companies/sourceId/K")["parent"] is None


def test_bulk_attributes_are_set_changed_cleared_and_read_with_expands(api: httpx.Client) -> None:
    def attributes(**params: str) -> Any:
        return get(api, "/v2/companies/sourceId/A", expands="attributes", **params)["attributes"]

    bulk(api, [erp("A", name="A", attributes=[{"name": "INACTIVE", "value": "Y"}])])
    assert attributes() == [{"name": "INACTIVE", "value": "Y"}]
    assert "attributes" not in get(api, "/v2/companies/sourceId/A"), "only when expanded"
    # An item with only its key and attributes changes nothing else (skipCreate: update only).
    outcome = bulk(
        api,
        [
            {
                **erp("A"),
                "attributes": [{"name": "INACTIVE", "value": "N"}, {"name": "X", "value": "1"}],
            }
        ],
        [{"operation": "skipCreate", "fields": []}],
    )["data"][0]
    assert (outcome["success"], outcome["action"]) == (True, "update")
    assert attributes() == [{"name": "INACTIVE", "value": "N"}, {"name": "X", "value": "1"}]
    assert get(api, "/v2/companies/sourceId/A")["name"] == "A"
    bulk(api, [{**erp("A"), "attributes": [{"name": "X", "value": ""}]}])
    assert attributes() == [{"name": "INACTIVE", "value": "N"}]
    found = api.post("/v2/companies/search?expands=attributes", json={}).json()["data"]
    assert found[0]["attributes"] == [{"name": "INACTIVE", "value": "N"}]
    missing = bulk(
        api,
        [{**erp("NOPE"), "attributes": [{"name": "INACTIVE", "value": "Y"}]}],
        [{"operation": "skipCreate", "fields": []}],
    )["data"][0]
    assert (missing["success"], missing["error"]["code"]) == (False, 40006)


def test_a_malformed_attribute_is_a_schema_error(api: httpx.Client) -> None:
    answer = api.post(
        "/v2/companies/bulk/sourceId",
        json={"companies": [{**erp("A"), "attributes": [{"name": "X"}, {"value": "1"}, 3]}]},
    )
    messages = assert_error(answer, 400, 10007, "SchemaValidationException")
    assert messages == [
        "#/companies/0/attributes/0: required key [value] not found",
        "#/companies/0/attributes/1: required key [name] not found",
        "#/companies/0/attributes/2: expected type: JSONObject, found: Integer",
    ]
