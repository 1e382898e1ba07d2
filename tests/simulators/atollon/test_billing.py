"""The Atollon sandbox's billing and work records, driven over real HTTP: the documented
billing shape, idempotent updates, activities, projects, documents and tracking codes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.atollon_sandbox import (
    CLIENT,
    ERP,
    company,
    contact_post,
    ext,
    failed,
    ok,
    product,
    product_post,
    put_billing,
    records,
    seeded,
    to_be_invoiced,
)


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
