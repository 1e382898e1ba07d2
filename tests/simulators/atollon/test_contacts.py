"""The Atollon sandbox's contacts, driven over real HTTP: companies and persons, external ids,
matching by name, email or mobile, relations, groups and folders."""

from __future__ import annotations

from typing import Any

import httpx

from simulators.atollon import AtollonSimulator
from simulators.server import RunningSandbox
from tests.support.atollon_sandbox import (
    CLIENT,
    ERP,
    LEAD,
    PARTNER,
    SUPPLIER,
    company,
    contact_post,
    ext,
    failed,
    ok,
    records,
)


def test_company_contact_success_body_and_stored_fields(atollon: httpx.Client) -> None:
    body = company(
        "Emballages Côté inc.",
        "C000001",
        address=[
            {
                "street": "12 rue Principale",
                "city": "Montréal",
                "zip": "H2X 1Y4",
                "region": "QC",
                "country": "CA",
                "addressType": "Billing",
            }
        ],
        contacts={
            "email": [{"contact": "compta@cote.ca", "contactInfoTypeName": "Work"}],
            "phone": [{"contact": "+1 514 555 0101", "contactInfoTypeName": ""}],
            "mobile": [],
            "web": [{"contact": "https://cote.ca"}],
        },
        description="Client ERP",
        regNo="1234",
        vatNo="123456789RT0001",
        source="erpsync",
        contactGroup=[{"name": "Clients ERP", "description": "synced"}],
        contactFolder=[{"category": CLIENT, "refId": "F-C000001"}],
    )
    answer = ok(contact_post(atollon, body))
    assert answer["contact"] == {"externalId": [{"system": ERP, "id": "C000001"}]}
    assert answer["contactId"]
    assert answer["folderId"]

    [stored] = records(atollon, "contacts")
    assert stored["contactId"] == answer["contactId"]
    assert stored["contactType"] == "company"
    assert stored["person"] is None
    assert stored["company"]["companyName"] == "Emballages Côté inc."
    assert stored["address"][0]["city"] == "Montréal"
    assert stored["contacts"]["email"] == [
        {"contact": "compta@cote.ca", "contactInfoTypeName": "Work"}
    ]
    assert stored["contacts"]["web"][0]["contact"] == "https://cote.ca"
    assert stored["vatNo"] == "123456789RT0001"
    assert stored["contactGroup"] == [{"name": "Clients ERP", "description": "synced"}]
    [folder] = stored["contactFolder"]
    assert folder["folderId"] == answer["folderId"]
    assert (folder["category"], folder["typeName"], folder["refId"]) == (
        CLIENT,
        "Client",
        "F-C000001",
    )


def test_filled_person_makes_a_person_contact_otherwise_company(atollon: httpx.Client) -> None:
    person = {
        "person": {"firstName": "Marie", "lastName": "Tremblay", "prefixTitle": "Dr."},
        "externalId": ext("P1", "hr"),
    }
    ok(contact_post(atollon, person))
    blank_person = {"person": {"firstName": "", "lastName": ""}, **company("Gagnon ltée")}
    ok(contact_post(atollon, blank_person))
    kinds = {c["name"]: c["contactType"] for c in records(atollon, "contacts")}
    assert kinds == {"Tremblay Marie": "person", "Gagnon ltée": "company"}
    [stored] = [c for c in records(atollon, "contacts") if c["contactType"] == "person"]
    assert stored["person"]["prefixTitle"] == "Dr."
    assert stored["company"] is None


def test_a_contact_needs_a_company_name_or_a_surname(atollon: httpx.Client) -> None:
    assert "companyName" in failed(contact_post(atollon, {"externalId": ext("X")}))
    first_name_only = {"person": {"firstName": "Marie"}, "externalId": ext("X")}
    assert "lastName" in failed(contact_post(atollon, first_name_only))
    assert records(atollon, "contacts") == []


def test_person_with_company_is_its_representative(atollon: httpx.Client) -> None:
    body = {
        "person": {"firstName": "Luc", "lastName": "Roy"},
        "company": {"companyName": "Roy inc."},
    }
    ok(contact_post(atollon, body))
    by_name = {c["name"]: c for c in records(atollon, "contacts")}
    assert by_name["Roy inc."]["contactType"] == "company"
    [employer] = by_name["Roy Luc"]["person"]["companyPersonRelation"]
    assert employer["companyId"] == by_name["Roy inc."]["contactId"]


