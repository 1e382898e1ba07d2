"""The Atollon sandbox's products, driven over real HTTP: created with defaults, found by
external id, code or name, updated, listed a page at a time."""

from __future__ import annotations

import httpx

from tests.support.atollon_sandbox import ERP, failed, ok, product, product_post, records


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


def test_products_are_listed_a_page_at_a_time(atollon: httpx.Client) -> None:
    for number in range(3):
        ok(product_post(atollon, product(f"Product {number}", f"P{number}")))
    first = atollon.get("/crab/crawler/product", params={"page": 1, "limit": 2}).json()
    second = atollon.get("/crab/crawler/product", params={"page": 2, "limit": 2}).json()
    assert [p["name"] for p in first + second] == ["Product 0", "Product 1", "Product 2"]
    assert first[0] == records(atollon, "products")[0]
