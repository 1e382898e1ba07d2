"""The OnlineERP sandbox over real HTTP: credentials and companies, then list queries (paging
by key, $top, $orderby, $filter, $select) as the hub answers them."""

from __future__ import annotations

import base64

import httpx
import pytest

from simulators.onlineerp import OnlineErpSimulator
from simulators.server import RunningSandbox
from tests.support.onlineerp_sandbox import (
    LICENCE,
    SECRET,
    assert_error,
    create,
    customer,
    keys,
    product,
)


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
