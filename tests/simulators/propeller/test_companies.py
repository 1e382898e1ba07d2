"""The Propeller sandbox's companies: create, get, patch and delete with the documented
defaults, lookup keys, ambiguity, the recycle bin and the vendor's error codes."""

from __future__ import annotations

import httpx

from simulators.propeller import PropellerSimulator
from tests.support import Clock
from tests.support.propeller_sandbox import (
    START_STAMP,
    assert_error,
    bulk,
    create,
    erp,
    get,
    records,
)


def test_create_answers_201_with_the_company_and_documented_defaults(api: httpx.Client) -> None:
    answer = api.post(
        "/v2/companies",
        json={
            "name": "Érablière O'Brien & Fils",
            "language": "FR",
            "source": "ERP",
            "sourceId": "C1",
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert (body["messages"], body["total"]) == (["Company created"], 1)
    data = body["data"]
    assert isinstance(data["id"], int)
    assert data["name"] == "Érablière O'Brien & Fils"
    defaults = {
        "inheritProductList": "Y",
        "inheritOrderList": "Y",
        "budget": "N",
        "budgetInherit": "Y",
        "orderListAllowAll": "U",
    }
    assert {k: data[k] for k in defaults} == defaults
    assert data["dateCreated"] == data["dateModified"] == START_STAMP
    assert "sources" not in data, "sources come back only with ?expands=sources"


def test_get_expands_sources_and_parent(api: httpx.Client) -> None:
    parent = create(api, name="Parent", source="ERP", sourceId="P1")
    child = create(api, name="Child", source="ERP", sourceId="C1", parent={"id": parent["id"]})
    plain = get(api, f"/v2/companies/id/{child['id']}")
    assert plain["parent"] == {"id": parent["id"]}
    assert "sources" not in plain
    expanded = get(api, "/v2/companies/sourceId/C1", expands="sources,parent", source="ERP")
    assert expanded["sources"] == [{"source": "ERP", "sourceId": "C1"}]
    assert expanded["parent"]["name"] == "Parent"


def test_source_and_source_id_each_require_the_other(api: httpx.Client) -> None:
    only_id = api.post("/v2/companies", json={"name": "x", "sourceId": "C1"})
    assert assert_error(only_id, 400, 10007, "SchemaValidationException") == [
        "#: required key [source] not found"
    ]
    only_source = api.post("/v2/companies", json={"name": "x", "source": "ERP"})
    assert assert_error(only_source, 400, 10007, "SchemaValidationException") == [
        "#: required key [sourceId] not found"
    ]


def test_create_rejects_unknown_fields_and_bad_values_with_every_violation(
    api: httpx.Client,
) -> None:
    answer = api.post(
        "/v2/companies", json={"name": 5, "company": "x", "budget": "Q", "language": "ENG"}
    )
    messages = assert_error(answer, 400, 10007, "SchemaValidationException")
    assert set(messages) == {
        "#: extraneous key [company] is not permitted",
        "#/name: expected type: String, found: Integer",
        "#/budget: Q is not a valid enum value",
        "#/language: string [ENG] does not match pattern ^[A-Za-z]{2}$",
    }
    not_object = api.post("/v2/companies", json=[{"name": "x"}])
    assert assert_error(not_object, 400, 10007, "SchemaValidationException") == [
        "#: expected type: JSONObject, found: JSONArray"
    ]
    assert records(api, "companies") == []


def test_create_with_an_existing_source_key_is_40004(api: httpx.Client) -> None:
    create(api, name="first", source="ERP", sourceId="C1", language="EN")
    again = api.post(
        "/v2/companies",
        json={"name": "second", "source": "ERP", "sourceId": "C1", "language": "EN"},
    )
    assert_error(again, 400, 40004, "CompanyExists")
    assert len(records(api, "companies")) == 1


def test_parent_must_exist_40007(api: httpx.Client) -> None:
    by_id = api.post("/v2/companies", json={"name": "orphan", "parent": {"id": 123456}})
    messages = assert_error(by_id, 404, 40007, "ParentCompanyNotFound")
    assert messages == ["Parent resource [Company] with id [123456] not found"]
    by_source = api.post(
        "/v2/companies", json={"name": "orphan", "parent": {"sourceId": "P9", "source": "ERP"}}
    )
    assert_error(by_source, 404, 40007, "ParentCompanyNotFound")
    half = api.post("/v2/companies", json={"name": "orphan", "parent": {"sourceId": "P9"}})
    assert_error(half, 400, 10007, "SchemaValidationException")
    parent = create(api, name="P", source="ERP", sourceId="P9")
    child = create(api, name="C", parent={"sourceId": "P9", "source": "ERP"})
    assert child["parent"] == {"id": parent["id"]}


def test_lookup_keys_are_case_sensitive_10006(api: httpx.Client) -> None:
    create(api, name="x", source="ERP", sourceId="C1")
    for bad in ("sourceid", "ids", "SourceId"):
        messages = assert_error(api.get(f"/v2/companies/{bad}/C1"), 400, 10006, "InvalidLookupKey")
        assert messages == [
            f"Invalid lookup key [{bad}], key must contain one of the following values: "
            "[id,sourceId,]"
        ]
    assert_error(api.patch("/v2/companies/ID/1", json={}), 400, 10006, "InvalidLookupKey")
    assert_error(api.delete("/v2/companies/sourceID/C1"), 400, 10006, "InvalidLookupKey")


def test_unknown_company_is_40006(api: httpx.Client) -> None:
    messages = assert_error(api.get("/v2/companies/sourceId/9483"), 404, 40006, "CompanyNotFound")
    assert messages == ["Company with sourceId [9483] not found"]
    assert_error(api.get("/v2/companies/id/424242"), 404, 40006, "CompanyNotFound")
    assert_error(
        api.patch("/v2/companies/id/424242", json={"name": "x"}), 404, 40006, "CompanyNotFound"
    )
    assert_error(api.delete("/v2/companies/id/abc"), 404, 40006, "CompanyNotFound")


def test_same_source_id_in_two_sources_is_ambiguous_without_source_40005(
    api: httpx.Client,
) -> None:
    erp_one = create(api, name="from ERP", source="ERP", sourceId="1032644")
    create(api, name="from CRM", source="CRM", sourceId="1032644")
    for answer in (
        api.get("/v2/companies/sourceId/1032644"),
        api.patch("/v2/companies/sourceId/1032644", json={"name": "which?"}),
        api.delete("/v2/companies/sourceId/1032644"),
    ):
        assert_error(answer, 400, 40005, "CompanyMultipleFound")
    found = get(api, "/v2/companies/sourceId/1032644", source="ERP")
    assert found["id"] == erp_one["id"]
    assert found["name"] == "from ERP", "the ambiguous PATCH changed nothing"


def test_same_source_key_in_two_languages_needs_the_language_filter_40005(
    api: httpx.Client,
) -> None:
    bulk(api, [erp("C7", "EN", name="English"), erp("C7", "NL", name="Nederlands")])
    ambiguous = api.get("/v2/companies/sourceId/C7", params={"source": "ERP"})
    assert_error(ambiguous, 400, 40005, "CompanyMultipleFound")
    dutch = get(api, "/v2/companies/sourceId/C7", source="ERP", language="NL")
    assert dutch["name"] == "Nederlands"


def test_a_parent_by_source_prefers_the_childs_language_and_is_otherwise_ambiguous(
    api: httpx.Client,
) -> None:
    english, dutch = bulk(api, [erp("P", "EN"), erp("P", "nl")])["data"]
    assert get(api, "/v2/companies/sourceId/P", language="nl")["id"] == dutch["id"]
    parent = {"sourceId": "P", "source": "ERP"}
    child, french = bulk(api, [erp("K", "NL", parent=parent), erp("F", "FR", parent=parent)])[
        "data"
    ]
    assert child["success"] is True
    assert get(api, "/v2/companies/sourceId/K")["parent"] == {"id": dutch["id"]}
    assert english["id"] != dutch["id"]
    assert (french["success"], french["error"]["code"]) == (False, 40005)


def test_patch_updates_given_fields_and_date_modified(api: httpx.Client, clock: Clock) -> None:
    company = create(api, name="Old", email="a@example.com", source="ERP", sourceId="C1")
    clock.advance(61)
    answer = api.patch("/v2/companies/sourceId/C1", params={"source": "ERP"}, json={"name": "New"})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["messages"], body["total"]) == (["Company updated"], 1)
    assert body["data"]["name"] == "New"
    assert body["data"]["email"] == "a@example.com", "PATCH is partial"
    assert body["data"]["dateCreated"] == START_STAMP
    assert body["data"]["dateModified"] == "2026-01-01T00:01:01"
    assert get(api, f"/v2/companies/id/{company['id']}")["name"] == "New"


def test_patch_rejects_unknown_keys_10007(api: httpx.Client) -> None:
    create(api, name="x", source="ERP", sourceId="C1")
    answer = api.patch("/v2/companies/sourceId/C1", json={"company": "x", "name": "y"})
    assert assert_error(answer, 400, 10007, "SchemaValidationException") == [
        "#: extraneous key [company] is not permitted"
    ]
    assert get(api, "/v2/companies/sourceId/C1")["name"] == "x"


def test_patch_moves_the_parent_but_never_under_itself(api: httpx.Client) -> None:
    top = create(api, name="top")
    child = create(api, name="child", parent={"id": top["id"]})
    other = create(api, name="other")
    moved = api.patch(f"/v2/companies/id/{child['id']}", json={"parent": {"id": other["id"]}})
    assert moved.json()["data"]["parent"] == {"id": other["id"]}
    loop = api.patch(f"/v2/companies/id/{other['id']}", json={"parent": {"id": child["id"]}})
    assert_error(loop, 400, 10017, "PayloadValidationError")
    detached = api.patch(f"/v2/companies/id/{child['id']}", json={"parent": None})
    assert detached.json()["data"]["parent"] is None


def test_patch_to_a_source_key_another_company_holds_is_40004(api: httpx.Client) -> None:
    create(api, name="a", source="ERP", sourceId="A")
    b = create(api, name="b", source="ERP", sourceId="B")
    taken = api.patch(f"/v2/companies/id/{b['id']}", json={"source": "ERP", "sourceId": "A"})
    assert_error(taken, 400, 40004, "CompanyExists")
    assert get(api, "/v2/companies/sourceId/B")["id"] == b["id"]


def test_delete_moves_to_the_recycle_bin(api: httpx.Client) -> None:
    company = create(api, name="gone", source="ERP", sourceId="C1", language="EN")
    answer = api.delete("/v2/companies/sourceId/C1", params={"source": "ERP"})
    assert answer.status_code == 200
    assert answer.json() == {"data": {}, "messages": ["Company deleted"]}
    assert_error(api.get(f"/v2/companies/id/{company['id']}"), 404, 40006, "CompanyNotFound")
    assert_error(api.get("/v2/companies/sourceId/C1"), 404, 40006, "CompanyNotFound")
    assert_error(api.delete("/v2/companies/sourceId/C1"), 404, 40006, "CompanyNotFound")
    (stored,) = records(api, "companies")
    assert stored["recycleBin"] is True
    assert stored["sources"] == [{"source": "ERP", "sourceId": "C1"}]


def test_a_deleted_company_cannot_be_recreated_or_bulk_upserted_40008(api: httpx.Client) -> None:
    create(api, name="gone", source="ERP", sourceId="C1", language="EN")
    api.delete("/v2/companies/sourceId/C1")
    again = api.post(
        "/v2/companies", json={"name": "back", "source": "ERP", "sourceId": "C1", "language": "EN"}
    )
    assert_error(again, 405, 40008, "CompanyNotAllowed")
    result = bulk(api, [erp("C1", name="back"), erp("C2", name="fine")])
    failed, applied = result["data"]
    assert failed == {
        "key": "C1",
        "lookupKey": "sourceId",
        "success": False,
        "action": None,
        "id": None,
        "error": {
            "code": 40008,
            "type": "CompanyNotAllowed",
            "messages": failed["error"]["messages"],
        },
    }
    assert applied["success"] is True
    assert len(records(api, "companies")) == 2


def test_a_backoffice_restore_brings_a_binned_company_back_under_its_keys(
    api: httpx.Client, simulator: PropellerSimulator
) -> None:
    company = create(api, name="gone", source="ERP", sourceId="C1", language="EN")
    api.delete("/v2/companies/sourceId/C1", params={"source": "ERP"})
    assert simulator.restore_from_recycle_bin("ERP", "C1") == 1
    assert get(api, "/v2/companies/sourceId/C1")["id"] == company["id"]
    again = api.post(
        "/v2/companies", json={"name": "back", "source": "ERP", "sourceId": "C1", "language": "EN"}
    )
    assert_error(again, 400, 40004, "CompanyExists")
    (stored,) = records(api, "companies")
    assert stored["recycleBin"] is False
    assert simulator.restore_from_recycle_bin("ERP", "C1") == 0, "nothing left in the bin"


def test_invalid_json_is_10005_everywhere(api: httpx.Client) -> None:
    create(api, name="x", source="ERP", sourceId="C1")
    broken = b'{"name": "x",'
    headers = {"Content-Type": "application/json"}
    for method, path in (
        ("POST", "/v2/companies"),
        ("PATCH", "/v2/companies/sourceId/C1"),
        ("POST", "/v2/companies/bulk/sourceId"),
        ("POST", "/v2/companies/search"),
        ("POST", "/v2/companies/sourceId/C1/addresses"),
        ("POST", "/v2/companies/sourceId/C1/addresses/bulk"),
    ):
        answer = api.request(method, path, content=broken, headers=headers)
        assert_error(answer, 400, 10005, "InvalidJSONPayload")


def test_unknown_routes_and_methods_answer_in_the_vendor_shape(api: httpx.Client) -> None:
    assert_error(api.get("/v2/nothing-here"), 404, 10008, "NotFound")
    assert_error(api.put("/v2/companies/id/1", json={}), 405, 405, "MethodNotAllowed")
