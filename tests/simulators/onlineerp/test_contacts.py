"""The OnlineERP sandbox's ``Contact`` entity (a customer's people), over real HTTP.

The ERP's public pages document no contact: the sandbox's names and rules are in
docs/sandbox-conventions.md, and these tests hold the sandbox to them.
"""

from __future__ import annotations

from typing import Any

import httpx

from simulators.seed import generate


def contact(key: str, customer: str = "C1", **fields: Any) -> dict[str, Any]:
    return {"NoContact": key, "NoClient": customer, "Nom": "Tremblay", **fields}


def test_a_contact_is_created_read_updated_listed_and_deleted_like_a_customer(
    api: httpx.Client,
) -> None:
    api.post("/Entity/Customer", json={"NoClient": "C1", "NomClient": "Un"}).raise_for_status()
    created = api.post("/Entity/Contact", json=contact("P1", Prenom="Marie", Extra=1))
    assert created.status_code == 201, created.text
    assert created.json() == {
        "NoContact": "P1", "NoClient": "C1", "Prenom": "Marie", "Nom": "Tremblay",
        "Courriel": None, "Telephone": None, "Cellulaire": None, "Titre": None,
        "EstActif": True, "Extra": 1,
    }  # fmt: skip
    updated = api.put("/Entity/Contact/P1", json={"Titre": "Comptable", "Prenom": None})
    assert updated.status_code == 200, updated.text
    assert api.get("/Entity/Contact/P1").json() == {
        **created.json(),
        "Titre": "Comptable",
        "Prenom": None,
    }
    api.post("/Entity/Contact", json=contact("P0")).raise_for_status()
    assert [c["NoContact"] for c in api.get("/Entity/Contact").json()] == ["P0", "P1"]
    assert api.delete("/Entity/Contact/P1").status_code == 204
    assert api.get("/Entity/Contact/P1").status_code == 404


def test_a_contact_needs_an_existing_customer_and_a_last_name(api: httpx.Client) -> None:
    api.post("/Entity/Customer", json={"NoClient": "C1", "NomClient": "Un"}).raise_for_status()
    unknown = api.post("/Entity/Contact", json=contact("P1", customer="C9"))
    assert (unknown.status_code, unknown.json()["Code"]) == (400, "InvalidBody")
    assert "C9" in unknown.json()["Message"]
    nameless = api.post("/Entity/Contact", json={"NoContact": "P1", "NoClient": "C1"})
    assert (nameless.status_code, nameless.json()["Code"]) == (400, "InvalidBody")
    api.post("/Entity/Contact", json=contact("P1")).raise_for_status()
    moved = api.put("/Entity/Contact/P1", json={"NoClient": "C9"})
    assert moved.status_code == 400
    assert api.get("/Entity/Contact/P1").json()["NoClient"] == "C1"
    assert api.get("/Entity/Contact").json() == [api.get("/Entity/Contact/P1").json()]


def test_the_seed_adds_one_to_four_contacts_per_customer_only_when_asked(
    api: httpx.Client, control: httpx.Client
) -> None:
    plain = control.post("/_sandbox/seed", json={"customers": 30, "products": 5}).json()
    assert plain == {"seeded": {"Customer": 30, "Product": 5}}
    assert api.get("/Entity/Contact").json() == []
    before = api.get("/Entity/Customer", params={"$top": 100}).json()
    asked = {"customers": 30, "products": 5, "contacts": True}
    seeded = control.post("/_sandbox/seed", json=asked).json()["seeded"]
    assert api.get("/Entity/Customer", params={"$top": 100}).json() == before, "unchanged"
    people = api.get("/Entity/Contact", params={"$top": 1000}).json()
    assert seeded["Contact"] == len(people)
    per_customer: dict[str, int] = {}
    for person in people:
        per_customer[person["NoClient"]] = per_customer.get(person["NoClient"], 0) + 1
    assert set(per_customer) == {c["NoClient"] for c in before}
    assert min(per_customer.values()) == 1
    assert max(per_customer.values()) == 4
    assert generate(30, 5, contacts=True).customers == generate(30, 5).customers