def test_update_through_external_id_changes_the_name(atollon: httpx.Client) -> None:
    first = ok(contact_post(atollon, company("Old name", "C1", vatNo="1")))
    second = ok(contact_post(atollon, company("New name", "C1")))
    assert second["contactId"] == first["contactId"]
    [stored] = records(atollon, "contacts")
    assert stored["company"]["companyName"] == "New name"
    assert stored["vatNo"] == "1", "fields absent from the update are kept"
    # the name index follows the rename
    assert ok(contact_post(atollon, company("New name")))["contactId"] == first["contactId"]
    renamed_away = ok(contact_post(atollon, company("Old name")))
    assert renamed_away["contactId"] != first["contactId"]


def test_company_name_matches_only_contacts_without_an_id_of_that_system(
    atollon: httpx.Client,
) -> None:
    manual = ok(contact_post(atollon, company("Fortin & Fils")))
    adopted = ok(contact_post(atollon, company("fortin  &  FILS", "C1")))
    assert adopted["contactId"] == manual["contactId"], "name match, ignoring case and blanks"
    other = ok(contact_post(atollon, company("Fortin & Fils", "C2")))
    assert other["contactId"] != manual["contactId"], "C1 already holds an onlineerp id"
    assert len(records(atollon, "contacts")) == 2


def test_external_id_is_unique_per_system(atollon: httpx.Client) -> None:
    a = ok(contact_post(atollon, company("A", "C1")))
    b = ok(contact_post(atollon, {**company("B"), "externalId": ext("42", "hipe")}))
    both = {**company("A"), "externalId": [*ext("C1"), *ext("42", "hipe")]}
    assert failed(contact_post(atollon, both)).startswith("externalId conflict")
    same_id_other_system = ok(contact_post(atollon, {**company("C"), "externalId": ext("C1", "x")}))
    assert same_id_other_system["contactId"] not in {a["contactId"], b["contactId"]}
    twice = {**company("D"), "externalId": [*ext("1"), *ext("2")]}
    assert "twice" in failed(contact_post(atollon, twice))
    assert len(records(atollon, "contacts")) == 3


def test_company_relation_to_a_missing_company_fails_then_succeeds(atollon: httpx.Client) -> None:
    child = company(
        "Filiale",
        "C2",
        company={
            "companyName": "Filiale",
            "companyCompanyRelation": [
                {"companyExternalId": ext("C1"), "relationType": "Mother company"}
            ],
        },
        contactGroup=[{"name": "NewGroup"}],
        contactFolder=[{"category": CLIENT}],
    )
    message = failed(contact_post(atollon, child))
    assert message.startswith("Related contact not found")
    assert "onlineerp/C1" in message
    assert records(atollon, "contacts") == [], "a FAIL leaves nothing behind"

    parent = ok(contact_post(atollon, company("Mère", "C1")))
    ok(contact_post(atollon, child))
    [stored] = [c for c in records(atollon, "contacts") if c["name"] == "Filiale"]
    [relation] = stored["company"]["companyCompanyRelation"]
    assert relation["companyId"] == parent["contactId"]
    assert relation["relationType"] == "Mother company"


def test_person_relation_by_external_id_or_by_company_name(atollon: httpx.Client) -> None:
    def person(relation: dict[str, Any]) -> dict[str, Any]:
        return {
            "person": {
                "firstName": "Ana",
                "lastName": "Lévesque",
                "companyPersonRelation": [relation],
            },
            "externalId": ext("P1", "crm"),
        }

    missing = person({"companyExternalId": ext("C9")})
    assert failed(contact_post(atollon, missing)).startswith("Related contact not found")
    assert records(atollon, "contacts") == []

    employer = ok(contact_post(atollon, company("Employeur", "C9")))
    ok(contact_post(atollon, person({"companyExternalId": ext("C9"), "positionDesc": "CFO"})))
    stored = {c["name"]: c for c in records(atollon, "contacts")}
    [relation] = stored["Lévesque Ana"]["person"]["companyPersonRelation"]
    assert (relation["companyId"], relation["positionDesc"]) == (employer["contactId"], "CFO")

    ok(contact_post(atollon, person({"companyName": "Nouvelle Cie"})))
    stored = {c["name"]: c for c in records(atollon, "contacts")}
    assert stored["Nouvelle Cie"]["contactType"] == "company", "created by name"
    [relation] = stored["Lévesque Ana"]["person"]["companyPersonRelation"]
    assert relation["companyId"] == stored["Nouvelle Cie"]["contactId"]


