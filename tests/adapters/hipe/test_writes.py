"""The HIPE adapter's writes: camelCase creates, patches of what was set, archive routes,
contacts, custom fields, opaque integer ids (httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from adapters.hipe import (
    HipeCompany,
    HipeCompanyInput,
    HipeContactInput,
    hipe_id,
)
from erpsync.errors import (
    PermanentError,
)
from tests.support.hipe_api import TRICKY_NAME, company, contact, make


def test_create_posts_camel_case_and_patch_sends_only_what_was_set() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = 201 if request.method == "POST" else 200
        return httpx.Response(status, json=company(7, **json.loads(request.content)))

    client = make(handler)
    created = client.create_company(
        HipeCompanyInput(
            name=TRICKY_NAME, external_id="E1", parent_id=3, custom_fields={"tier": "gold"}
        )
    )
    assert created.id == 7
    assert created.name == TRICKY_NAME
    assert created.parent_id == 3
    assert json.loads(seen[0].content) == {
        "name": TRICKY_NAME,
        "externalId": "E1",
        "parentId": 3,
        "customFields": {"tier": "gold"},
    }
    assert (seen[0].method, seen[0].url.path) == ("POST", "/api/companies")
    client.update_company(7, HipeCompanyInput(email=None, phone="+33 1"))
    assert (seen[1].method, seen[1].url.path) == ("PATCH", "/api/companies/7")
    assert json.loads(seen[1].content) == {"email": None, "phone": "+33 1"}, (
        "None clears a field; unset fields are not sent; the JSON API does not add quotes"
    )


def test_archive_and_unarchive_use_the_documented_routes() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        archived = request.method == "DELETE"
        if "/users/" in request.url.path:
            return httpx.Response(200, json=contact(8, archived=archived))
        return httpx.Response(200, json=company(8, archived=archived))

    client = make(handler)
    assert client.archive_company(8).archived
    assert not client.unarchive_company(8).archived
    assert client.archive_contact(8).archived
    assert not client.unarchive_contact(8).archived
    assert seen == [
        ("DELETE", "/api/companies/8/archived"),
        ("GET", "/api/companies/8/unarchived"),
        ("DELETE", "/api/users/8/archived"),
        ("GET", "/api/users/8/unarchived"),
    ]


def test_contact_writes_use_users_routes() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.method, request.url.path, body))
        return httpx.Response(201, json=contact(5, **body))

    client = make(handler)
    made = client.create_contact(
        HipeContactInput(
            email="x@y.z", first_name="Zoé", external_id="P5", collaboration_ids=[1, 2]
        )
    )
    assert made.first_name == "Zoé"
    assert made.collaboration_ids == [1, 2]
    client.update_contact(5, HipeContactInput(job="CFO"))
    assert seen == [
        (
            "POST",
            "/api/users/contacts",
            {"email": "x@y.z", "firstName": "Zoé", "externalId": "P5", "collaborationIds": [1, 2]},
        ),
        ("PATCH", "/api/users/5", {"job": "CFO"}),
    ]


def test_create_without_a_name_fails_before_any_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=company(1))

    with pytest.raises(PermanentError, match="name"):
        make(handler).create_company(HipeCompanyInput(external_id="E1"))
    assert seen == []


def test_custom_field_nodes_are_read_with_their_options() -> None:
    nodes = [
        {
            "id": 1,
            "key": "tier",
            "label": "Tier",
            "type": "select",
            "options": [{"value": "gold", "label": "Gold"}],
            "metaEntityContexts": [{"metaEntity": {"name": "COMPANIES"}}],
        },
        {"id": 2, "key": "since", "type": "date"},
    ]
    client = make(lambda r: httpx.Response(200, json=nodes))
    got = client.custom_field_nodes()
    assert [n.key for n in got] == ["tier", "since"]
    assert got[0].options[0].value == "gold"
    assert got[1].options == []


def test_hipe_ids_are_opaque_integers_stay_integers() -> None:
    """The ledger keeps ids as text: an integer HIPE's come back as numbers, UUIDs as text."""
    uuid_text = "00000001-5a2b-4c3d-8e4f-0123456789ab"
    assert (hipe_id("42"), hipe_id(42), hipe_id(uuid_text)) == (42, 42, uuid_text)
    assert hipe_id("007") == "007", "not an integer's canonical text: kept as it is"
    company = HipeCompany.model_validate({"id": uuid_text, "parentId": uuid_text, "name": "A"})
    assert (company.id, company.parent_id) == (uuid_text, uuid_text)
    numbered = HipeCompany.model_validate({"id": 7, "parentId": 3, "name": "B"})
    assert (numbered.id, numbered.parent_id) == (7, 3)
    assert HipeCompanyInput(parent_id=hipe_id("3")).to_json() == {"parentId": 3}
    assert HipeCompanyInput(parent_id=hipe_id(uuid_text)).to_json() == {"parentId": uuid_text}
