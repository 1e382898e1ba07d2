"""The Atollon crawler import service simulator, driven over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.atollon import AtollonSimulator
from simulators.atollon._orders import page_example
from simulators.server import RunningSandbox

CLIENT = "com.atollon.project.fpatypecategory.client"
SUPPLIER = "com.atollon.project.fpatypecategory.supplier"
LEAD = "com.atollon.leads.fpatypecategory.lead"
PARTNER = "com.atollon.project.fpatypecategory.partner"
ERP = "onlineerp"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as sandbox:
        yield sandbox


@pytest.fixture
def atollon(running: RunningSandbox) -> Iterator[httpx.Client]:
    """A client of the crawler with ``instance=sandbox``, on an empty simulator."""
    with httpx.Client(
        base_url=running.endpoints["atollon"].url, params={"instance": "sandbox"}, timeout=10
    ) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


def ext(ident: str, system: str = ERP) -> list[dict[str, str]]:
    return [{"system": system, "id": ident}]


def company(name: str, ident: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"company": {"companyName": name}, **extra}
    if ident is not None:
        body["externalId"] = ext(ident)
    return body


def ok(answer: httpx.Response) -> dict[str, Any]:
    """The body of a SUCCESS answer (HTTP 200 and result SUCCESS)."""
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["result"] == "SUCCESS", body
    return body


def failed(answer: httpx.Response, status: int = 200) -> str:
    """The message of a FAIL answer with ``status`` (200 for business failures)."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["result"] == "FAIL", body
    assert set(body) == {"result", "message"}
    return str(body["message"])


def records(client: httpx.Client, entity: str) -> list[dict[str, Any]]:
    answer = client.get(f"/_sandbox/records/{entity}")
    assert answer.status_code == 200
    found: list[dict[str, Any]] = answer.json()
    return found


