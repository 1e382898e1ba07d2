"""The Atollon sandbox's records over real HTTP: reset and many upserts, what an update keeps
or empties, detaching, and lists a page at a time."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.server import RunningSandbox
from tests.support.atollon_sandbox import company, contact_post, ext, failed, ok, records


def test_records_reset_and_many_upserts(atollon: httpx.Client) -> None:
    for index in range(300):
        ok(contact_post(atollon, company(f"Client {index % 100}", f"C{index % 150}")))
    assert len(records(atollon, "contacts")) == 150
    entities = atollon.get("/_sandbox/records/nope").json()["entities"]
    assert {"contacts", "products", "billing", "invoices"} <= set(entities)
    atollon.post("/_sandbox/reset")
    assert records(atollon, "contacts") == []
    fresh = ok(contact_post(atollon, company("Client 0", "C0")))
    assert fresh["contactId"]


def test_a_contact_update_keeps_what_is_omitted_and_empties_what_is_sent_empty(
    atollon: httpx.Client,
) -> None:
    ok(contact_post(atollon, company("Dupont", "C1")))
    ok(
        contact_post(
            atollon,
            company(
                "Dupont",
                "C1",
                address=[{"street": "1 rue", "city": "Laval"}],
                contacts={"email": [{"contact": "a@x.ca"}], "phone": [{"contact": "514"}]},
                vatNo="123",
                regNo="R1",
                description="d",
            ),
        )
    )
    (stored,) = records(atollon, "contacts")
    assert (stored["vatNo"], stored["regNo"], stored["description"]) == ("123", "R1", "d")

    # omitted: kept
    ok(contact_post(atollon, company("Dupont", "C1")))
    (kept,) = records(atollon, "contacts")
    assert (kept["vatNo"], kept["address"], kept["contacts"]) == (
        "123",
        stored["address"],
        stored["contacts"],
    )

    # sent empty: emptied ("" and null for a text, [] for a list, one channel alone)
    ok(
        contact_post(
            atollon,
            company(
                "Dupont", "C1", address=[], contacts={"email": []}, vatNo="", regNo=None,
                description="  ",
            ),
        )
    )  # fmt: skip
    (emptied,) = records(atollon, "contacts")
    assert (emptied["vatNo"], emptied["regNo"], emptied["description"]) == (None, None, None)
    assert emptied["address"] == []
    assert emptied["contacts"]["email"] == []
    assert emptied["contacts"]["phone"] == [{"contact": "514", "contactInfoTypeName": ""}]


def test_an_empty_relation_list_detaches_the_mother_company(atollon: httpx.Client) -> None:
    ok(contact_post(atollon, company("Mère", "P1")))

    def child(relations: list[dict[str, Any]] | None) -> dict[str, Any]:
        body = company("Fille", "C1")
        if relations is not None:
            body["company"]["companyCompanyRelation"] = relations
        return body

    def parents() -> list[Any]:
        by_name = {c["name"]: c for c in records(atollon, "contacts")}
        relations = by_name["Fille"]["company"]["companyCompanyRelation"]
        return [r["companyExternalId"] for r in relations]

    ok(contact_post(atollon, child([{"companyExternalId": ext("P1"), "relationType": "M"}])))
    ok(contact_post(atollon, child(None)))
    assert parents() == [ext("P1")], "omitted: kept"
    ok(contact_post(atollon, child([])))
    assert parents() == [], "an empty list: detached"


def test_contacts_are_listed_a_page_at_a_time_oldest_first(atollon: httpx.Client) -> None:
    for number in range(5):
        ok(contact_post(atollon, company(f"Company {number}", f"C{number}")))
    stored = records(atollon, "contacts")

    pages = [
        atollon.get("/crab/crawler/contact", params={"page": n, "limit": 2}) for n in (1, 2, 3, 4)
    ]

    assert [answer.status_code for answer in pages] == [200, 200, 200, 200]
    assert [[c["name"] for c in answer.json()] for answer in pages] == [
        ["Company 0", "Company 1"],
        ["Company 2", "Company 3"],
        ["Company 4"],
        [],
    ]
    assert pages[0].json()[0] == stored[0], "the shape of the records, with contactId"
    default = atollon.get("/crab/crawler/contact").json()
    assert [c["contactId"] for c in default] == [c["contactId"] for c in stored]


@pytest.mark.parametrize("params", [{"page": 0}, {"limit": -1}, {"page": "x"}])
def test_a_list_with_a_bad_page_or_limit_is_a_400_fail(
    atollon: httpx.Client, params: dict[str, Any]
) -> None:
    message = failed(atollon.get("/crab/crawler/contact", params=params), 400)
    assert message.startswith("Invalid request: page and limit")


def test_a_list_needs_the_instance_and_caps_the_page_size(running: RunningSandbox) -> None:
    url = running.endpoints["atollon"].url
    with httpx.Client(base_url=url, timeout=10) as client:
        assert failed(client.get("/crab/crawler/contact"), 403) == "Unknown instance"
        for number in range(3):
            ok(client.post("/crab/crawler/contact", params={"instance": "sandbox"},
                           json=company(f"N{number}", f"N{number}")))  # fmt: skip
        capped = client.get("/crab/crawler/contact", params={"instance": "sandbox", "limit": 10**6})
        assert len(capped.json()) == len(records(client, "contacts"))
