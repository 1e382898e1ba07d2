"""A customer's addresses as HIPE company addresses, against the simulator over HTTP: named
by code, set, changed, cleared field by field and removed, on the single path and after a
CSV import; hand-made addresses left alone; reconcile's views agree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from delivery.engine import Engine
from delivery.sinks.hipe import HipeSink
from erpsync.events import Delivery
from simulators.server import RunningSandbox
from state.store import LedgerEntry
from tests.support.addresses import D1, D2, INVOICE
from tests.support.hipe_sink import bulk, companies, event_of, record

STEPS = [
    [INVOICE, D1],
    [INVOICE, D1, D2],  # one added
    [{**INVOICE, "city": "Longueuil"}, D1, {**D2, "region": None}],  # changed, cleared
    [INVOICE, D2],  # D1 removed
    [],  # every address removed
    [D1],
]


@pytest.fixture
def control(hipe: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hipe.endpoints["hipe"].url, timeout=10) as http:
        yield http


def stored(control: httpx.Client, hipe: RunningSandbox, key: str) -> list[dict[str, Any]]:
    """The company's addresses in the sandbox, every field erpsync writes, by code."""
    (company,) = [c for c in companies(hipe).values() if c["externalId"] == key]
    answer = control.get("/_sandbox/records/addresses")
    answer.raise_for_status()
    found = [
        {
            "code": a["name"],
            "type": "invoice" if a["name"] == "invoice" else "delivery",
            "line1": a["address"],
            "city": a["city"],
            "region": a["state"],
            "postal_code": a["zipCode"],
            "country": a["country"],
        }
        for a in answer.json()
        if a["companyId"] == company["id"]
    ]
    return sorted(found, key=lambda a: a["code"])


def by_code(*addresses: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(addresses, key=lambda a: a["code"])


def views_agree(sink: HipeSink, payload: dict[str, Any]) -> None:
    (seen,) = [o for o in sink.observed("customer") if o.key == payload["key"]]
    assert seen.fields == sink.expected("customer", payload)


def test_single_path_addresses_set_changed_cleared_and_removed_by_code(
    mapped: tuple[Engine, HipeSink], hipe: RunningSandbox, control: httpx.Client
) -> None:
    engine, sink = mapped
    for addresses in STEPS:
        payload = record("C1", "Dupont", addresses=addresses)
        assert engine.process(Delivery(event=event_of(payload), target="hipe")) == "applied"
        assert stored(control, hipe, "C1") == by_code(*addresses), addresses
        views_agree(sink, payload)
    assert engine.dlq.count() == 0


def test_unchanged_addresses_cost_no_call(
    mapped: tuple[Engine, HipeSink], hipe: RunningSandbox, control: httpx.Client
) -> None:
    engine, _ = mapped
    payload = record("C1", "Dupont", addresses=[INVOICE, D1])
    assert engine.process(Delivery(event=event_of(payload), target="hipe")) == "applied"
    control.delete("/_sandbox/stats").raise_for_status()
    renamed = {**payload, "name": "Dupont inc."}
    assert engine.process(Delivery(event=event_of(renamed), target="hipe")) == "applied"
    routes = [r["route"] for r in control.get("/_sandbox/stats").json()["requests"]]
    assert not [r for r in routes if "addresses" in r], routes
    assert stored(control, hipe, "C1") == by_code(INVOICE, D1)


def test_bulk_path_addresses_follow_the_import(
    mapped: tuple[Engine, HipeSink], hipe: RunningSandbox, control: httpx.Client
) -> None:
    _, sink = mapped
    ledgers: dict[str, LedgerEntry] = {}
    for addresses in STEPS:
        payload = record("C1", "Dupont", addresses=addresses)
        bulk(sink, ledgers, [payload, record("C2", "Roy", addresses=[D2])])
        assert stored(control, hipe, "C1") == by_code(*addresses), addresses
        assert stored(control, hipe, "C2") == [D2]
        views_agree(sink, payload)


def test_an_address_added_by_hand_in_hipe_is_left_alone_and_not_compared(
    mapped: tuple[Engine, HipeSink], hipe: RunningSandbox, control: httpx.Client
) -> None:
    engine, sink = mapped
    payload = record("C1", "Dupont", addresses=[INVOICE, D1])
    assert engine.process(Delivery(event=event_of(payload), target="hipe")) == "applied"
    (company,) = companies(hipe).values()
    hand = {"name": "Entrepôt", "address": "9 rue X", "city": "Laval", "country": "CA"}
    sink.client._request(
        "POST",
        f"/api/companies/{company['id']}/addresses",
        operation="test",
        json=[{**hand, "zipCode": "H7A 1A1"}],
    )
    payload = record("C1", "Dupont", addresses=[D1])
    assert engine.process(Delivery(event=event_of(payload), target="hipe")) == "applied"
    names = sorted(a["name"] for a in control.get("/_sandbox/records/addresses").json())
    assert names == ["Entrepôt", "delivery:D1"]
    views_agree(sink, payload)


def test_a_listing_refused_for_the_rate_after_an_import_is_read_again(
    mapped: tuple[Engine, HipeSink], hipe: RunningSandbox, control: httpx.Client
) -> None:
    """The changed-since listing that finds the imported companies' ids answers 429 once:
    it is read again after its Retry-After, so no company is looked up alone and no new
    company's addresses are listed (cut, that was two calls more per company)."""
    _, sink = mapped
    refusal = {"path": "*/companies", "methods": ["GET"], "statuses": [429],
               "retry_after_s": 0.2, "count": 1}  # fmt: skip
    control.post("/_sandbox/faults", json=[refusal]).raise_for_status()
    control.delete("/_sandbox/stats").raise_for_status()
    ledgers: dict[str, LedgerEntry] = {}
    bulk(sink, ledgers, [record("C1", "Dupont", addresses=[INVOICE, D1]),
                         record("C2", "Roy", addresses=[D2])])  # fmt: skip
    requests = control.get("/_sandbox/stats").json()["requests"]
    by_route: dict[str, int] = {}
    for r in requests:
        name = f"{r['method']} {r['route']} {r['status']}"
        by_route[name] = by_route.get(name, 0) + int(r["count"])
    assert by_route.get("GET /api/companies 429") == 1, by_route
    assert not [r for r in by_route if "GET /api/companies/{id}/addresses" in r], by_route
    assert by_route["POST /api/companies/{id}/addresses 201"] == 2, by_route
    ids = {c["externalId"]: str(c["id"]) for c in companies(hipe).values()}
    assert {k: e.target_id for k, e in ledgers.items()} == ids
    assert stored(control, hipe, "C1") == by_code(INVOICE, D1)
    assert stored(control, hipe, "C2") == [D2]