def contact_post(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/crab/crawler/contact", json=body)


# ------------------------------------------------------------------ the wire


def test_unknown_or_missing_instance_is_403_fail(atollon: httpx.Client) -> None:
    url = "/crab/crawler/contact"
    wrong = atollon.post(url, params={"instance": "production"}, json=company("A"))
    assert failed(wrong, 403) == "Unknown instance"
    with httpx.Client(base_url=str(atollon.base_url)) as bare:
        assert failed(bare.get("/crab/crawler/invoice_status"), 403) == "Unknown instance"
    assert records(atollon, "contacts") == []


def test_malformed_json_is_400_fail(atollon: httpx.Client) -> None:
    bad = atollon.post("/crab/crawler/contact", content=b"{not json")
    assert failed(bad, 400).startswith("Malformed JSON")
    empty = atollon.post("/crab/crawler/product", content=b"")
    assert failed(empty, 400).startswith("Malformed JSON")


def test_readable_but_invalid_body_is_a_business_failure_with_200(atollon: httpx.Client) -> None:
    assert "must be an object" in failed(contact_post(atollon, [1, 2]))
    assert "must be a list" in failed(contact_post(atollon, company("A", address={"city": "X"})))


def test_unknown_route_and_method_answer_in_fail_shape(atollon: httpx.Client) -> None:
    assert failed(atollon.post("/crab/crawler/nope", json={}), 404)
    assert failed(atollon.delete("/crab/crawler/contact"), 405)


def test_injected_vendor_code_answers_fail_with_200_and_changes_nothing(
    atollon: httpx.Client,
) -> None:
    rule = {"vendor_code": "Database locked", "path": "/crab/crawler/contact", "count": 1}
    assert atollon.post("/_sandbox/faults", json=rule).status_code == 200
    assert failed(contact_post(atollon, company("A", "C1"))) == "Database locked"
    assert records(atollon, "contacts") == []
    ok(contact_post(atollon, company("A", "C1")))


def test_injected_http_status_keeps_the_fail_shape(atollon: httpx.Client) -> None:
    atollon.post("/_sandbox/faults", json={"statuses": [503], "count": 1})
    assert failed(atollon.get("/crab/crawler/invoice_status"), 503)


# -------------------------------------------------------------- contacts


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


# -------------------------------------------------------------- products


def product(name: str, ident: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **extra}
    if ident is not None:
        body["externalId"] = ext(ident)
    return body


def product_post(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/crab/crawler/product", json=body)


def test_product_create_success_body_and_defaults(atollon: httpx.Client) -> None:
    body = product(
        "Boîte carton",
        "P00001",
        refId="P00001",
        unitPrice=12.5,
        unitPriceCurrencyName="CAD",
        typeName="Product",
        unitsName="ks",
        vatRateName="14.975 %",
    )
    answer = ok(product_post(atollon, body))
    assert answer["productName"] == "Boîte carton"
    assert answer["productRefid"] == "P00001"
    assert answer["product"] == {"externalId": [{"system": ERP, "id": "P00001"}]}
    [stored] = records(atollon, "products")
    assert stored["productId"] == answer["productId"]
    assert stored["unitPrice"] == 12.5
    assert stored["statusName"] == "Active"
    assert stored["openingBalanceDate"], "defaults to now"


def test_product_is_found_by_external_id_and_updated(atollon: httpx.Client) -> None:
    first = ok(product_post(atollon, product("Ruban", "P1", refId="P1", unitPrice=1)))
    second = ok(
        product_post(atollon, product("Ruban 48 mm", "P1", unitPrice=2, statusName="Inactive"))
    )
    assert second["productId"] == first["productId"]
    [stored] = records(atollon, "products")
    assert (stored["name"], stored["unitPrice"], stored["statusName"]) == (
        "Ruban 48 mm",
        2.0,
        "Inactive",
    )
    assert stored["refId"] == "P1", "absent fields are kept"


def test_product_is_found_by_code_and_name(atollon: httpx.Client) -> None:
    manual = ok(product_post(atollon, product("Film", refId="F-1", openingBalanceQty=5)))
    matched = ok(product_post(atollon, product("Film", "P9", refId="F-1", openingBalanceQty=7)))
    assert matched["productId"] == manual["productId"]
    other_code = ok(product_post(atollon, product("Film", refId="F-2")))
    assert other_code["productId"] != manual["productId"]
    [first, _] = records(atollon, "products")
    assert first["openingBalanceQty"] == 7.0
    assert first["externalId"] == [{"system": ERP, "id": "P9"}]


def test_product_failures(atollon: httpx.Client) -> None:
    assert failed(product_post(atollon, {"refId": "X"})) == "Product name is required"
    bad_status = product("A", statusName="Archived")
    assert failed(product_post(atollon, bad_status)).startswith("Unknown product status")
    assert "number" in failed(product_post(atollon, product("A", unitPrice="cheap")))
    assert records(atollon, "products") == []


# --------------------------------------------------------------- billing


def seeded(client: httpx.Client, activities: int = 4) -> list[dict[str, Any]]:
    answer = client.post("/_sandbox/seed", json={"customers": 30, "activities": activities})
    assert answer.status_code == 200
    counts = answer.json()["seeded"]
    assert counts["billing"] == activities
    billing = records(client, "billing")
    assert counts["billingItems"] == sum(len(a["billingItems"]) for a in billing)
    return billing


def to_be_invoiced(client: httpx.Client) -> list[dict[str, Any]]:
    answer = client.get("/crab/crawler/billing", params={"billingStatus": "ToBeInvoiced"})
    assert answer.status_code == 200
    body: list[dict[str, Any]] = answer.json()
    return body


def put_billing(client: httpx.Client, body: Any) -> httpx.Response:
    return client.put("/crab/crawler/billing", json=body)


def test_seed_loads_billing_in_the_documented_shape(atollon: httpx.Client) -> None:
    seeded(atollon)
    listed = to_be_invoiced(atollon)
    assert len(listed) == 4
    for activity in listed:
        assert set(activity) == {
            "activity",
            "project",
            "folder",
            "contact",
            "customer",
            "customerContact",
            "billingItems",
            "documents",
        }
        assert activity["contact"]["externalId"][0]["system"] == ERP
        assert activity["project"]["id"]
        assert activity["project"]["statusName"]
        for item in activity["billingItems"]:
            assert item["billingStatus"] == "ToBeInvoiced"
            assert item["productExternalId"][0]["system"] == ERP
            assert {"id", "quantity", "unitPrice", "currency", "billingType"} <= set(item)


def test_billing_update_is_idempotent_and_changes_activity_status_last(
    atollon: httpx.Client,
) -> None:
    billing = seeded(atollon)
    activity = next(a for a in billing if len(a["billingItems"]) >= 2)
    activity_id = activity["activity"]["id"]
    first, *rest = (item["id"] for item in activity["billingItems"])

    def update(item_ids: list[str]) -> dict[str, Any]:
        return ok(
            put_billing(
                atollon,
                [
                    {
                        "activity": {"id": activity_id, "statusName": "Invoiced"},
                        "project": {"id": activity["project"]["id"], "statusName": "Billed"},
                        "billingItems": [{"id": i, "billingStatus": "Billed"} for i in item_ids],
                    }
                ],
            )
        )

    partial = update([first])["activities"][0]
    assert partial["activity"]["statusChanged"] is False, "items remain to be invoiced"
    assert partial["activity"]["remainingToBeInvoiced"] == len(rest)
    listed = {a["activity"]["id"]: a for a in to_be_invoiced(atollon)}
    assert first not in {i["id"] for i in listed[activity_id]["billingItems"]}
    assert listed[activity_id]["activity"]["statusName"] == "Completed"
    assert listed[activity_id]["project"]["statusName"] == "Billed"

    done = update([first, *rest])["activities"][0]
    assert done["activity"] == {
        "id": activity_id,
        "statusName": "Invoiced",
        "statusChanged": True,
        "remainingToBeInvoiced": 0,
    }
    assert activity_id not in {a["activity"]["id"] for a in to_be_invoiced(atollon)}

    replay = update([first, *rest])["activities"][0]
    assert replay["activity"]["statusName"] == "Invoiced", "setting the same status succeeds"
    [stored] = [a for a in records(atollon, "billing") if a["activity"]["id"] == activity_id]
    assert [i["billingStatus"] for i in stored["billingItems"]] == ["Billed"] * (1 + len(rest))
    assert stored["activity"]["statusName"] == "Invoiced"

    billed = atollon.get("/crab/crawler/billing", params={"billingStatus": "Billed"}).json()
    assert [a["activity"]["id"] for a in billed] == [activity_id]


def test_billing_update_with_an_unknown_item_fails_and_changes_nothing(
    atollon: httpx.Client,
) -> None:
    billing = seeded(atollon, activities=2)
    known = billing[0]["billingItems"][0]["id"]
    body = [
        {
            "billingItems": [
                {"id": known, "billingStatus": "Billed"},
                {"id": "404404", "billingStatus": "Billed"},
            ]
        }
    ]
    assert failed(put_billing(atollon, body)) == "Billing item not found: 404404"
    assert records(atollon, "billing") == billing, "all or nothing"
    wrong_activity = [
        {
            "activity": {"id": billing[1]["activity"]["id"]},
            "billingItems": body[0]["billingItems"][:1],
        }
    ]
    assert failed(put_billing(atollon, wrong_activity)) == f"Billing item not found: {known}"
    unknown_state = [{"billingItems": [{"id": known, "billingStatus": "Paid"}]}]
    assert failed(put_billing(atollon, unknown_state)).startswith("Unknown billing status")
    assert failed(put_billing(atollon, {"billingItems": []})).startswith("Invalid request")
    assert records(atollon, "billing") == billing


def test_every_documented_billing_state_is_accepted(atollon: httpx.Client) -> None:
    billing = seeded(atollon, activities=1)
    item = billing[0]["billingItems"][0]["id"]
    states = [
        "SalesItems",
        "Pending",
        "ForApproval",
        "ToBeInvoiced",
        "Billed",
        "ApprovedByClient",
        "Postponed",
        "Cancelled",
    ]
    for state in states:
        ok(put_billing(atollon, [{"billingItems": [{"id": item, "billingStatus": state}]}]))
        listed = atollon.get("/crab/crawler/billing", params={"billingStatus": state}).json()
        assert item in {i["id"] for a in listed for i in a["billingItems"]}
    unknown = atollon.get("/crab/crawler/billing", params={"billingStatus": "Invoiced"})
    assert failed(unknown).startswith("Unknown billing status")


def test_list_activity_and_update_activity(atollon: httpx.Client) -> None:
    billing = seeded(atollon, activities=10)
    listed = atollon.get("/crab/crawler/activity").json()
    assert [a["id"] for a in listed] == [a["activity"]["id"] for a in billing]
    first = billing[0]["activity"]
    assert {k: listed[0][k] for k in ("name", "refId", "customStateName", "created")} == {
        "name": first["name"],
        "refId": first["refId"],
        "customStateName": first["statusName"],
        "created": first["created"],
    }
    item = billing[0]["billingItems"][0]
    body = {
        "activity": {"id": first["id"], "statusName": "In Progress", "finalDate": "2026-12-31"},
        "billingItems": [
            {"id": item["id"], "quantity": 7.5, "vatValue": 21.0},
            {"id": "NEW-1", "name": "Déplacement", "quantity": 1, "unitPrice": 80.0},
        ],
    }
    assert ok(atollon.put("/crab/crawler/activity", json=body))["activityId"] == first["id"]
    after = next(a for a in records(atollon, "billing") if a["activity"]["id"] == first["id"])
    assert (after["activity"]["statusName"], after["activity"]["finalDate"]) == (
        "In Progress",
        "2026-12-31",
    )
    changed = next(i for i in after["billingItems"] if i["id"] == item["id"])
    assert changed == {**item, "quantity": 7.5, "vatValue": 21.0}
    added = next(i for i in after["billingItems"] if i["id"] == "NEW-1")
    assert (added["billingStatus"], added["quantity"], added["unitPrice"]) == (
        "ToBeInvoiced",
        1,
        80.0,
    )
    other_item = billing[1]["billingItems"][0]["id"]
    wrong = {"activity": {"id": first["id"]}, "billingItems": [{"id": other_item}]}
    assert failed(atollon.put("/crab/crawler/activity", json=wrong)) == (
        f"Billing item not found: {other_item}"
    )
    bad_state = {"activity": {"id": first["id"]}, "billingItems": [{"billingStatus": "Done"}]}
    assert failed(atollon.put("/crab/crawler/activity", json=bad_state)).startswith(
        "Unknown billing status"
    )
    missing = {"activity": {"id": "404"}}
    assert failed(atollon.put("/crab/crawler/activity", json=missing)) == "Activity not found: 404"


def test_activity_project_and_document_reads(atollon: httpx.Client) -> None:
    billing = seeded(atollon, activities=1)
    activity = billing[0]
    activity_id = activity["activity"]["id"]
    read = atollon.get("/crab/crawler/activity", params={"id": activity_id}).json()
    assert read["id"] == activity_id
    assert read["customer"]["contactExternalId"] == activity["contact"]["externalId"]
    assert "billingItems" not in read
    with_items = atollon.get(
        "/crab/crawler/activity", params={"id": activity_id, "billingStatus": "ToBeInvoiced"}
    ).json()
    assert len(with_items["billingItems"]) == len(activity["billingItems"])
    assert failed(atollon.get("/crab/crawler/activity", params={"id": "1"})).startswith(
        "Activity not found"
    )

    project = atollon.get("/crab/crawler/project", params={"id": activity["project"]["id"]}).json()
    assert project["project"]["name"] == activity["project"]["name"]
    assert project["contact"]["externalId"] == activity["contact"]["externalId"]

    [document] = activity["documents"]
    download = atollon.get("/crab/crawler/download_document", params={"docId": document["id"]})
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.content.startswith(b"%PDF-")
    assert document["name"] in download.headers["content-disposition"]
    missing = atollon.get("/crab/crawler/download_document", params={"docId": "999"})
    assert failed(missing) == "Document not found: 999"


# ------------------------------------------------- folders, projects, codes


def test_folder_project_and_tracking_code_need_a_known_contact(atollon: httpx.Client) -> None:
    folder_body = {
        "folder": {"refId": "F-9", "name": "Dossier", "typeName": "Klient"},
        "contact": {"externalId": ext("C1"), "company": {"name": "A"}},
        "form": {"segment": "B2B"},
    }
    assert failed(atollon.post("/crab/crawler/folder", json=folder_body)).startswith(
        "Contact not found"
    )
    contact = ok(contact_post(atollon, company("A", "C1")))
    folder = ok(atollon.post("/crab/crawler/folder", json=folder_body))
    assert folder["contactId"] == contact["contactId"]
    sample = atollon.get("/crab/crawler/folder_sample", params={"id": folder["folderId"]}).json()
    assert sample["folder"] == {"refId": "F-9", "name": "Dossier", "typeName": "Client"}
    assert sample["form"] == {"segment": "B2B"}

    ok(product_post(atollon, product("Tracteur", "P1", refId="T-1")))
    project_body = {
        "project": {"name": "Installation", "statusName": "Open", "externalId": ext("PRJ1")},
        "folder": {"category": CLIENT},
        "contact": {"externalId": ext("C1")},
        "technologyItems": [{"id": "T1", "name": "Unit", "externalId": ext("P1"), "quantity": 1}],
    }
    created = ok(atollon.post("/crab/crawler/project", json=project_body))
    assert created["folderId"] == folder["folderId"]
    again = ok(atollon.post("/crab/crawler/project", json=project_body))
    assert again["projectId"] == created["projectId"], "same external id: same project"
    missing_product = {**project_body, "technologyItems": [{"externalId": ext("P404")}]}
    assert failed(atollon.post("/crab/crawler/project", json=missing_product)).startswith(
        "Product not found"
    )
    no_contact = {**project_body, "contact": {"externalId": ext("C404")}}
    assert failed(atollon.post("/crab/crawler/project", json=no_contact)).startswith(
        "Contact not found"
    )
    status = {"project": {"id": created["projectId"], "statusName": "Closed"}}
    ok(atollon.put("/crab/crawler/project", json=status))
    read = atollon.get("/crab/crawler/project", params={"id": created["projectId"]}).json()
    assert read["project"]["statusName"] == "Closed"
    assert read["project"]["externalId"] == [{"externalSystem": ERP, "externalId": "PRJ1"}]
    [item] = read["project"]["technologyItems"]
    assert (item["id"], item["type"], item["productRefid"]) == ("T1", 3, "T-1")
    gone = {"project": {"id": "1", "statusName": "Closed"}}
    assert failed(atollon.put("/crab/crawler/project", json=gone)).startswith("Project not found")

    code = {
        "code": "ABC",
        "userName": "admin@sandbox",
        "trackingCodeTypeName": "Dealer",
        "contactFolder": {"category": CLIENT, "contact": {"externalId": ext("C1")}},
    }
    tracked = ok(atollon.post("/crab/crawler/tracking_code", json=code))
    assert tracked["folderId"] == folder["folderId"]
    assert records(atollon, "tracking_codes")[0]["code"] == "ABC"
    wrong_type = {**code, "trackingCodeTypeName": "Reseller"}
    assert failed(atollon.post("/crab/crawler/tracking_code", json=wrong_type)).startswith(
        "Unknown tracking code type"
    )


# -------------------------------------------------------------- invoices


def test_invoice_status_list_is_the_documented_one(atollon: httpx.Client) -> None:
    answer = atollon.get("/crab/crawler/invoice_status")
    assert answer.status_code == 200
    states = answer.json()
    assert [(s["stateId"], s["name"], s["priority"]) for s in states] == [
        ("89342000", "Issued", 99),
        ("89342001", "Pending", 50),
        ("89342002", "Paid", 10),
        # the sandbox instance's own (docs/sandbox-conventions.md): a state for a cancelled
        # invoice, and the state of the page's own Sales Order example
        ("89342003", "Cancelled", 5),
        ("132606101", "Schv\u00e1leno", 60),
    ]
    assert set(states[0]) == {"stateId", "name", "priority", "enabled", "acl", "treeHandle"}


def test_invoice_issued_create_then_update_by_id(atollon: httpx.Client) -> None:
    invoice = {
        "invoiceNumber": "232410001",
        "issuedDate": "2026-10-01",
        "stateName": "Issued",
        "customer": {"customerName": "AGRO", "customerExternalId": ext("C1")},
        "rows": [{"description": "Tracteur", "value": {"netTotal": 650000, "currency": "CAD"}}],
        "totals": {"currency": "CAD", "total": 650000},
    }
    created = ok(atollon.post("/crab/crawler/invoice-issued", json=invoice))
    invoice_id = created["invoiceId"]
    updated = ok(
        atollon.put(
            "/crab/crawler/invoice-issued", params={"id": invoice_id}, json={"stateName": "Paid"}
        )
    )
    assert updated["invoiceId"] == invoice_id
    [stored] = records(atollon, "invoices")
    assert stored["id"] == invoice_id
    assert stored["stateName"] == "Paid"
    assert stored["rows"] == invoice["rows"]
    missing = atollon.put("/crab/crawler/invoice-issued", params={"id": "1"}, json={})
    assert failed(missing) == "Invoice not found: 1"
    bad_state = {**invoice, "stateName": "Lost"}
    answer = atollon.post("/crab/crawler/invoice-issued", json=bad_state)
    assert failed(answer).startswith("Unknown invoice status")
    assert len(records(atollon, "invoices")) == 1


#: the page's Sales Order example ("Create Invoice: Structure is the same as Sales Order
#: example above"), as printed, less the repeated null attribute and custom fields
DOC_SALES_ORDER: dict[str, Any] = {
    "created": "2024-04-26T00:00:00",
    "createdBy": 131841101,
    "createdByName": "admin@cime",
    "externalNumber": None,
    "externalReferenceNumber": None,
    "id": 133683101,
    "internalDescription": None,
    "invoiceNumber": "232410001",
    "issuedDate": "2024-04-26",
    "journal": "132877101",
    "journalName": "Sales Order",
    "modified": "2024-04-26T00:00:00",
    "state": 132606101,
    "stateName": "Schv\u00e1leno",
    "taxationDate": "2024-04-26",
    "treeHandle": 131252101,
    "dateTransaction": "26.04.2024",
    "customId": None,
    "supplier": {"provider": 132419101, "providerName": "CIME, s.r.o.", "userName": "admin@cime"},
    "customer": {
        "customer": 133349101,
        "customerContact": 133634101,
        "customerContactName": "Nov\u00e1k Jind\u0159ich",
        "customerName": "AGRO s.r.o.",
        "customerRegId": "0",
        "customerVATId": "0",
        "customerExternalId": [{"system": "onlineerp", "id": "C1"}],
        "contactExternalId": [{"system": "onlineerp", "id": "C1"}],
    },
    "shipTo": {"shipTo": None, "shipToCustomer": True},
    "rows": [
        {
            "account": 132855101,
            "accountCode": "602000",
            "description": "Nejv\u00edc vychytan\u00fd popis \nk traktoru Lindner Geotrac.",
            "id": 133685101,
            "orderIndex": 0,
            "value": {
                "netTotal": 650000,
                "currency": "CZK",
                "unitPrice": 650000,
                "unitQuantity": 1,
                "VAT": "DPH 21%",
                "VATPercent": 21,
                "VATValue": 136500,
            },
            "product": {
                "catalogPrice": 800000,
                "item": 133445101,
                "itemName": "Lindner Geotrac",
                "productExternalId": [{"system": "onlineerp", "id": "P1"}],
            },
            "context": {"folder": 133349101, "project": 133621101, "activityExternalId": []},
            "SHARES": [{"id": 133708101, "isRemaining": 1, "percentage": 100, "total": 650000}],
        }
    ],
    "totals": {"currency": "CZK", "currencyRate": 1, "total": 786500, "totalWithVAT": 786500},
    "payment": {"dueDate": "10.05.2024", "paymentStatus": 8, "toBePaid": 786500},
    "context": {"folder": 133349101, "folderName": "AGRO s.r.o.", "folderRefId": "UF1"},
    "documents": [],
    "texts": {"description": None, "periodFrom": "2024-04-26", "periodTo": None},
}


def test_the_pages_own_sales_order_example_is_accepted_as_an_invoice(
    atollon: httpx.Client,
) -> None:
    created = ok(atollon.post("/crab/crawler/invoice-issued", json=DOC_SALES_ORDER))
    assert created["invoiceNumber"] == "232410001"
    stored = atollon.get("/crab/crawler/invoice-issued", params={"id": created["invoiceId"]})
    shown = stored.json()
    assert shown["id"] == created["invoiceId"] != DOC_SALES_ORDER["id"], "the id is Atollon's"
    assert {k: v for k, v in shown.items() if k not in ("id", "created", "modified")} == {
        k: v for k, v in DOC_SALES_ORDER.items() if k not in ("id", "created", "modified")
    }


def test_the_pages_whole_sales_order_example_is_accepted_as_an_invoice(
    atollon: httpx.Client,
) -> None:
    """The example as printed, every null attribute and custom field included."""
    example = page_example()
    assert example["rows"][0]["attributes"]["attrib9_id"] is None
    created = ok(atollon.post("/crab/crawler/invoice-issued", json=example))
    shown = atollon.get("/crab/crawler/invoice-issued", params={"id": created["invoiceId"]}).json()
    assert {k: v for k, v in shown.items() if k not in ("id", "created", "modified")} == {
        k: v for k, v in example.items() if k not in ("id", "created", "modified")
    }


def test_order_received_serves_the_pages_example_and_entered_orders(
    atollon: httpx.Client,
) -> None:
    url = "/crab/crawler/order-received"
    answer = atollon.get(url, params={"id": "133683101"})
    assert answer.status_code == 200
    assert answer.json() == page_example(), "the page's answer, as printed"
    assert failed(atollon.get(url, params={"id": "1"})) == "Order not found: 1"
    assert failed(atollon.get(url)) == "Invalid request: id is required"
    assert failed(atollon.get(url, params={"id": "133683101", "instance": "x"}), 403)

    order = {"invoiceNumber": "SO-2", "customer": {"customerExternalId": ext("C1")}, "rows": []}
    entered = atollon.post("/_sandbox/orders", json=order)
    assert entered.status_code == 201
    read = atollon.get(url, params={"id": entered.json()["id"]}).json()
    assert (read["invoiceNumber"], read["journalName"], read["customer"]) == (
        "SO-2",
        "Sales Order",
        order["customer"],
    )
    assert [o["invoiceNumber"] for o in records(atollon, "orders")] == ["232410001", "SO-2"]
    atollon.post("/_sandbox/reset")
    assert [o["id"] for o in records(atollon, "orders")] == [133683101]


def test_invoices_are_read_by_id_by_number_and_page_by_page(atollon: httpx.Client) -> None:
    """``GET invoice-issued`` is a sandbox convention (the page documents no read)."""
    ids = []
    for index in range(5):
        body = {"invoiceNumber": f"N{index % 4}", "rows": [], "totals": {"total": index}}
        ids.append(ok(atollon.post("/crab/crawler/invoice-issued", json=body))["invoiceId"])
    url = "/crab/crawler/invoice-issued"
    by_number = atollon.get(url, params={"invoiceNumber": "N0"}).json()
    assert [(i["id"], i["totals"]["total"]) for i in by_number] == [(ids[0], 0), (ids[4], 4)]
    assert atollon.get(url, params={"invoiceNumber": "N9"}).json() == []
    one = atollon.get(url, params={"id": ids[2]}).json()
    assert (one["invoiceNumber"], one["stateName"], one["state"]) == ("N2", "Issued", 89342000)
    assert failed(atollon.get(url, params={"id": "404"})) == "Invoice not found: 404"
    pages = [atollon.get(url, params={"offset": o, "limit": 2}).json() for o in (0, 2, 4)]
    assert [[i["id"] for i in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:]]
    assert failed(atollon.get(url, params={"limit": "x"})).endswith("must be a whole number")


# -------------------------------------------------------- control surface


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


# ------------------------------------------------- updates: what is sent is what is stored


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


def test_a_product_update_empties_a_price_sent_null_and_a_text_sent_empty(
    atollon: httpx.Client,
) -> None:
    ok(product_post(atollon, product("Ruban", "P1", unitPrice=2.5, unitPriceCurrencyName="CAD")))
    ok(product_post(atollon, product("Ruban", "P1")))
    (kept,) = records(atollon, "products")
    assert (kept["unitPrice"], kept["unitPriceCurrencyName"]) == (2.5, "CAD")
    ok(product_post(atollon, product("Ruban", "P1", unitPrice=None, unitPriceCurrencyName="")))
    (emptied,) = records(atollon, "products")
    assert (emptied["unitPrice"], emptied["unitPriceCurrencyName"]) == (None, None)


# ------------------------------------------- the read of contacts and products (undocumented)


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


def test_products_are_listed_a_page_at_a_time(atollon: httpx.Client) -> None:
    for number in range(3):
        ok(product_post(atollon, product(f"Product {number}", f"P{number}")))
    first = atollon.get("/crab/crawler/product", params={"page": 1, "limit": 2}).json()
    second = atollon.get("/crab/crawler/product", params={"page": 2, "limit": 2}).json()
    assert [p["name"] for p in first + second] == ["Product 0", "Product 1", "Product 2"]
    assert first[0] == records(atollon, "products")[0]


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
