"""POST /_sandbox/load/{entity}: many records stored as the vendor's write call would, over
real HTTP (the reconcile benchmark seeds 100,000 customers this way)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.server import CREDENTIALS, RunningSandbox

HIPE_AUTH = {"X-ACCESS-TOKEN": CREDENTIALS["hipe"]["access_token"]}
ATOLLON = {"instance": CREDENTIALS["atollon"]["instance"]}
#: set by the server on each write: the load and the calls differ only there
STAMPS = ("createdAt", "updatedAt", "created", "modified")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with RunningSandbox() as running:
        yield running


def control(sandbox: RunningSandbox, system: str) -> str:
    return sandbox.endpoints[system].url + "/_sandbox"


def unstamped(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in STAMPS} for r in records]


def hipe_bodies(parent_id: int | None) -> list[dict[str, Any]]:
    return [
        {"name": "Parent", "externalId": "P1", "email": "p@example.ca", "phone": "+1 514"},
        {"name": "Child", "externalId": "C1", "vat": "123", "parentId": parent_id},
    ]


def test_hipe_companies_loaded_equal_those_the_api_creates_and_archives(
    sandbox: RunningSandbox,
) -> None:
    url = control(sandbox, "hipe")
    httpx.post(url + "/reset").raise_for_status()
    parent = httpx.post(url + "/load/companies", json=hipe_bodies(None)[:1])
    assert parent.status_code == 200, parent.text
    (made,) = parent.json()["records"]
    child = {**hipe_bodies(made["id"])[1], "archived": True}
    answer = httpx.post(url + "/load/companies", json=[child])
    assert answer.status_code == 200, answer.text
    assert answer.json()["loaded"] == 1
    assert answer.json()["records"][0]["archived"] is True
    loaded = httpx.get(url + "/records/companies").json()

    httpx.post(url + "/reset").raise_for_status()
    api = sandbox.endpoints["hipe"].url + "/api/companies"
    first = httpx.post(api, json=hipe_bodies(None)[0], headers=HIPE_AUTH).json()
    second = httpx.post(api, json=hipe_bodies(first["id"])[1], headers=HIPE_AUTH).json()
    httpx.delete(f"{api}/{second['id']}/archived", headers=HIPE_AUTH).raise_for_status()
    created = httpx.get(url + "/records/companies").json()

    assert unstamped(loaded) == unstamped(created)
    assert [c["parentId"] for c in loaded] == [None, loaded[0]["id"]]


def test_atollon_contacts_loaded_equal_those_the_crawler_upserts(sandbox: RunningSandbox) -> None:
    url = control(sandbox, "atollon")
    bodies = [
        {
            "externalId": [{"system": "onlineerp", "id": "C1"}],
            "company": {"companyName": "Acme"},
            "contacts": {"email": [{"contact": "a@example.ca"}], "phone": []},
            "vatNo": "123",
        },
        {
            "externalId": [{"system": "onlineerp", "id": "C1"}],  # the same contact, updated
            "company": {"companyName": "Acme Inc."},
            "contacts": {"email": [], "phone": [{"contact": "514"}]},
            "vatNo": "",
        },
    ]
    httpx.post(url + "/reset").raise_for_status()
    answer = httpx.post(url + "/load/contacts", json=bodies)
    assert answer.status_code == 200, answer.text
    assert answer.json()["loaded"] == 2
    loaded = httpx.get(url + "/records/contacts").json()

    httpx.post(url + "/reset").raise_for_status()
    crawler = sandbox.endpoints["atollon"].url + "/crab/crawler/contact"
    answers = [httpx.post(crawler, params=ATOLLON, json=b) for b in bodies]
    assert [a.status_code for a in answers] == [200, 200]
    assert unstamped(loaded) == unstamped(httpx.get(url + "/records/contacts").json())
    assert len(loaded) == 1


def test_a_body_the_call_refuses_stops_the_load_and_says_how_many_were_stored(
    sandbox: RunningSandbox,
) -> None:
    url = control(sandbox, "hipe")
    httpx.post(url + "/reset").raise_for_status()
    bodies = [{"name": "A", "externalId": "A"}, {"externalId": "B"}, {"name": "C"}]
    answer = httpx.post(url + "/load/companies", json=bodies)
    assert answer.status_code == 400
    assert answer.json()["loaded"] == 1
    assert "body 1 refused" in answer.json()["error"]
    assert [c["externalId"] for c in httpx.get(url + "/records/companies").json()] == ["A"]

    assert httpx.post(url + "/load/companies", json={"name": "A"}).status_code == 400
    for system, entity in (("hipe", "contacts"), ("propeller", "companies")):
        refused = httpx.post(control(sandbox, system) + f"/load/{entity}", json=[])
        assert refused.status_code == 404, (system, entity)
