"""The Propeller sandbox's bulk upserts: by source id or id, in order, with directives, schema
checks, limits and inline addresses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Clock
from tests.support.propeller_sandbox import assert_error, bulk, create, erp, get, records


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
