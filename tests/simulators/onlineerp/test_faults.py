"""The OnlineERP sandbox's injected faults, reset, seed and stats, and its robustness: any
filter or body is answered, never with a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.server import RunningSandbox
from tests.support.onlineerp_sandbox import (
    _FILTER_WORDS,
    _JSON,
    LICENCE,
    SECRET,
    assert_error,
    create,
    customer,
    invoice,
    product,
)


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