def test_person_employer_by_name_when_its_external_id_is_unknown(atollon: httpx.Client) -> None:
    """The page: "if company oldId is found …, make binding, otherwise if companyName is
    filled-in …, company based on it's name or create new company contact"."""

    def person(last: str, relation: dict[str, Any]) -> dict[str, Any]:
        return {
            "person": {"firstName": "A", "lastName": last, "companyPersonRelation": [relation]},
            "externalId": ext(f"P-{last}", "crm"),
        }

    existing = ok(contact_post(atollon, company("Acier Ltée")))
    ok(
        contact_post(
            atollon, person("Roy", {"companyExternalId": ext("C7"), "companyName": "acier  ltée"})
        )
    )
    ok(
        contact_post(
            atollon, person("Gagné", {"companyExternalId": ext("C8"), "companyName": "Bois inc."})
        )
    )
    stored = {c["name"]: c for c in records(atollon, "contacts")}
    assert set(stored) == {"Acier Ltée", "Bois inc.", "Roy A", "Gagné A"}
    [roy] = stored["Roy A"]["person"]["companyPersonRelation"]
    assert (roy["companyId"], roy["companyExternalId"]) == (existing["contactId"], ext("C7"))
    [gagne] = stored["Gagné A"]["person"]["companyPersonRelation"]
    assert gagne["companyId"] == stored["Bois inc."]["contactId"], "created by name"
    assert stored["Bois inc."]["externalId"] == [], "the unknown id is not given to it"
    # the company later synced with that id and name is the one created by name
    ok(contact_post(atollon, company("Bois inc.", "C8")))
    assert len(records(atollon, "contacts")) == 4


def test_company_match_by_name_alone_merges_two_external_ids() -> None:
    """``company_match="name"``: the page's "company name matches some record in DB" read
    alone: a company whose external id is unknown is any company of that name."""
    with (
        RunningSandbox(simulators={"atollon": AtollonSimulator(company_match="name")}) as running,
        httpx.Client(
            base_url=running.endpoints["atollon"].url, params={"instance": "sandbox"}, timeout=10
        ) as client,
    ):
        first = ok(contact_post(client, company("Acme", "C1")))
        second = ok(contact_post(client, company("ACME", "C2")))
        assert second["contactId"] == first["contactId"]
        assert second["contact"]["externalId"] == ext("C1") + ext("C2")
        again = ok(contact_post(client, company("Acme", "C1")))
        assert again["contactId"] == first["contactId"], "either id finds it"
        assert len(records(client, "contacts")) == 1


def test_person_is_matched_by_email_or_mobile(atollon: httpx.Client) -> None:
    def person(first: str, **contacts: Any) -> dict[str, Any]:
        return {"person": {"firstName": first, "lastName": "Simard"}, "contacts": contacts}

    first = ok(contact_post(atollon, person("Jo", email=[{"contact": "jo@x.ca"}])))
    again = ok(contact_post(atollon, person("Joanne", email=[{"contact": "JO@x.ca"}])))
    assert again["contactId"] == first["contactId"]
    by_mobile = ok(contact_post(atollon, person("Al", mobile=[{"contact": "+1 (514) 555-0000"}])))
    same = ok(contact_post(atollon, person("Albert", mobile=[{"contact": "+1 514 555 0000"}])))
    assert same["contactId"] == by_mobile["contactId"]
    nothing = ok(contact_post(atollon, person("Jo")))
    assert nothing["contactId"] not in {first["contactId"], by_mobile["contactId"]}
    assert len(records(atollon, "contacts")) == 3


def test_contact_type_cannot_change_through_its_external_id(atollon: httpx.Client) -> None:
    ok(contact_post(atollon, company("A", "C1")))
    person = {"person": {"lastName": "Roy"}, "externalId": ext("C1")}
    assert failed(contact_post(atollon, person)).startswith("Contact type mismatch")


