"""The Propeller simulator over real HTTP: tokens, companies, bulk, search, addresses, errors.

Every error code is produced by the situation that causes it; injection is tested on top.
Time comes from a fake clock, so token expiry and equal ``dateModified`` stamps are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.propeller import TOKEN_TTL_S, PropellerSimulator
from simulators.server import RunningSandbox
from tests.support import Clock

START = 1_767_225_600.0  # 2026-01-01T00:00:00 UTC
START_STAMP = "2026-01-01T00:00:00"
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox",
    "client_secret": "sandbox-secret",
}


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(START)


@pytest.fixture(scope="module")
def simulator(clock: Clock) -> PropellerSimulator:
    return PropellerSimulator(clock=clock)


@pytest.fixture(scope="module")
def base_url(simulator: PropellerSimulator) -> Iterator[str]:
    with RunningSandbox(simulators={"propeller": simulator}) as running:
        yield running.endpoints["propeller"].url


@pytest.fixture
def anon(base_url: str, clock: Clock) -> Iterator[httpx.Client]:
    """A client without a token, on an empty simulator, at the start time."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        clock.now = START
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


@pytest.fixture
def api(anon: httpx.Client) -> httpx.Client:
    """A client holding a fresh bearer token."""
    token = anon.post("/oauth2/token", data=CREDENTIALS).json()["access_token"]
    anon.headers["Authorization"] = f"Bearer {token}"
    return anon


def error_of(answer: httpx.Response) -> dict[str, Any]:
    """The ``error`` member, after checking the documented error body shape."""
    body = answer.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "status", "type", "messages", "moreInfo"}
    assert error["status"] == answer.status_code
    assert error["moreInfo"] == f"https://www.propel.us/docs/errors/{error['code']}"
    assert error["messages"], "an error always says why"
    return error


