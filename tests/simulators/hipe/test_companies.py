"""The HIPE sandbox over real HTTP: auth and errors in the NestJS shape, companies validated,
patched, archived and paged as the conventions describe, custom fields, contacts."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from simulators.hipe import HipeSimulator
from simulators.server import RunningSandbox
from tests.support.hipe_sandbox import TOKEN, create, finished, post_import, search


def test_the_access_token_is_required(hipe: httpx.Client) -> None:
    for headers in ({"X-ACCESS-TOKEN": "wrong"}, {"X-ACCESS-TOKEN": ""}):
        answer = hipe.get("/api/companies", headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"statusCode": 401, "message": "Unauthorized"}
    with httpx.Client(base_url=str(hipe.base_url)) as anonymous:
        for method, path in (
            ("GET", "/api/companies"),
            ("POST", "/api/companies"),
            ("GET", "/api/users/me"),
            ("POST", "/api/imports"),
            ("GET", "/api/custom-field-nodes"),
        ):
            assert anonymous.request(method, path).status_code == 401, path
    assert hipe.get("/api/users/me").json()["email"] == "api@sandbox.hipe.test"


def test_unknown_routes_answer_like_express(hipe: httpx.Client) -> None:
    answer = hipe.put("/api/companies/1", json={})
    assert answer.status_code == 404
    assert answer.json() == {
        "statusCode": 404,
        "message": "Cannot PUT /api/companies/1",
        "error": "Not Found",
    }
    assert hipe.get("/api/nothing").json()["message"] == "Cannot GET /api/nothing"


def test_missing_and_malformed_ids(hipe: httpx.Client) -> None:
    missing = hipe.get("/api/companies/42")
    assert missing.status_code == 404
    assert missing.json() == {
        "statusCode": 404,
        "message": "Company not found",
        "error": "Not Found",
    }
    for method, path in (
        ("PATCH", "/api/companies/42"),
        ("DELETE", "/api/companies/42/archived"),
        ("GET", "/api/companies/42/unarchived"),
    ):
        assert hipe.request(method, path, json={"name": "x"}).status_code == 404, path
    malformed = hipe.get("/api/companies/abc")
    assert malformed.status_code == 400
    assert malformed.json()["message"] == "Invalid param id. Number expected"
    assert hipe.get("/api/users/42").json()["message"] == "User not found"


def test_injected_faults_answer_in_nestjs_shape(hipe: httpx.Client) -> None:
    rule = {"vendor_code": "429", "count": 1, "retry_after_s": 2, "path": "/api/companies"}
    hipe.post("/_sandbox/faults", json=rule).raise_for_status()
    answer = hipe.get("/api/companies")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    assert answer.json() == {"statusCode": 429, "message": "Too Many Requests"}
    hipe.post("/_sandbox/faults", json={"statuses": [503], "count": 1}).raise_for_status()
    unavailable = hipe.get("/api/companies")
    assert unavailable.json()["statusCode"] == 503
    assert hipe.get("/api/companies").status_code == 200


def test_create_answers_201_with_the_stored_company(hipe: httpx.Client) -> None:
    made = create(hipe, name="My amazing jam company", externalId="ERP-64000", vat="FR12")
    assert isinstance(made["id"], int)
    assert made["name"] == "My amazing jam company"
    assert made["externalId"] == "ERP-64000"
    assert made["archived"] is False
    assert made["customFields"] == {}
    for stamp in (made["createdAt"], made["updatedAt"]):
        assert stamp.endswith("Z")
        assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert hipe.get(f"/api/companies/{made['id']}").json() == made
    assert hipe.get("/_sandbox/records/companies").json() == [made]


def test_create_validates_the_body_like_class_validator(hipe: httpx.Client) -> None:
    def refused(body: Any) -> Any:
        answer = hipe.post("/api/companies", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "Bad Request"
        return answer.json()["message"]

    assert refused({}) == ["name should not be empty", "name must be a string"]
    assert refused({"name": ""}) == ["name should not be empty"]
    assert refused({"name": 5}) == ["name must be a string"]
    assert refused({"name": "x", "colour": "red"}) == ["property colour should not exist"]
    assert refused({"name": "x", "parentId": "abc"}) == ["parentId must be an integer number"]
    assert refused({"name": "x", "collaboratorIds": [1, "a"]}) == [
        "each value in collaboratorIds must be an integer number"
    ]
    broken = hipe.post(
        "/api/companies", content=b'{"name": }', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["message"].startswith("Unexpected token in JSON")
    assert hipe.get("/_sandbox/records/companies").json() == []


def test_external_id_is_not_unique(hipe: httpx.Client) -> None:
    """Two creates with one externalId make two companies, as in the real HIPE."""
    first = create(hipe, name="First", externalId="DUP-1")
    second = create(hipe, name="Second", externalId="DUP-1")
    assert first["id"] != second["id"]
    hits = search(hipe, '{"externalId":{"$eq":"DUP-1"}}')
    assert [c["id"] for c in hits] == [first["id"], second["id"]]
    assert len(hipe.get("/_sandbox/records/companies").json()) == 2


def test_patch_updates_and_moves_updated_at(hipe: httpx.Client) -> None:
    parent = create(hipe, name="Parent", externalId="P")
    made = create(hipe, name="Child", externalId="C")
    time.sleep(0.002)  # timestamps have millisecond precision
    patched = hipe.patch(
        f"/api/companies/{made['id']}", json={"parentId": str(parent["id"]), "phone": "+1"}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["parentId"], body["phone"], body["name"]) == (parent["id"], "+1", "Child")
    assert body["createdAt"] == made["createdAt"]
    assert body["updatedAt"] > made["updatedAt"]
    cleared = hipe.patch(f"/api/companies/{made['id']}", json={"phone": None}).json()
    assert cleared["phone"] is None
    assert hipe.patch(f"/api/companies/{made['id']}", json={"name": ""}).status_code == 400


def test_parent_must_exist_and_not_make_a_cycle(hipe: httpx.Client) -> None:
    top = create(hipe, name="Top")
    child = create(hipe, name="Child", parentId=top["id"])
    unknown = hipe.post("/api/companies", json={"name": "Orphan", "parentId": 999})
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "parentId: company 999 not found"
    cycle = hipe.patch(f"/api/companies/{top['id']}", json={"parentId": child["id"]})
    assert cycle.status_code == 400
    assert hipe.get(f"/api/companies/{top['id']}").json()["parentId"] is None


def test_archive_and_unarchive(hipe: httpx.Client) -> None:
    made = create(hipe, name="Soon archived", externalId="ARC-1")
    archived = hipe.delete(f"/api/companies/{made['id']}/archived")
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert archived.json()["id"] == made["id"]
    assert hipe.get(f"/api/companies/{made['id']}").json()["archived"] is True
    assert [c["id"] for c in search(hipe, '{"externalId":"ARC-1"}')] == [made["id"]]
    assert [c["id"] for c in search(hipe, '{"archived":true}')] == [made["id"]]
    restored = hipe.get(f"/api/companies/{made['id']}/unarchived")
    assert restored.status_code == 200
    assert restored.json()["archived"] is False
    assert hipe.get("/_sandbox/records/companies").json()[0]["archived"] is False


def test_the_paginated_envelope_rule(hipe: httpx.Client) -> None:
    ids = [create(hipe, name=f"Company {i}")["id"] for i in range(5)]
    assert [c["id"] for c in hipe.get("/api/companies").json()] == ids
    limited = hipe.get("/api/companies", params={"limit": 2}).json()
    assert [c["id"] for c in limited] == ids[:2], "limit alone: a bare array"
    paged = hipe.get("/api/companies", params={"limit": 2, "page": 3}).json()
    assert {k: v for k, v in paged.items() if k != "data"} == {
        "count": 1,
        "total": 5,
        "page": 3,
        "pageCount": 3,
    }
    assert [c["id"] for c in paged["data"]] == ids[4:]
    offset = hipe.get("/api/companies", params={"per_page": 2, "offset": 3}).json()
    assert (offset["page"], [c["id"] for c in offset["data"]]) == (2, ids[3:5])
    page_wins = hipe.get("/api/companies", params={"limit": 2, "page": 1, "offset": 3}).json()
    assert [c["id"] for c in page_wins["data"]] == ids[:2], "page wins over offset"
    no_size = hipe.get("/api/companies", params={"page": 2}).json()
    assert isinstance(no_size, list), "page without a page size: no envelope (no default limit)"
    empty = hipe.get("/api/companies", params={"limit": 2, "page": 1, "s": '{"id":0}'}).json()
    assert empty == {"data": [], "count": 0, "total": 0, "page": 1, "pageCount": 1}


def test_max_limit_caps_pages_and_makes_page_alone_paginate() -> None:
    with (
        RunningSandbox(simulators={"hipe": HipeSimulator(max_limit=2)}) as running,
        httpx.Client(
            base_url=running.endpoints["hipe"].url, headers={"X-ACCESS-TOKEN": TOKEN}
        ) as hipe,
    ):
        for i in range(3):
            create(hipe, name=f"C{i}")
        assert len(hipe.get("/api/companies", params={"limit": 10}).json()) == 2
        page = hipe.get("/api/companies", params={"page": 2}).json()
        assert (page["count"], page["total"], page["pageCount"]) == (1, 3, 2)


def test_changed_since_as_the_conventions_describe(hipe: httpx.Client) -> None:
    first = create(hipe, name="Old")
    second = create(hipe, name="Also old")
    time.sleep(0.002)
    marker = hipe.patch(f"/api/companies/{second['id']}", json={"vat": "X"}).json()["updatedAt"]
    time.sleep(0.002)
    hipe.patch(f"/api/companies/{first['id']}", json={"vat": "Y"})
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("s", f'{{"updatedAt":{{"$gte":"{marker}"}}}}'),
        ("sort", "updatedAt,ASC"),
        ("sort", "id,ASC"),
        ("limit", 10),
        ("page", 1),
    ]
    page = hipe.get("/api/companies", params=params).json()
    assert [c["id"] for c in page["data"]] == [second["id"], first["id"]]


def test_query_strings_are_decoded_like_express(hipe: httpx.Client) -> None:
    made = create(hipe, name="A+B & C 100% «é» 🚀", externalId="Q&A=1;2")
    encoded = search(hipe, '{"name":"A+B & C 100% «é» 🚀"}')
    assert [c["id"] for c in encoded] == [made["id"]]
    by_ext = hipe.get("/api/companies", params={"filter": "externalId||$eq||Q&A=1;2"}).json()
    assert [c["id"] for c in by_ext] == [made["id"]]
    raw_plus = hipe.get('/api/companies?s={"name":{"$starts":"A+B"}}').json()
    assert raw_plus == [], "an unencoded + is a space"


def test_flat_pagination_list_as_the_n8n_node_reads_it(hipe: httpx.Client) -> None:
    for name in ("Bravo", "alpha", "Charlie"):
        create(hipe, name=name, externalId=name.upper())
    page = hipe.get(
        "/api/companies/pagination", params={"page": 1, "limit": 2, "sort": "name,DESC"}
    ).json()
    assert [c["name"] for c in page["data"]] == ["alpha", "Charlie"]
    assert page["pagination"] == {"total": 3, "page": 1, "limit": 2, "pageCount": 2}
    found = hipe.get("/api/companies/pagination", params={"search": "RAV"}).json()
    assert [c["name"] for c in found["data"]] == ["Bravo"]
    assert hipe.get("/api/companies/pagination", params={"sort": "vat,ASC"}).status_code == 400


def test_custom_field_nodes_describe_the_fields(hipe: httpx.Client) -> None:
    nodes = hipe.get("/api/custom-field-nodes").json()
    types = {node["key"]: node["type"] for node in nodes}
    assert {"select", "multiselect", "checkbox", "text", "date"} <= set(types.values())
    for node in nodes:
        assert node["metaEntityContexts"]
        if node["type"] in ("select", "multiselect", "checkbox"):
            assert all({"value", "label"} <= set(option) for option in node["options"])


def test_a_number_custom_field_takes_the_guides_number(hipe: httpx.Client) -> None:
    """The guide's PATCH sets ``"myCustomFieldNumber": 10``; the sandbox's is creditLimit."""
    made = create(hipe, name="Numbers", customFields={"creditLimit": 10})
    assert made["customFields"] == {"creditLimit": 10}
    patched = hipe.patch(
        f"/api/companies/{made['id']}", json={"customFields": {"creditLimit": 2.5}}
    )
    assert patched.json()["customFields"] == {"creditLimit": 2.5}
    csv_text = (
        "externalId,name,customFields.creditLimit\r\nN-1,A,1500\r\nN-2,B,-2.25\r\nN-3,C,x\r\n"
    )
    done = finished(hipe, post_import(hipe, csv_text).json()["id"])
    assert [(e["row"], e["message"]) for e in done["errors"]] == [
        (3, "customFields.creditLimit must be a number")
    ]
    values = {
        c["externalId"]: c["customFields"] for c in hipe.get("/_sandbox/records/companies").json()
    }
    assert (values["N-1"], values["N-2"]) == ({"creditLimit": 1500}, {"creditLimit": -2.25})
    assert type(values["N-1"]["creditLimit"]) is int


def test_company_custom_fields_are_checked_and_merged(hipe: httpx.Client) -> None:
    good = {
        "segment": "retail",
        "sectors": ["food", "pharma"],
        "vip": True,
        "erpNote": "note",
        "customerSince": "2020-05-01",
    }
    made = create(hipe, name="Custom", customFields=good)
    assert made["customFields"] == good

    def refused(fields: dict[str, Any]) -> str:
        answer = hipe.patch(f"/api/companies/{made['id']}", json={"customFields": fields})
        assert answer.status_code == 400, answer.text
        message: list[str] = answer.json()["message"]
        return message[0]

    assert refused({"colour": "red"}) == "customFields.colour is not a custom field of companies"
    assert refused({"segment": "space"}).startswith("customFields.segment must be one of")
    assert refused({"sectors": ["food", "toys"]}).startswith("customFields.sectors must be")
    assert refused({"vip": "yes"}).startswith("customFields.vip must be one of")
    assert refused({"customerSince": "May 2020"}).startswith("customFields.customerSince")
    assert refused({"erpNote": 5}) == "customFields.erpNote must be a string"
    assert refused({"creditLimit": "10"}) == "customFields.creditLimit must be a number"
    assert refused({"creditLimit": True}) == "customFields.creditLimit must be a number"
    assert refused({"preferredLanguage": "fr"}).endswith("not a custom field of companies")

    merged = hipe.patch(
        f"/api/companies/{made['id']}", json={"customFields": {"segment": "industry", "vip": None}}
    ).json()["customFields"]
    assert merged == {
        "segment": "industry",
        "sectors": ["food", "pharma"],
        "erpNote": "note",
        "customerSince": "2020-05-01",
    }


def test_contacts_create_search_update_archive(hipe: httpx.Client) -> None:
    employer = create(hipe, name="Employer")
    made = hipe.post(
        "/api/users/contacts",
        json={
            "email": "zoe@example.com",
            "firstName": "Zoé",
            "externalId": "ERP-12345",
            "collaborationIds": [employer["id"]],
            "customFields": {"preferredLanguage": "fr"},
        },
    )
    assert made.status_code == 201
    contact = made.json()
    assert (contact["role"], contact["collaborationIds"]) == ("contact", [employer["id"]])
    twin = hipe.post("/api/users/contacts", json={"externalId": "ERP-12345"}).json()

    by_ext = hipe.get("/api/users/contacts", params={"s": '{"externalId":{"$eq":"ERP-12345"}}'})
    assert [c["id"] for c in by_ext.json()] == [contact["id"], twin["id"]]
    by_mail = hipe.get("/api/users/contacts", params={"s": '{"email":{"$eq":"zoe@example.com"}}'})
    assert [c["id"] for c in by_mail.json()] == [contact["id"]]
    everyone = hipe.get("/api/users/contacts").json()
    assert {c["role"] for c in everyone} == {"contact"}, "the API user is not a contact"

    assert hipe.get(f"/api/users/{contact['id']}").json() == contact
    patched = hipe.patch(f"/api/users/{contact['id']}", json={"job": "Buyer"}).json()
    assert (patched["job"], patched["email"]) == ("Buyer", "zoe@example.com")
    assert hipe.delete(f"/api/users/{contact['id']}/archived").json()["archived"] is True
    assert hipe.get(f"/api/users/{contact['id']}/unarchived").json()["archived"] is False
    records = hipe.get("/_sandbox/records/contacts").json()
    assert [c["id"] for c in records] == [contact["id"], twin["id"]]


def test_contact_bodies_are_validated(hipe: httpx.Client) -> None:
    def refused(body: Any) -> Any:
        answer = hipe.post("/api/users/contacts", json=body)
        assert answer.status_code == 400, answer.text
        return answer.json()["message"]

    assert refused({"collaborationIds": [77]}) == "collaborationIds: company 77 not found"
    assert refused({"customFields": {"segment": "retail"}}) == [
        "customFields.segment is not a custom field of contacts"
    ]
    assert refused({"email": 3}) == ["email must be a string"]
    assert refused({"role": "admin"}) == ["property role should not exist"]