def test_contact_groups_are_found_or_created_by_name(atollon: httpx.Client) -> None:
    ok(
        contact_post(
            atollon, company("A", "C1", contactGroup=[{"name": "VIP", "description": "d"}])
        )
    )
    ok(contact_post(atollon, company("B", "C2", contactGroup=[{"name": "vip"}])))
    groups = {c["name"]: c["contactGroup"] for c in records(atollon, "contacts")}
    assert groups["A"] == groups["B"] == [{"name": "VIP", "description": "d"}]
    # "Assign the contact to the group": a later list adds its groups, never removes one;
    # an absent or empty list changes nothing
    ok(contact_post(atollon, company("A", "C1", contactGroup=[{"name": "Inactive"}])))
    ok(contact_post(atollon, company("B", "C2")))
    groups = {c["name"]: c["contactGroup"] for c in records(atollon, "contacts")}
    assert groups["A"] == [
        {"name": "VIP", "description": "d"},
        {"name": "Inactive", "description": None},
    ]
    assert groups["B"] == [{"name": "VIP", "description": "d"}], "absent list: unchanged"
    ok(contact_post(atollon, company("A", "C1", contactGroup=[])))
    ok(contact_post(atollon, company("A", "C1", contactGroup=[{"name": "inactive"}])))
    assert next(c for c in records(atollon, "contacts") if c["name"] == "A")["contactGroup"] == [
        {"name": "VIP", "description": "d"},
        {"name": "Inactive", "description": None},
    ], "an empty list removes nothing; a group already assigned is not assigned twice"
    assert "name is required" in failed(contact_post(atollon, company("C", contactGroup=[{}])))


def test_contact_folders_by_documented_category(atollon: httpx.Client) -> None:
    folders = [{"category": c} for c in (CLIENT, SUPPLIER, LEAD, PARTNER)]
    first = ok(contact_post(atollon, company("A", "C1", contactFolder=folders)))
    [stored] = records(atollon, "contacts")
    assert [f["typeName"] for f in stored["contactFolder"]] == [
        "Client",
        "Supplier",
        "Lead",
        "Partner",
    ]
    assert first["folderId"] == stored["contactFolder"][0]["folderId"]
    again = ok(contact_post(atollon, company("A", "C1", contactFolder=[{"category": CLIENT}])))
    assert again["folderId"] == first["folderId"], "an existing folder is reused"
    assert len(records(atollon, "contacts")[0]["contactFolder"]) == 4

    no_category = ok(contact_post(atollon, company("B", "C2", contactFolder=[{"category": ""}])))
    assert no_category["folderId"] is None
    assert len(records(atollon, "contacts")) == 2


def test_any_folder_category_is_accepted_and_found_again(atollon: httpx.Client) -> None:
    """The page lists "some useful" categories; its own examples use ``anyFolderCategory``."""
    for category, type_name in (
        ("anyFolderCategory", "anyFolderCategory"),
        ("com.example.fpatypecategory.customer", "customer"),
    ):
        body = company("C", "C3", contactFolder=[{"category": category}])
        first = ok(contact_post(atollon, body))
        again = ok(contact_post(atollon, body))
        assert again["folderId"] == first["folderId"] is not None, "created once, then found"
        folder = next(
            f
            for f in records(atollon, "contacts")[0]["contactFolder"]
            if f["folderId"] == first["folderId"]
        )
        assert (folder["category"], folder["typeName"]) == (category, type_name)
    [stored] = records(atollon, "contacts")
    assert len(stored["contactFolder"]) == 2
    project = {
        "project": {"name": "P", "externalId": ext("PRJ1")},
        "folder": {"category": "anyFolderCategory"},
        "contact": {"externalId": ext("C3")},
    }
    made = ok(atollon.post("/crab/crawler/project", json=project))
    assert made["folderId"] == stored["contactFolder"][0]["folderId"], "the same folder"


def test_parent_folder_refers_to_another_contacts_folder(atollon: httpx.Client) -> None:
    parent = ok(contact_post(atollon, company("Mère", "C1", contactFolder=[{"category": CLIENT}])))
    child_folder = {
        "category": CLIENT,
        "parentFolder": {"category": CLIENT, "contactExternalId": ext("C1")},
        "responsibleUser": [
            {"userName": "admin@sandbox", "userRoleName": "Owner", "primary": True}
        ],
    }
    ok(contact_post(atollon, company("Fille", "C2", contactFolder=[child_folder])))
    stored = {c["name"]: c for c in records(atollon, "contacts")}
    [folder] = stored["Fille"]["contactFolder"]
    assert folder["parentFolderId"] == parent["folderId"]
    assert folder["responsibleUser"][0]["userName"] == "admin@sandbox"
    orphan = {**child_folder, "parentFolder": {"category": CLIENT, "contactExternalId": ext("C7")}}
    message = failed(contact_post(atollon, company("Autre", "C3", contactFolder=[orphan])))
    assert message.startswith("Related contact not found")
