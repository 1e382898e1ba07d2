"""The OnlineERP sandbox's records over real HTTP: get, create, update and delete with the
hub's codes, delivery addresses, the load route, invalid bodies and routes."""

from __future__ import annotations

import httpx
import pytest

from tests.support.onlineerp_sandbox import assert_error, create, customer, keys, product


def test_get_by_id_or_404(api: httpx.Client) -> None:
    create(api, "Customer", customer("C-É 1", "Accents"))
    found = api.get("/Entity/Customer/C-É 1")
    assert found.status_code == 200
    assert found.json()["NomClient"] == "Accents"
    message = assert_error(api.get("/Entity/Customer/C404"), 404, "NotFound")
    assert "C404" in message
    assert_error(api.get("/Entity/Product/P404"), 404, "NotFound")


def test_create_answers_201_with_the_stored_record_and_defaults(api: httpx.Client) -> None:
    answer = api.post("/Entity/Customer", json={"NoClient": "C1", "NomClient": "Minimal"})
    assert answer.status_code == 201
    assert answer.headers["Location"].endswith("/api/Entity/Customer/C1")
    assert answer.json() == {
        "NoClient": "C1",
        "NomClient": "Minimal",
        "NoClientParent": None,
        "Courriel": None,
        "Telephone": None,
        "Adresse": {
            "Ligne1": None,
            "Ville": None,
            "Province": None,
            "CodePostal": None,
            "Pays": None,
        },
        "NoTPS": None,
        "Langue": None,
        "EstActif": True,
    }
    full = create(api, "Customer", customer("C2", ChampPerso="valeur"))
    assert full == customer("C2", ChampPerso="valeur"), "undocumented fields are kept"
    assert keys(api.get("/Entity/Customer", params={"$filter": "ChampPerso eq 'valeur'"})) == ["C2"]
    made = create(api, "Product", {"NoProduit": "P1", "Description": "Ruban"})
    assert made == {
        "NoProduit": "P1",
        "Description": "Ruban",
        "PrixVente": 0.0,
        "Devise": None,
        "CodeTaxe": None,
        "Unite": None,
        "EstActif": True,
        "GroupeProduit": {"CodeGroupe": None},
    }


