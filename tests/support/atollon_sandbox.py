"""Builders for the Atollon sandbox's tests: request bodies, answer readers and seeded
billing, for a client of the crawler driven over real HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx

CLIENT = "com.atollon.project.fpatypecategory.client"


SUPPLIER = "com.atollon.project.fpatypecategory.supplier"


LEAD = "com.atollon.leads.fpatypecategory.lead"


PARTNER = "com.atollon.project.fpatypecategory.partner"


ERP = "onlineerp"


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


def product(name: str, ident: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **extra}
    if ident is not None:
        body["externalId"] = ext(ident)
    return body


def product_post(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/crab/crawler/product", json=body)


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