def assert_error(answer: httpx.Response, status: int, code: int, type_: str) -> list[str]:
    """The answer is the given vendor error; returns its messages."""
    assert answer.status_code == status, answer.text
    error = error_of(answer)
    assert (error["code"], error["type"]) == (code, type_)
    messages: list[str] = error["messages"]
    return messages


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = api.post("/v2/companies", json=fields)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def bulk(
    api: httpx.Client, companies: list[Any], directives: Any = None, key: str = "sourceId"
) -> Any:
    body: dict[str, Any] = {"companies": companies}
    if directives is not None:
        body["directives"] = directives
    answer = api.post(f"/v2/companies/bulk/{key}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def get(api: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    answer = api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def erp(source_id: str, language: str = "EN", **fields: Any) -> dict[str, Any]:
    return {"source": "ERP", "sourceId": source_id, "language": language, **fields}


def records(client: httpx.Client, entity: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/_sandbox/records/{entity}").json()
    return found


# --- OAuth2 tokens --------------------------------------------------------------------------


def test_token_by_form_body(anon: httpx.Client) -> None:
    answer = anon.post("/oauth2/token", data=CREDENTIALS)
    assert answer.status_code == 200
    body = answer.json()
    assert body["expires_in"] == 1800
    assert (body["token_type"], body["scope"]) == ("Bearer", "profile")
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32


def test_token_by_basic_auth(anon: httpx.Client) -> None:
    answer = anon.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("sandbox", "sandbox-secret"),
    )
    assert answer.status_code == 200
    token = answer.json()["access_token"]
    assert (
        anon.get("/v2/companies/id/1", headers={"Authorization": f"Bearer {token}"}).status_code
        == 404
    ), "the token opens the API (the company just does not exist)"


def test_wrong_credentials_are_401_invalid_client_without_echoing_the_secret(
    anon: httpx.Client,
) -> None:
    wrong = anon.post("/oauth2/token", data={**CREDENTIALS, "client_secret": "nope-secret"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert "nope-secret" not in wrong.text
    basic = anon.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("sandbox", "bad")
    )
    assert basic.status_code == 401
    assert basic.headers["WWW-Authenticate"].startswith("Basic")
    garbage = anon.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!not-base64"},
    )
    assert garbage.status_code == 401


def test_token_request_needs_the_client_credentials_grant(anon: httpx.Client) -> None:
    missing = anon.post("/oauth2/token", data={"client_id": "sandbox"})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    other = anon.post("/oauth2/token", data={**CREDENTIALS, "grant_type": "password"})
    assert (other.status_code, other.json()["error"]) == (400, "unsupported_grant_type")


def test_resources_need_a_known_bearer_token(anon: httpx.Client) -> None:
    assert_error(anon.get("/v2/companies/id/1"), 401, 401, "InvalidAccessToken")
    unknown = anon.get("/v2/companies/id/1", headers={"Authorization": "Bearer made-up"})
    assert_error(unknown, 401, 401, "InvalidAccessToken")
    basic = anon.post("/v2/companies", json={}, auth=("sandbox", "sandbox-secret"))
    assert_error(basic, 401, 401, "InvalidAccessToken")
    assert records(anon, "companies") == [], "a refused request changes nothing"


def test_token_expires_after_1800_seconds(api: httpx.Client, clock: Clock) -> None:
    clock.advance(TOKEN_TTL_S - 1)
    assert api.post("/v2/companies", json={"name": "still valid"}).status_code == 201
    clock.advance(1)
    messages = assert_error(api.get("/v2/companies/id/9000"), 401, 401, "InvalidAccessToken")
    assert "expired" in messages[0]
    fresh = api.post("/oauth2/token", data=CREDENTIALS).json()["access_token"]
    assert (
        api.get("/v2/companies/id/9000", headers={"Authorization": f"Bearer {fresh}"}).status_code
        == 200
    )


def test_expire_tokens_lets_tests_force_a_refresh(
    api: httpx.Client, simulator: PropellerSimulator
) -> None:
    assert api.post("/v2/companies", json={"name": "x"}).status_code == 201
    simulator.expire_tokens()
    assert_error(api.get("/v2/companies/id/9000"), 401, 401, "InvalidAccessToken")


# --- companies: create, get, patch, delete -----------------------------------------------


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


# --- bulk ---------------------------------------------------------------------------------


def test_bulk_by_source_id_creates_then_updates(api: httpx.Client, clock: Clock) -> None:
    first = bulk(api, [erp("C1", name="One"), erp("C2", name="Two")])
    assert first["messages"] == ["Completed"]
    assert first["total"] == 2
    one, two = first["data"]
    assert one == {
        "action": "create",
        "id": one["id"],
        "key": "C1",
        "lookupKey": "sourceId",
        "success": True,
    }
    assert two["action"] == "create"
    clock.advance(5)
    second = bulk(api, [erp("C1", name="One bis")])
    assert second["data"] == [
        {"action": "update", "id": one["id"], "key": "C1", "lookupKey": "sourceId", "success": True}
    ]
    updated = get(api, "/v2/companies/sourceId/C1")
    assert updated["name"] == "One bis"
    assert updated["dateModified"] == "2026-01-01T00:00:05"
    assert len(records(api, "companies")) == 2


def test_bulk_applies_items_in_order_so_a_parent_may_precede_its_child(
    api: httpx.Client,
) -> None:
    result = bulk(
        api,
        [
            erp("P1", name="Parent"),
            erp("K1", name="Child", parent={"sourceId": "P1", "source": "ERP"}),
            erp("K2", name="Too early", parent={"sourceId": "P2", "source": "ERP"}),
            erp("P2", name="Late parent"),
        ],
    )
    parent, child, orphan, late = result["data"]
    assert child["success"] is True
    assert get(api, f"/v2/companies/id/{child['id']}")["parent"] == {"id": parent["id"]}
    assert orphan["success"] is False
    assert orphan["error"]["code"] == 40007
    assert orphan["error"]["type"] == "ParentCompanyNotFound"
    assert (orphan["key"], orphan["lookupKey"], orphan["action"], orphan["id"]) == (
        "K2",
        "sourceId",
        None,
        None,
    )
    assert late["success"] is True, "a failed item does not stop the ones after it"
    assert_error(api.get("/v2/companies/sourceId/K2"), 404, 40006, "CompanyNotFound")


def test_bulk_accepts_the_sources_list_shape(api: httpx.Client) -> None:
    flat = bulk(api, [erp("1032644", name="flat")])["data"][0]
    listed = bulk(
        api,
        [{"sources": [{"name": "ERP", "id": "1032644"}], "language": "EN", "name": "listed"}],
    )["data"][0]
    assert listed == {
        "action": "update",
        "id": flat["id"],
        "key": "1032644",
        "lookupKey": "sourceId",
        "success": True,
    }
    assert get(api, "/v2/companies/sourceId/1032644")["name"] == "listed"
    mixed = api.post(
        "/v2/companies/bulk/sourceId",
        json={"companies": [{**erp("X"), "sources": [{"name": "ERP", "id": "X"}]}]},
    )
    assert_error(mixed, 400, 10007, "SchemaValidationException")


@pytest.mark.parametrize(
    "directives",
    [
        {"skipIfNotEmpty": ["name", "taxNumber"]},
        [{"operation": "skipIfNotEmpty", "fields": ["name", "taxNumber"]}],
    ],
    ids=["object", "array"],
)
def test_skip_if_not_empty_keeps_existing_values(api: httpx.Client, directives: Any) -> None:
    bulk(api, [erp("C1", name="Kept", notes="111")])
    bulk(api, [erp("C1", name="Ignored", taxNumber="NL001", notes="222")], directives)
    company = get(api, "/v2/companies/sourceId/C1")
    assert company["name"] == "Kept", "a non-empty field is not overwritten"
    assert company["taxNumber"] == "NL001", "an empty one is filled"
    assert company["notes"] == "222", "fields not listed are updated"


@pytest.mark.parametrize(
    "directives",
    [{"skipMoveOnUpdate": []}, [{"operation": "skipMoveOnUpdate", "fields": []}]],
    ids=["object", "array"],
)
def test_skip_move_on_update_keeps_the_parent(api: httpx.Client, directives: Any) -> None:
    result = bulk(api, [erp("A", name="A"), erp("B", name="B")])
    first_parent = result["data"][0]["id"]
    bulk(api, [erp("C", name="C", parent={"sourceId": "A", "source": "ERP"})])
    outcome = bulk(
        api,
        [
            erp("C", name="C2", parent={"sourceId": "B", "source": "ERP"}),
            erp("D", name="new", parent={"sourceId": "B", "source": "ERP"}),
        ],
        directives,
    )["data"]
    assert [o["action"] for o in outcome] == ["update", "create"]
    moved = get(api, "/v2/companies/sourceId/C")
    assert moved["parent"] == {"id": first_parent}
    assert moved["name"] == "C2"
    assert get(api, "/v2/companies/sourceId/D")["parent"] == {"id": result["data"][1]["id"]}


@pytest.mark.parametrize(
    "directives", [{"skipCreate": []}, [{"operation": "skipCreate"}]], ids=["object", "array"]
)
def test_skip_create_only_updates(api: httpx.Client, directives: Any) -> None:
    bulk(api, [erp("C1", name="old")])
    existing, missing = bulk(api, [erp("C1", name="new"), erp("C2", name="never")], directives)[
        "data"
    ]
    assert existing["action"] == "update"
    assert missing["success"] is False
    assert missing["error"]["code"] == 40006
    assert [c["name"] for c in records(api, "companies")] == ["new"]


def test_unknown_directive_is_10007(api: httpx.Client) -> None:
    bad: list[Any] = [{"skipEverything": []}, [{"operation": "skipEverything"}], "skipCreate"]
    for directives in bad:
        answer = api.post(
            "/v2/companies/bulk/sourceId",
            json={"companies": [erp("C1")], "directives": directives},
        )
        assert_error(answer, 400, 10007, "SchemaValidationException")
    assert records(api, "companies") == []


def test_bulk_schema_violations_reject_the_whole_call_10007(api: httpx.Client) -> None:
    answer = api.post(
        "/v2/companies/bulk/sourceId",
        json={
            "companies": [
                erp("C1"),
                {**erp("C2"), "company": "x"},
                {"source": "ERP", "sourceId": "C3"},
            ]
        },
    )
    messages = assert_error(answer, 400, 10007, "SchemaValidationException")
    assert set(messages) == {
        "#/companies/1: extraneous key [company] is not permitted",
        "#/companies/2: required key [language] not found",
    }
    assert records(api, "companies") == [], "nothing is applied"
    no_list = api.post("/v2/companies/bulk/sourceId", json={"items": []})
    assert set(assert_error(no_list, 400, 10007, "SchemaValidationException")) == {
        "#: extraneous key [items] is not permitted",
        "#: required key [companies] not found",
    }


def test_bulk_over_1000_items_is_10007(api: httpx.Client) -> None:
    answer = api.post(
        "/v2/companies/bulk/sourceId", json={"companies": [erp(f"C{i}") for i in range(1001)]}
    )
    assert assert_error(answer, 400, 10007, "SchemaValidationException") == [
        "#/companies: expected maximum item count: 1000, found: 1001"
    ]
    assert records(api, "companies") == []
    assert len(bulk(api, [erp(f"C{i}") for i in range(1000)])["data"]) == 1000


def test_bulk_item_without_its_lookup_key_is_10016(api: httpx.Client) -> None:
    answer = api.post(
        "/v2/companies/bulk/sourceId",
        json={"companies": [erp("C1"), {"source": "ERP", "language": "EN", "name": "no key"}]},
    )
    assert assert_error(answer, 400, 10016, "LookupKeyNotFound") == [
        "Lookup key [sourceId] not found in #/companies/1"
    ]
    by_id = api.post("/v2/companies/bulk/id", json={"companies": [{"name": "no id"}]})
    assert_error(by_id, 400, 10016, "LookupKeyNotFound")
    assert records(api, "companies") == []


def test_bulk_by_id_updates_or_creates(api: httpx.Client) -> None:
    company = create(api, name="x", source="ERP", sourceId="C1")
    result = bulk(
        api,
        [{"id": company["id"], "name": "renamed"}, {"id": 777777, "name": "made"}],
        key="id",
    )
    updated, made = result["data"]
    assert updated == {
        "action": "update",
        "id": company["id"],
        "key": company["id"],
        "lookupKey": "id",
        "success": True,
    }
    assert made["action"] == "create"
    assert made["key"] == 777777
    assert get(api, f"/v2/companies/id/{made['id']}")["name"] == "made"
    assert get(api, "/v2/companies/sourceId/C1")["name"] == "renamed"
    api.delete(f"/v2/companies/id/{company['id']}")
    binned = bulk(api, [{"id": company["id"], "name": "again"}], key="id")["data"][0]
    assert (binned["success"], binned["error"]["code"]) == (False, 40008)


def test_bulk_by_id_source_key_conflict_is_a_per_item_40004(api: httpx.Client) -> None:
    create(api, name="holder", source="ERP", sourceId="C1")
    other = create(api, name="other")
    outcome = bulk(api, [{"id": other["id"], "source": "ERP", "sourceId": "C1"}], key="id")
    assert outcome["data"][0]["error"]["code"] == 40004


def test_bulk_with_an_unknown_lookup_key_is_10006(api: httpx.Client) -> None:
    answer = api.post("/v2/companies/bulk/sourceid", json={"companies": [erp("C1")]})
    assert_error(answer, 400, 10006, "InvalidLookupKey")


def test_bulk_upserts_inline_addresses_by_code(api: httpx.Client) -> None:
    address = {
        "type": "invoice",
        "code": "main",
        "street": "1 rue Principale",
        "city": "Laval",
        "country": "CA",
    }
    bulk(api, [erp("C1", addresses=[address])])
    bulk(api, [erp("C1", addresses=[{**address, "city": "Québec"}])])
    (stored,) = records(api, "addresses")
    assert stored["city"] == "Québec"


# --- search -------------------------------------------------------------------------------


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


# --- addresses ----------------------------------------------------------------------------

ADDRESS = {"type": "delivery", "street": "12 rue Saint-Paul", "city": "Montréal", "country": "CA"}


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


# --- faults, records, reset, seed ---------------------------------------------------------


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


# --- issue 15: documented bulk fields, clears, detaching, attributes ---------------------


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
