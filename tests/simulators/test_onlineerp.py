"""The OnlineERP / ERPConnector simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.onlineerp import OnlineErpSimulator
from simulators.server import RunningSandbox

LICENCE = "SANDBOX"
SECRET = "sandbox-secret"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"onlineerp": OnlineErpSimulator()}) as sandbox:
        yield sandbox


@pytest.fixture
def control(running: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.endpoints["onlineerp"].url, timeout=30) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


@pytest.fixture
def api(running: RunningSandbox, control: httpx.Client) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=running.endpoints["onlineerp"].api_url,
        auth=(LICENCE, SECRET),
        headers={"COMPANY_ID": "0"},
        timeout=30,
    ) as client:
        yield client


def customer(key: str, name: str = "Emballages Dupont inc.", **fields: Any) -> dict[str, Any]:
    return {
        "NoClient": key,
        "NomClient": name,
        "NoClientParent": None,
        "Courriel": f"{key.lower()}@exemple.qc.ca",
        "Telephone": "+1 514 555 0101",
        "Adresse": {
            "Ligne1": "1 rue Principale",
            "Ville": "Montréal",
            "Province": "QC",
            "CodePostal": "H2X 1Y4",
            "Pays": "CA",
        },
        "NoTPS": "123456789RT0001",
        "Langue": "FR",
        "EstActif": True,
        **fields,
    }


def product(key: str, price: float = 10.0, group: str = "BOITES", **fields: Any) -> dict[str, Any]:
    return {
        "NoProduit": key,
        "Description": f"Boîte {key}",
        "PrixVente": price,
        "EstActif": True,
        "GroupeProduit": {"CodeGroupe": group},
        **fields,
    }


def invoice(reference: str, client: str = "C1", **facture: Any) -> dict[str, Any]:
    return {
        "Facture": {
            "TypeDoc": "FACTURES",
            "Référence": reference,
            "Description": "Travaux d'octobre",
            "DateFacture": "2026-10-15",
            "InfoClientFacturerA": {"NoClient": client},
            "LigneFacture": [
                {"strNoProduit": "P1", "QteFacture": 3},
                {"strNoProduit": "P2", "QteFacture": 2, "PrixUnitaire": 7.25},
                {"DescriptionLigne": "Merci de votre confiance"},
            ],
            **facture,
        }
    }


def create(api: httpx.Client, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(f"/Entity/{entity}", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def assert_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"Message", "Code"}
    assert body["Code"] == code
    message: str = body["Message"]
    return message


def keys(answer: httpx.Response, field: str = "NoClient") -> list[str]:
    assert answer.status_code == 200, answer.text
    return [record[field] for record in answer.json()]


# -- authentication -----------------------------------------------------------------------


def test_missing_or_wrong_credentials_are_401(running: RunningSandbox, api: httpx.Client) -> None:
    url = running.endpoints["onlineerp"].api_url + "/Entity/Customer"
    bad_auths: list[dict[str, str]] = [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"SANDBOX:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"OTHER:sandbox-secret").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"SANDBOXsandbox-secret").decode()},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer sandbox-secret"},
    ]
    for headers in bad_auths:
        answer = httpx.get(url, headers=headers, timeout=10)
        assert_error(answer, 401, "Unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
        assert SECRET not in answer.text
    assert api.get("/Entity/Customer").status_code == 200


def test_company_the_licence_does_not_hold_is_403(
    running: RunningSandbox, api: httpx.Client
) -> None:
    url = running.endpoints["onlineerp"].api_url + "/Entity/Customer"
    answer = httpx.get(url, auth=(LICENCE, SECRET), headers={"COMPANY_ID": "1"}, timeout=10)
    assert_error(answer, 403, "Forbidden")
    wrong_secret = httpx.get(url, auth=(LICENCE, "nope"), headers={"COMPANY_ID": "1"}, timeout=10)
    assert wrong_secret.status_code == 401, "credentials are checked before the company"
    default_company = httpx.get(url, auth=(LICENCE, SECRET), timeout=10)
    assert default_company.status_code == 200, "COMPANY_ID defaults to 0"


def test_the_simulator_can_hold_other_credentials_and_companies() -> None:
    simulator = OnlineErpSimulator(licence_code="ACME", secret="s3", companies=("0", "7"))
    with RunningSandbox(simulators={"onlineerp": simulator}) as sandbox:
        url = sandbox.endpoints["onlineerp"].api_url + "/Entity/Product"
        assert httpx.get(url, auth=("ACME", "s3"), headers={"COMPANY_ID": "7"}).status_code == 200
        assert httpx.get(url, auth=("ACME", "s3"), headers={"COMPANY_ID": "8"}).status_code == 403
        assert httpx.get(url, auth=(LICENCE, SECRET)).status_code == 401


# -- list queries -----------------------------------------------------------------------------


def test_list_is_a_bare_array_in_key_order_and_pages_end_empty(api: httpx.Client) -> None:
    for key in ["C3", "C1", "C5", "C2", "C4"]:
        create(api, "Customer", customer(key))
    assert keys(api.get("/Entity/Customer")) == ["C1", "C2", "C3", "C4", "C5"]
    assert keys(api.get("/Entity/Customer", params={"$top": 2})) == ["C1", "C2"]
    assert keys(api.get("/Entity/Customer", params={"$top": 2, "$skip": 2})) == ["C3", "C4"]
    assert keys(api.get("/Entity/Customer", params={"$top": 2, "$skip": 4})) == ["C5"]
    end = api.get("/Entity/Customer", params={"$top": 2, "$skip": 6})
    assert end.status_code == 200
    assert end.json() == []
    assert keys(api.get("/Entity/Customer", params={"$top": 0})) == []
    assert api.get("/Entity/Customer").headers["content-type"].startswith("application/json")


def test_paging_by_key_sees_every_record_once_in_both_directions(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.post("/_sandbox/seed", json={"customers": 250, "products": 0})
    for direction, expected_first in (("asc", "C000001"), ("desc", "C000250")):
        seen: list[str] = []
        skip = 0
        while True:
            params: dict[str, str | int] = {
                "$top": 40,
                "$skip": skip,
                "$orderby": f"NoClient {direction}",
            }
            page = keys(api.get("/Entity/Customer", params=params))
            if not page:
                break
            seen.extend(page)
            skip += len(page)
        assert len(seen) == len(set(seen)) == 250
        assert seen[0] == expected_first
        assert seen == sorted(seen, reverse=direction == "desc")


def test_top_is_capped_at_1000(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/_sandbox/seed", json={"customers": 1100, "products": 0})
    assert len(api.get("/Entity/Customer", params={"$top": 5000}).json()) == 1000
    assert len(api.get("/Entity/Customer").json()) == 1000, "no $top: the server's page size"
    rest = api.get("/Entity/Customer", params={"$top": 1000, "$skip": 1000}).json()
    assert len(rest) == 100


def test_orderby_fields_and_directions(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Bravo"))
    create(api, "Customer", customer("C2", "Alpha", Langue="EN"))
    create(api, "Customer", customer("C3", "Charlie", Langue="EN"))
    create(api, "Customer", customer("C4", "Alpha"))
    by_name = api.get("/Entity/Customer", params={"$orderby": "NomClient"})
    assert keys(by_name) == ["C2", "C4", "C1", "C3"], "ties keep key order"
    desc = api.get("/Entity/Customer", params={"$orderby": "NomClient desc"})
    assert keys(desc) == ["C3", "C1", "C2", "C4"]
    two = api.get("/Entity/Customer", params={"$orderby": "Langue desc,NomClient asc"})
    assert keys(two) == ["C4", "C1", "C2", "C3"]
    dotted = api.get("/Entity/Customer", params={"$orderby": "Adresse.Ville, NoClient desc"})
    assert keys(dotted) == ["C4", "C3", "C2", "C1"]
    paged = api.get("/Entity/Customer", params={"$orderby": "NomClient", "$skip": 1, "$top": 2})
    assert keys(paged) == ["C4", "C1"]


def test_filter_eq_on_text_dotted_fields_numbers_booleans_and_null(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Alpha"))
    create(api, "Customer", customer("C2", "Bravo", NoClientParent="C1", EstActif=False))
    quebec = customer("C3", "Charlie", NoClientParent="C1")
    quebec["Adresse"]["Ville"] = "Québec"
    create(api, "Customer", quebec)
    create(api, "Product", product("P1", 12.5, "vêtements"))
    create(api, "Product", product("P2", 3, "BOITES"))
    create(api, "Product", product("P3", 12.5, "BOITES", EstActif=False))

    def find(entity: str, expression: str, field: str = "NoClient") -> list[str]:
        return keys(api.get(f"/Entity/{entity}", params={"$filter": expression}), field)

    assert find("Customer", "NomClient eq 'Bravo'") == ["C2"]
    assert find("Customer", "NoClient eq 'C3'") == ["C3"]
    assert find("Customer", "Adresse.Ville eq 'Québec'") == ["C3"]
    assert find("Customer", "Adresse/Ville eq 'Montréal'") == ["C1", "C2"]
    assert find("Customer", "NoClientParent eq 'C1' and EstActif eq true") == ["C3"]
    assert find("Customer", "(NoClientParent eq 'C1') and (EstActif eq false)") == ["C2"]
    assert find("Customer", "NoClientParent eq null") == ["C1"]
    assert find("Customer", "NomClient eq 'Nobody'") == []
    assert find("Product", "GroupeProduit.CodeGroupe eq 'vêtements'", "NoProduit") == ["P1"]
    assert find("Product", "PrixVente eq 12.5 and EstActif eq true", "NoProduit") == ["P1"]
    assert find("Product", "PrixVente eq 3", "NoProduit") == ["P2"]
    assert find("Product", "PrixVente eq 3.0", "NoProduit") == ["P2"]
    assert find("Product", "EstActif eq 1", "NoProduit") == [], "true is not the number 1"
    assert find("Product", "PrixVente eq '3'", "NoProduit") == [], "no implicit conversion"


def test_filter_quotes_are_escaped_by_doubling(api: httpx.Client) -> None:
    odd = "L'Étoile du Nord — Café & Thé 100% + 'quoted'"
    create(api, "Customer", customer("C1", odd))
    create(api, "Customer", customer("C2", "L"))
    escaped = odd.replace("'", "''")
    found = api.get("/Entity/Customer", params={"$filter": f"NomClient eq '{escaped}'"})
    assert keys(found) == ["C1"]
    assert found.json()[0]["NomClient"] == odd
    unescaped = api.get("/Entity/Customer", params={"$filter": f"NomClient eq '{odd}'"})
    assert_error(unescaped, 400, "InvalidFilter")


def test_filtered_results_follow_writes(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Alpha"))
    create(api, "Customer", customer("C2", "Bravo"))
    params: dict[str, str | int] = {"$filter": "EstActif eq true", "$top": 1}
    assert keys(api.get("/Entity/Customer", params=params)) == ["C1"]
    assert api.put("/Entity/Customer/C1", json={"EstActif": False}).status_code == 200
    assert keys(api.get("/Entity/Customer", params=params)) == ["C2"]
    create(api, "Customer", customer("C0", "Zulu"))
    assert keys(api.get("/Entity/Customer", params=params)) == ["C0"]
    assert api.delete("/Entity/Customer/C0").status_code == 204
    assert keys(api.get("/Entity/Customer", params={"$orderby": "NomClient desc"})) == [
        "C2",
        "C1",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "NomClient eq"},
        {"$filter": "NomClient"},
        {"$filter": ""},
        {"$filter": "NomClient gt 'a'"},
        {"$filter": "NomClient ne 'a'"},
        {"$filter": "NomClient eq 'a' or NomClient eq 'b'"},
        {"$filter": "NomClient eq 'unterminated"},
        {"$filter": "NomClient eq 'a' and"},
        {"$filter": "(NomClient eq 'a'"},
        {"$filter": "NomClient eq 'a')"},
        {"$filter": "contains(NomClient,'a')"},
        {"$filter": "NomClient eq Bravo"},
        {"$filter": "Inconnu eq 1"},
        {"$filter": "NomClient eq 'a' ; drop"},
        {"$filter": "eq eq 'a'"},
        {"$top": "-1"},
        {"$top": "abc"},
        {"$skip": "1.5"},
        {"$orderby": "NomClient sideways"},
        {"$orderby": "Inconnu"},
        {"$orderby": ""},
        {"$select": "Nope"},
        {"$select": "NoClient,,NomClient"},
        {"$count": "true"},
    ],
)
def test_malformed_query_options_are_400_invalid_filter(
    api: httpx.Client, params: dict[str, str]
) -> None:
    create(api, "Customer", customer("C1"))
    message = assert_error(api.get("/Entity/Customer", params=params), 400, "InvalidFilter")
    assert message


def test_an_option_given_twice_is_400(api: httpx.Client) -> None:
    answer = api.get("/Entity/Customer?$top=1&$top=2")
    assert_error(answer, 400, "InvalidFilter")


def test_select_keeps_the_chosen_fields_nested(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1", "Alpha"))
    create(api, "Customer", customer("C2", "Bravo", Adresse=None))
    answer = api.get("/Entity/Customer", params={"$select": "NoClient, Adresse.Ville,Adresse.Pays"})
    assert answer.json() == [
        {"NoClient": "C1", "Adresse": {"Ville": "Montréal", "Pays": "CA"}},
        {"NoClient": "C2", "Adresse": {"Ville": None, "Pays": None}},
    ]
    star = api.get("/Entity/Customer", params={"$select": "*", "$top": 1}).json()
    assert star[0] == customer("C1", "Alpha")
    one = api.get("/Entity/Customer/C1", params={"$select": "NomClient"})
    assert one.json() == {"NomClient": "Alpha"}
    assert (
        api.get("/Entity/Customer/C1", params={"$expand": "ExtendedProperties"}).status_code == 200
    )


# -- get, create, update, delete --------------------------------------------------------------


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


# -- invoices ---------------------------------------------------------------------------------


@pytest.fixture
def billing_data(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1"))
    create(api, "Product", product("P1", 10.0))
    create(api, "Product", product("P2", 99.0))


@pytest.mark.usefixtures("billing_data")
def test_invoice_is_created_with_a_number_and_a_total(api: httpx.Client) -> None:
    answer = api.post("/Entity/CustomerInvoice", json=invoice("ATL-1"))
    assert answer.status_code == 201
    stored = answer.json()
    number = stored["NoFacture"]
    assert isinstance(number, str)
    assert answer.headers["Location"].endswith(f"/api/Entity/CustomerInvoice/{number}")
    facture = stored["Facture"]
    assert facture["Référence"] == "ATL-1"
    assert facture["NoFacture"] == number
    assert facture["InfoClientFacturerA"] == {"NoClient": "C1"}
    assert facture["LigneFacture"][0]["PrixUnitaire"] == 10.0, "the product's price by default"
    assert facture["LigneFacture"][1]["PrixUnitaire"] == 7.25
    assert facture["LigneFacture"][2] == {"DescriptionLigne": "Merci de votre confiance"}
    assert stored["TotalAvantTaxes"] == facture["TotalAvantTaxes"] == 44.5
    assert api.get(f"/Entity/CustomerInvoice/{number}").json() == stored
    by_ref = api.get("/Entity/CustomerInvoice", params={"$filter": "Facture.Référence eq 'ATL-1'"})
    assert by_ref.json() == [stored]
    second = create(api, "CustomerInvoice", invoice("ATL-2"))
    assert second["NoFacture"] != number
    assert keys(api.get("/Entity/CustomerInvoice"), "NoFacture") == [number, second["NoFacture"]]
    by_client = api.get(
        "/Entity/CustomerInvoice",
        params={"$filter": "Facture.InfoClientFacturerA.NoClient eq 'C1'"},
    )
    assert len(by_client.json()) == 2


@pytest.mark.usefixtures("billing_data")
def test_the_erp_taxes_each_line_and_totals_the_invoice(api: httpx.Client) -> None:
    body = invoice("ATL-1")
    body["Facture"]["LigneFacture"][1]["TauxTaxe"] = 5
    stored = create(api, "CustomerInvoice", body)
    lines = stored["Facture"]["LigneFacture"]
    assert [
        (line.get("TauxTaxe"), line.get("MontantLigne"), line.get("MontantTaxe")) for line in lines
    ] == [(14.975, 30.0, 4.49), (5, 14.5, 0.73), (None, None, None)], (
        "the default rate (TPS + TVQ) unless the line names one; a text line is not taxed"
    )
    assert (stored["TotalAvantTaxes"], stored["TotalTaxes"], stored["TotalAvecTaxes"]) == (
        44.5,
        5.22,
        49.72,
    )
    assert (stored["Statut"], stored["MontantPaye"], stored["SoldeDu"]) == ("Ouverte", 0, 49.72)


@pytest.mark.usefixtures("billing_data")
def test_an_invoice_is_paid_in_part_then_in_full_or_cancelled_through_the_sandbox(
    api: httpx.Client, control: httpx.Client
) -> None:
    number = create(api, "CustomerInvoice", invoice("ATL-1"))["NoFacture"]
    other = create(api, "CustomerInvoice", invoice("ATL-2"))["NoFacture"]
    part = control.post(f"/_sandbox/invoices/{number}/payment", json={"Montant": 20})
    assert part.status_code == 200
    assert (part.json()["Statut"], part.json()["MontantPaye"], part.json()["SoldeDu"]) == (
        "PartiellementPayee",
        20,
        31.16,
    )
    rest = control.post(f"/_sandbox/invoices/{number}/payment")
    assert (rest.json()["Statut"], rest.json()["MontantPaye"], rest.json()["SoldeDu"]) == (
        "Payee",
        51.16,
        0,
    )
    assert api.get(f"/Entity/CustomerInvoice/{number}").json() == rest.json()
    cancelled = control.post(f"/_sandbox/invoices/{other}/cancel").json()
    assert (cancelled["Statut"], cancelled["SoldeDu"]) == ("Annulee", 0)
    refused = control.post(f"/_sandbox/invoices/{other}/payment", json={"Montant": 1})
    assert "cancelled" in assert_error(refused, 400, "InvalidBody")
    assert_error(control.post("/_sandbox/invoices/404/cancel"), 404, "NotFound")
    by_state = api.get("/Entity/CustomerInvoice", params={"$filter": "Statut eq 'Payee'"})
    assert [i["NoFacture"] for i in by_state.json()] == [number]


@pytest.mark.usefixtures("billing_data")
def test_invoice_reference_is_unique_409_and_412(api: httpx.Client) -> None:
    first = create(api, "CustomerInvoice", invoice("ATL-1"))
    retry = api.post(
        "/Entity/CustomerInvoice", json=invoice("ATL-1"), headers={"If-None-Match": "*"}
    )
    message = assert_error(retry, 412, "Exists")
    assert first["NoFacture"] in message
    assert_error(api.post("/Entity/CustomerInvoice", json=invoice("ATL-1")), 409, "Exists")
    assert len(api.get("/Entity/CustomerInvoice").json()) == 1


@pytest.mark.usefixtures("billing_data")
def test_invoices_are_create_only(api: httpx.Client) -> None:
    number = create(api, "CustomerInvoice", invoice("ATL-1"))["NoFacture"]
    for answer in (
        api.put(f"/Entity/CustomerInvoice/{number}", json=invoice("ATL-1")),
        api.put("/Entity/CustomerInvoice", json=invoice("ATL-1")),
        api.delete(f"/Entity/CustomerInvoice/{number}"),
    ):
        assert_error(answer, 405, "MethodNotAllowed")
        assert answer.headers["Allow"] == "GET, POST"
    assert api.get(f"/Entity/CustomerInvoice/{number}").status_code == 200


@pytest.mark.usefixtures("billing_data")
def test_invoice_validation_names_what_is_missing(api: httpx.Client, control: httpx.Client) -> None:
    unknown_client = api.post("/Entity/CustomerInvoice", json=invoice("ATL-1", client="C404"))
    assert "C404" in assert_error(unknown_client, 400, "InvalidBody")
    bad_line = invoice("ATL-1")
    bad_line["Facture"]["LigneFacture"].append({"strNoProduit": "P404", "QteFacture": 1})
    answer = api.post("/Entity/CustomerInvoice", json=bad_line)
    assert "P404" in assert_error(answer, 400, "InvalidBody")
    malformed: list[Any] = [
        {"Facture": "x"},
        {"Invoice": {}},
        [],
        invoice(""),
        invoice("ATL-1", LigneFacture=[]),
        invoice("ATL-1", LigneFacture=[{"QteFacture": 1}]),
        invoice("ATL-1", LigneFacture=[{"strNoProduit": "P1"}]),
        invoice("ATL-1", LigneFacture=[{"strNoProduit": "P1", "QteFacture": "2"}]),
        invoice("ATL-1", LigneFacture=["P1"]),
        invoice("ATL-1", InfoClientFacturerA={}),
        invoice("ATL-1", InfoClientFacturerA=None),
        invoice("ATL-1", TypeDoc="AVOIRS"),
        invoice("ATL-1", TypeDoc=["FACTURES"]),
        invoice("ATL-1", DateFacture="15/10/2026"),
    ]
    for body in malformed:
        assert_error(api.post("/Entity/CustomerInvoice", json=body), 400, "InvalidBody")
    assert control.get("/_sandbox/records/CustomerInvoice").json() == []
    assert create(api, "CustomerInvoice", invoice("ATL-1"))["NoFacture"] == "00000001", (
        "failed creates consume no invoice number"
    )


# -- faults, records, reset, seed -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("RobotOffline", 503),
        ("RobotTimeout", 504),
        ("NotFound", 404),
        ("Exists", 409),
        ("InvalidBody", 400),
        ("InvalidFilter", 400),
        ("Unauthorized", 401),
        ("Forbidden", 403),
        ("MethodNotAllowed", 405),
    ],
)
def test_injected_vendor_codes_answer_in_the_vendor_shape(
    api: httpx.Client, control: httpx.Client, code: str, status: int
) -> None:
    rule = {"vendor_code": code, "path": "/api/Entity/Customer*", "count": 1}
    assert control.post("/_sandbox/faults", json=rule).status_code == 200
    assert_error(api.get("/Entity/Customer"), status, code)
    assert api.get("/Entity/Customer").status_code == 200


def test_injected_statuses_carry_the_matching_code_and_retry_after(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.post(
        "/_sandbox/faults",
        json={"statuses": [503], "retry_after_s": 3, "methods": ["POST"], "count": 1},
    )
    answer = api.post("/Entity/Customer", json=customer("C1"))
    assert_error(answer, 503, "RobotOffline")
    assert answer.headers["Retry-After"] == "3"
    assert control.get("/_sandbox/records/Customer").json() == [], "the request was not applied"
    control.post("/_sandbox/faults", json={"statuses": [504, 500], "count": 2})
    codes = {api.get("/Entity/Customer").json()["Code"] for _ in range(2)}
    assert codes <= {"RobotTimeout", "InternalServerError"}
    assert api.get("/Entity/Customer").status_code == 200


def test_records_reset_and_seed(api: httpx.Client, control: httpx.Client) -> None:
    assert control.get("/_sandbox/records/Nope").status_code == 404
    seeded = control.post("/_sandbox/seed", json={"customers": 40, "products": 12})
    assert seeded.json() == {"seeded": {"Customer": 40, "Product": 12}}
    customers = control.get("/_sandbox/records/Customer").json()
    assert len(customers) == 40
    assert customers == api.get("/Entity/Customer").json()
    assert any(c["NoClientParent"] for c in customers), "the seed has a hierarchy"
    products = control.get("/_sandbox/records/Product").json()
    assert len(products) == 12
    # Seeded records are as the API itself would store them.
    assert api.put("/Entity/Customer/C000040", json={}).json() == customers[-1]
    assert api.put("/Entity/Product/P00001", json={}).json() == products[0]
    again = control.post("/_sandbox/seed", json={"customers": 40, "products": 12})
    assert again.status_code == 200
    assert control.get("/_sandbox/records/Customer").json() == customers, "deterministic"

    client = customers[0]["NoClient"]
    billing = invoice("ATL-9", client=client)
    billing["Facture"]["LigneFacture"] = [
        {"strNoProduit": products[0]["NoProduit"], "QteFacture": 1}
    ]
    create(api, "CustomerInvoice", billing)
    assert len(control.get("/_sandbox/records/CustomerInvoice").json()) == 1
    assert control.post("/_sandbox/reset").status_code == 200
    for entity in ("Customer", "Product", "CustomerInvoice"):
        assert control.get(f"/_sandbox/records/{entity}").json() == []
    create(api, "Customer", customer("C1"))
    create(api, "Product", product("P1"))
    create(api, "Product", product("P2"))
    assert create(api, "CustomerInvoice", invoice("ATL-9"))["NoFacture"] == "00000001", (
        "reset restarts invoice numbering"
    )


def test_stats_count_requests_by_route(api: httpx.Client, control: httpx.Client) -> None:
    create(api, "Customer", customer("C1"))
    api.get("/Entity/Customer/C1")
    api.get("/Entity/Customer/C2")
    stats = control.get("/_sandbox/stats").json()
    assert stats["writes"] == 1
    assert {
        "method": "GET",
        "route": "/api/Entity/{entity}/{key}",
        "status": "404",
        "count": 1,
    } in stats["requests"]


# -- robustness -------------------------------------------------------------------------------

_FILTER_WORDS = st.sampled_from(
    [
        "NomClient",
        "Adresse.Ville",
        "EstActif",
        "eq",
        "and",
        "or",
        "gt",
        "(",
        ")",
        "'",
        "''",
        "'a'",
        "12",
        "-3.5e2",
        "true",
        "null",
        ",",
        "/",
        ".",
        " ",
        "é",
        "%",
        "+",
    ]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(words=st.lists(_FILTER_WORDS, max_size=9), noise=st.text(max_size=6))
def test_any_filter_text_is_answered_200_or_400_never_500(
    running: RunningSandbox, words: list[str], noise: str
) -> None:
    httpx.delete(running.endpoints["onlineerp"].url + "/_sandbox/faults", timeout=10)
    with httpx.Client(
        base_url=running.endpoints["onlineerp"].api_url, auth=(LICENCE, SECRET), timeout=10
    ) as client:
        for text in (" ".join(words), "".join(words) + noise):
            answer = client.get("/Entity/Customer", params={"$filter": text})
            assert answer.status_code in {200, 400}, (text, answer.text)
            if answer.status_code == 400:
                assert answer.json()["Code"] == "InvalidFilter"


@settings(max_examples=60, deadline=None)
@given(
    entity=st.sampled_from(["Customer", "Product", "CustomerInvoice"]),
    body=_JSON
    | st.fixed_dictionaries({"NoClient": _JSON, "NomClient": _JSON, "Adresse": _JSON})
    | st.fixed_dictionaries(
        {
            "Facture": st.dictionaries(
                st.sampled_from(
                    ["Référence", "TypeDoc", "DateFacture", "InfoClientFacturerA", "LigneFacture"]
                ),
                _JSON,
            )
        }
    ),
)
def test_any_json_body_is_answered_201_400_or_409_never_500(
    running: RunningSandbox, entity: str, body: Any
) -> None:
    httpx.delete(running.endpoints["onlineerp"].url + "/_sandbox/faults", timeout=10)
    with httpx.Client(
        base_url=running.endpoints["onlineerp"].api_url, auth=(LICENCE, SECRET), timeout=10
    ) as client:
        answer = client.post(f"/Entity/{entity}", json=body)
        assert answer.status_code in {201, 400, 409}, (body, answer.text)
        if answer.status_code == 201:
            created = answer.json()
            key = {"Customer": "NoClient", "Product": "NoProduit"}.get(entity, "NoFacture")
            assert client.get(f"/Entity/{entity}/{created[key]}").json() == created