def test_create_on_an_existing_key_is_409_or_412_with_if_none_match(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Original"))
    plain = api.post("/Entity/Customer", json=customer("C1", "Copie"))
    assert "C1" in assert_error(plain, 409, "Exists")
    guarded = api.post(
        "/Entity/Customer", json=customer("C1", "Copie"), headers={"If-None-Match": "*"}
    )
    assert_error(guarded, 412, "Exists")
    assert api.get("/Entity/Customer/C1").json()["NomClient"] == "Original"
    fresh = api.post("/Entity/Product", json=product("P1"), headers={"If-None-Match": "*"})
    assert fresh.status_code == 201, "If-None-Match: * lets a new record through"


def test_delivery_addresses_are_kept_by_code_and_replaced_whole_by_put(
    api: httpx.Client,
) -> None:
    deliveries = [{"CodeAdresse": "L1", "Ville": "Laval", "Extra": 1}, {"CodeAdresse": "L2"}]
    create(api, "Customer", customer("C1", AdressesLivraison=deliveries))
    stored = api.get("/Entity/Customer/C1").json()
    assert stored["AdressesLivraison"] == [
        {"CodeAdresse": "L1", "Ligne1": None, "Ville": "Laval", "Province": None,
         "CodePostal": None, "Pays": None, "Extra": 1},
        {"CodeAdresse": "L2", "Ligne1": None, "Ville": None, "Province": None,
         "CodePostal": None, "Pays": None},
    ]  # fmt: skip
    answer = api.put("/Entity/Customer/C1", json={"AdressesLivraison": [{"CodeAdresse": "L3"}]})
    assert [d["CodeAdresse"] for d in answer.json()["AdressesLivraison"]] == ["L3"]
    create(api, "Customer", customer("C2"))
    assert "AdressesLivraison" not in api.get("/Entity/Customer/C2").json(), "only when given"


def test_the_load_route_stores_customers_as_posts_would_and_stops_at_a_refused_one(
    api: httpx.Client, control: httpx.Client
) -> None:
    bodies = [customer("C1", AdressesLivraison=[{"CodeAdresse": "L1"}]), customer("C2")]
    answer = control.post("/_sandbox/load/Customer", json=bodies)
    assert answer.json()["loaded"] == 2
    assert api.get("/Entity/Customer/C1").json() == answer.json()["records"][0]
    refused = control.post("/_sandbox/load/Customer", json=[customer("C3"), customer("C1")])
    assert refused.status_code == 400
    assert refused.json()["loaded"] == 1, "C3 stored, the existing C1 refused"
    assert control.post("/_sandbox/load/Product", json=[]).status_code == 404


def test_put_replaces_the_given_fields_and_keeps_the_others(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Avant"))
    answer = api.put(
        "/Entity/Customer/C1",
        json={"NomClient": "Après", "Adresse": {"Ville": "Laval"}, "NoClientParent": None},
    )
    assert answer.status_code == 200
    stored = api.get("/Entity/Customer/C1").json()
    assert stored == answer.json()
    assert stored["NomClient"] == "Après"
    assert stored["Courriel"] == "c1@exemple.qc.ca", "fields not given are kept"
    assert stored["Adresse"] == {
        "Ligne1": None,
        "Ville": "Laval",
        "Province": None,
        "CodePostal": None,
        "Pays": None,
    }, "a given sub-object is replaced whole"
    assert_error(api.put("/Entity/Customer/C404", json={"NomClient": "x"}), 404, "NotFound")
    moved = api.put("/Entity/Customer/C1", json={"NoClient": "C9"})
    assert_error(moved, 400, "InvalidBody")


def test_put_and_delete_on_the_collection_take_the_key_from_the_body(api: httpx.Client) -> None:
    create(api, "Product", product("P1", 1.0))
    updated = api.put("/Entity/Product/", json={"NoProduit": "P1", "PrixVente": 2.5})
    assert updated.status_code == 200
    assert api.get("/Entity/Product/P1").json()["PrixVente"] == 2.5
    assert_error(api.put("/Entity/Product", json={"PrixVente": 3}), 400, "InvalidBody")
    deleted = api.request("DELETE", "/Entity/Product/", json={"NoProduit": "P1"})
    assert deleted.status_code == 204
    assert api.get("/Entity/Product").json() == []


def test_delete_answers_204_then_404(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1"))
    create(api, "Customer", customer("C2"))
    answer = api.delete("/Entity/Customer/C1")
    assert answer.status_code == 204
    assert answer.content == b""
    assert_error(api.get("/Entity/Customer/C1"), 404, "NotFound")
    assert_error(api.delete("/Entity/Customer/C1"), 404, "NotFound")
    assert keys(api.get("/Entity/Customer")) == ["C2"]


@pytest.mark.parametrize(
    ("entity", "content"),
    [
        ("Customer", b"not json"),
        ("Customer", b""),
        ("Customer", b"[1, 2]"),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x"'),
        ("Customer", b"\xff\xfe"),
        ("Customer", b"[" * 100_000),
        ("Customer", b'{"NomClient": "no key"}'),
        ("Customer", b'{"NoClient": 42, "NomClient": "numeric key"}'),
        ("Customer", b'{"NoClient": "", "NomClient": "empty key"}'),
        ("Customer", b'{"NoClient": "a/b", "NomClient": "slash"}'),
        ("Customer", b'{"NoClient": "C1"}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": 7}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "EstActif": "yes"}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "Adresse": "Montreal"}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "Adresse": {"Ville": 1}}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "NoClientParent": "C1"}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "Courriel": ["a"]}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "AdressesLivraison": {}}'),
        ("Customer", b'{"NoClient": "C1", "NomClient": "x", "AdressesLivraison": [{}]}'),
        (
            "Customer",
            b'{"NoClient": "C1", "NomClient": "x", "AdressesLivraison": '
            b'[{"CodeAdresse": "L1"}, {"CodeAdresse": "L1"}]}',
        ),
        ("Product", b'{"NoProduit": "P1", "Description": "x", "PrixVente": "12"}'),
        ("Product", b'{"NoProduit": "P1", "Description": "x", "PrixVente": true}'),
        ("Product", b'{"NoProduit": "P1", "Description": "x", "PrixVente": NaN}'),
        ("Product", b'{"NoProduit": "P1", "Description": "x", "GroupeProduit": "BOITES"}'),
        ("Product", b'{"NoProduit": "P1"}'),
    ],
)
def test_invalid_bodies_are_400_invalid_body_and_store_nothing(
    api: httpx.Client, control: httpx.Client, entity: str, content: bytes
) -> None:
    answer = api.post(
        f"/Entity/{entity}", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(answer, 400, "InvalidBody")
    assert control.get(f"/_sandbox/records/{entity}").json() == []


def test_invalid_update_body_leaves_the_record_unchanged(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Stable"))
    for content in (b"{", b'{"EstActif": "no"}', b'"text"', b'{"NomClient": null}'):
        answer = api.put(
            "/Entity/Customer/C1", content=content, headers={"Content-Type": "application/json"}
        )
        assert_error(answer, 400, "InvalidBody")
    assert api.get("/Entity/Customer/C1").json() == customer("C1", "Stable")


def test_unknown_entity_route_and_method_answer_in_the_vendor_shape(api: httpx.Client) -> None:
    assert "Supplier" in assert_error(api.get("/Entity/Supplier"), 404, "NotFound")
    assert_error(api.get("/NoSuchThing"), 404, "NotFound")
    assert_error(api.patch("/Entity/Customer/C1", json={}), 405, "MethodNotAllowed")
    assert_error(api.post("/Entity/Customer/C1", json={}), 405, "MethodNotAllowed")


def test_paths_are_case_insensitive_and_accept_a_trailing_slash(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1"))
    assert keys(api.get("/entity/customer")) == ["C1"]
    assert keys(api.get("/Entity/Customer/")) == ["C1"]
    assert api.get("/entity/CUSTOMER/C1").json()["NoClient"] == "C1"
    assert api.post("/Entity/Product/", json=product("P1")).status_code == 201
