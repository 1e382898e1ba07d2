"""ERP people → Atollon person contacts, under the engine, against the Atollon simulator.

A person waits for its employer, then is created as a person contact bound to it
(``companyPersonRelation``, by the employer's external id; by its name when Atollon does
not know the id, the crawler's documented fallback); edits and clears follow; the
deactivation works as the customers' (``deactivation = "group"``: the ``Inactive`` group);
a deletion leaves it as it was (a known limit). Each stored person is compared whole with
what the crawler page says it stores, and reconcile's two views agree.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest

from adapters import make_client
from adapters.atollon import AtollonCompany, AtollonContactInput
from delivery.engine import Engine, Sink
from delivery.sinks.atollon import AtollonSink
from delivery.sinks.atollon_persons import AtollonPersonSink, person_system
from delivery.sinks.router import ViewableSinkRouter, route
from erpsync.events import Delivery
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings
from simulators.atollon import AtollonSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support import customer_event, delivery_of, make_event
from tests.support.engine import engine_over

ERP = "onlineerp"
_versions = itertools.count(1)


@pytest.fixture
def atollon() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as running:
        yield running


@pytest.fixture
def build(atollon: RunningSandbox) -> Iterator[Callable[..., tuple[Engine, ViewableSinkRouter]]]:
    built: list[ViewableSinkRouter] = []

    def make(**options: Any) -> tuple[Engine, ViewableSinkRouter]:
        engine, router = _build(atollon, **options)
        built.append(router)
        return engine, router

    yield make
    for router in built:
        router.close()


def _build(atollon: RunningSandbox, **options: Any) -> tuple[Engine, ViewableSinkRouter]:
    settings = AtollonSettings(
        base_url=atollon.endpoints["atollon"].api_url,
        instance=CREDENTIALS["atollon"]["instance"],
        page_size=3,
        **options,
    )
    mappings = {"customer": TargetMapping(), "person": TargetMapping()}
    sinks: list[Sink] = [
        AtollonSink(settings, make_client(settings), mappings),
        AtollonPersonSink(settings, make_client(settings), mappings),
    ]
    router = route("atollon", sinks)
    assert isinstance(router, ViewableSinkRouter)
    engine = engine_over("atollon", router, seed=5)
    return engine, router


def person(key: str = "P1", *, op: str = "upsert", **fields: Any) -> Delivery:
    payload: dict[str, Any] = {
        "key": key, "employer_key": "C1", "employer_name": "Dupont inc.",
        "first_name": "Marie", "last_name": "Tremblay", "email": "marie@dupont.ca",
        "phone": "+1 514 555 0101", "mobile": "+1 438 555 0102", "job_title": "Comptable",
        "active": True, **fields,
    }  # fmt: skip
    if op == "delete":
        payload = {"key": key, "active": False}
    event = make_event(
        payload, flow="contacts", entity="person", operation=op, version=next(_versions),
        parent_key=payload.get("employer_key"),
    )  # fmt: skip
    return delivery_of(event, "atollon")


def company(key: str = "C1", name: str = "Dupont inc.") -> Delivery:
    return delivery_of(customer_event(key, name, version=next(_versions)), "atollon")


def contacts(atollon: RunningSandbox) -> list[dict[str, Any]]:
    with httpx.Client(base_url=atollon.endpoints["atollon"].url, timeout=10) as client:
        found: list[dict[str, Any]] = client.get("/_sandbox/records/contacts").json()
    return found


def stored_person(atollon: RunningSandbox, key: str) -> dict[str, Any]:
    system = person_system(ERP)
    (record,) = [
        c
        for c in contacts(atollon)
        if {"system": system, "id": key} in [dict(e) for e in c.get("externalId") or []]
    ]
    company_ids = {
        c["contactId"]: [e["id"] for e in c["externalId"] if e["system"] == ERP]
        for c in contacts(atollon)
        if c["contactType"] == "company"
    }
    channels = record["contacts"]
    return {
        "type": record["contactType"],
        "firstName": record["person"]["firstName"],
        "lastName": record["person"]["lastName"],
        "employers": [
            company_ids[r["companyId"]] for r in record["person"]["companyPersonRelation"]
        ],
        "position": [r["positionDesc"] for r in record["person"]["companyPersonRelation"]],
        "email": [e["contact"] for e in channels["email"]],
        "phone": [e["contact"] for e in channels["phone"]],
        "mobile": [e["contact"] for e in channels["mobile"]],
        "groups": [g["name"] for g in record["contactGroup"]],
    }


def from_erp(record: Mapping[str, Any], groups: list[str] | None = None) -> dict[str, Any]:
    """What the crawler stores for an ERP person: every value, every absence."""
    return {
        "type": "person",
        "firstName": record["first_name"],
        "lastName": record["last_name"],
        "employers": [[record["employer_key"]]],
        "position": [record["job_title"]],
        "email": [record["email"]] if record["email"] else [],
        "phone": [record["phone"]] if record["phone"] else [],
        "mobile": [record["mobile"]] if record["mobile"] else [],
        "groups": groups or [],
    }


def views_agree(router: ViewableSinkRouter, payload: Mapping[str, Any]) -> None:
    observed = {o.key: o.fields for o in router.observed("person")}
    limits = set(router.known_limits("person"))
    seen = {f: v for f, v in observed[payload["key"]].items() if f not in limits}
    expected = router.expected("person", payload)
    assert seen == {f: v for f, v in expected.items() if f not in limits}


def test_a_person_waits_for_its_company_is_bound_to_it_and_follows_edits_and_clears(
    atollon: RunningSandbox, build: Callable[..., tuple[Engine, ViewableSinkRouter]]
) -> None:
    engine, router = build()
    first = person()
    assert engine.process(first) == "parked"  # its employer is not in Atollon yet
    members = engine.state.claim_due(now=engine.clock() + 1e6)
    engine.state.done(members)
    (waiting,) = [Delivery.model_validate(json.loads(m)) for m in members]
    assert waiting.last_error is not None
    assert waiting.last_error["vendor_code"] == "parent-not-synced"
    assert engine.process(company()) == "applied"
    assert engine.process(waiting) == "applied"
    assert stored_person(atollon, "P1") == from_erp(first.event.payload)
    views_agree(router, first.event.payload)

    cleared = person(first_name=None, email=None, mobile=None, job_title=None, phone="450")
    assert engine.process(cleared) == "applied"
    assert stored_person(atollon, "P1") == from_erp(cleared.event.payload)
    views_agree(router, cleared.event.payload)
    people = [c for c in contacts(atollon) if c["contactType"] == "person"]
    assert len(people) == 1, "updated in place, by its external id"
    assert [o.key for o in router.observed("customer")] == ["C1"], "persons apart"


def test_a_person_moved_to_another_customer_is_bound_to_that_company_only(
    atollon: RunningSandbox, build: Callable[..., tuple[Engine, ViewableSinkRouter]]
) -> None:
    engine, router = build()
    assert engine.process(company()) == "applied"
    assert engine.process(company("C2", "Roy ltée")) == "applied"
    assert engine.process(person()) == "applied"
    moved = person(employer_key="C2", employer_name="Roy ltée")
    assert engine.process(moved) == "applied"
    assert stored_person(atollon, "P1") == from_erp(moved.event.payload)
    views_agree(router, moved.event.payload)


def test_deactivation_as_for_customers_and_a_deletion_leaves_the_person_as_it_was(
    atollon: RunningSandbox, build: Callable[..., tuple[Engine, ViewableSinkRouter]]
) -> None:
    engine, router = build(deactivation="group")
    assert engine.process(company()) == "applied"
    assert engine.process(person()) == "applied"
    inactive = person(active=False, job_title="Retraitée")
    assert engine.process(inactive) == "applied"
    assert stored_person(atollon, "P1") == from_erp(inactive.event.payload, ["Inactive"])
    observed = {o.key: o.fields for o in router.observed("person")}
    assert observed["P1"]["active"] is False
    assert router.known_limits("person") == ["active"]
    assert engine.process(person(op="delete")) == "applied"
    assert stored_person(atollon, "P1") == from_erp(inactive.event.payload, ["Inactive"])


def test_an_employer_atollon_does_not_know_by_id_is_found_by_its_name(
    atollon: RunningSandbox,
) -> None:
    settings = AtollonSettings(
        base_url=atollon.endpoints["atollon"].api_url,
        instance=CREDENTIALS["atollon"]["instance"],
    )
    sink = AtollonPersonSink(settings, make_client(settings), {"person": TargetMapping()})
    by_hand = AtollonContactInput(company=AtollonCompany(company_name="Fait main"))
    hand = sink.client.upsert_contact(by_hand)  # a company without any ERP id
    body = sink.contact_input(person(employer_key="C9", employer_name="Fait main").event.payload)
    answer = sink.client.upsert_contact(body)
    (stored,) = [c for c in contacts(atollon) if c["contactId"] == answer.contact_id]
    (relation,) = stored["person"]["companyPersonRelation"]
    assert relation["companyId"] == hand.contact_id
    assert len(contacts(atollon)) == 2, "bound to it, no company created"
    sink.close()
