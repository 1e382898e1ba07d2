"""ERP people → HIPE contacts, under the engine, against the HIPE simulator over real HTTP.

A person waits for its employer's company, then is created linked to it (``collaborationIds``);
edits and clears follow; a deactivation or a deletion archives it, a reactivation unarchives
it; reconcile's two views agree. Both id kinds HIPE may serve (integers, UUIDs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from delivery.engine import Engine, Sink
from delivery.sinks.hipe import HipeSink
from delivery.sinks.hipe_contacts import HipeContactSink
from delivery.sinks.router import BulkSinkRouter, route
from erpsync.events import Delivery
from erpsync.mapping import TargetMapping
from erpsync.settings import HipeSettings
from simulators.hipe import HipeSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support import customer_event, delivery_of, make_event
from tests.support.engine import engine_over


@pytest.fixture(params=["int", "uuid"])
def hipe(request: pytest.FixtureRequest) -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"hipe": HipeSimulator(ids=request.param)}) as running:
        yield running


@pytest.fixture
def sink(hipe: RunningSandbox) -> Iterator[Sink]:
    settings = HipeSettings(
        base_url=hipe.endpoints["hipe"].api_url,
        access_token=SecretStr(CREDENTIALS["hipe"]["access_token"]),
    )
    mappings = {"customer": TargetMapping(), "person": TargetMapping()}
    companies = HipeSink(settings, make_client(settings), mappings)
    people = HipeContactSink(settings, make_client(settings), mappings)
    routed = route("hipe", [companies, people])
    yield routed
    companies.close()
    people.close()


@pytest.fixture
def engine(sink: Sink) -> Engine:
    return engine_over("hipe", sink, seed=3)


def person(key: str, version: int, *, operation: str = "upsert", **fields: Any) -> Delivery:
    payload: dict[str, Any] = {
        "key": key,
        "employer_key": "C1",
        "first_name": "Marie",
        "last_name": "Tremblay",
        "email": "marie@exemple.qc.ca",
        "phone": "+1 514 555 0101",
        "mobile": None,
        "job_title": "Comptable",
        "active": True,
        **fields,
    }
    if operation == "delete":
        payload = {"key": key, "active": False}
    parent = payload.get("employer_key")
    event = make_event(
        payload, flow="contacts", entity="person", version=version, operation=operation,
        parent_key=parent,
    )  # fmt: skip
    return delivery_of(event)


def contacts(hipe: RunningSandbox) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{hipe.endpoints['hipe'].url}/_sandbox/records/contacts", timeout=10)
    return {str(c["externalId"]): c for c in answer.json()}


def company_id(hipe: RunningSandbox, key: str) -> Any:
    answer = httpx.get(f"{hipe.endpoints['hipe'].url}/_sandbox/records/companies", timeout=10)
    return next(c["id"] for c in answer.json() if c["externalId"] == key)


def fields(stored: dict[str, Any]) -> dict[str, Any]:
    names = ("firstName", "lastName", "email", "phoneNumber", "mobilePhone", "job")
    return {name: stored[name] for name in (*names, "collaborationIds", "archived")}


def test_a_person_waits_for_its_company_then_follows_edits_clears_and_its_lifecycle(
    engine: Engine, hipe: RunningSandbox
) -> None:
    assert engine.process(person("P1", 1)) == "parked"  # C1 is not in HIPE yet
    members = engine.state.claim_due(now=engine.clock() + 1e6)
    engine.state.done(members)
    waiting = [Delivery.model_validate(json.loads(m)) for m in members]
    assert [w.last_error["vendor_code"] for w in waiting if w.last_error] == ["parent-not-synced"]
    assert contacts(hipe) == {}

    assert engine.process(delivery_of(customer_event("C1", "Un inc."))) == "applied"
    assert engine.process(waiting[0]) == "applied"
    employer = [company_id(hipe, "C1")]
    assert fields(contacts(hipe)["P1"]) == {
        "firstName": "Marie", "lastName": "Tremblay", "email": "marie@exemple.qc.ca",
        "phoneNumber": "+1 514 555 0101", "mobilePhone": None, "job": "Comptable",
        "collaborationIds": employer, "archived": False,
    }  # fmt: skip

    edited: dict[str, Any] = {
        "first_name": None,
        "email": None,
        "mobile": "+1 438 555 0199",
        "job_title": "PDG",
    }
    assert engine.process(person("P1", 2, **edited)) == "applied"
    assert fields(contacts(hipe)["P1"]) == {
        "firstName": None, "lastName": "Tremblay", "email": None,
        "phoneNumber": "+1 514 555 0101", "mobilePhone": "+1 438 555 0199", "job": "PDG",
        "collaborationIds": employer, "archived": False,
    }  # fmt: skip

    assert engine.process(person("P1", 3, active=False, last_name="Roy")) == "applied"
    assert contacts(hipe)["P1"]["archived"] is True
    assert contacts(hipe)["P1"]["lastName"] == "Roy", "an archived person's fields follow"
    assert engine.process(person("P1", 4, last_name="Roy")) == "applied"
    assert fields(contacts(hipe)["P1"])["archived"] is False
    assert engine.process(person("P1", 5, operation="delete")) == "applied"
    assert contacts(hipe)["P1"]["archived"] is True
    assert len(contacts(hipe)) == 1


def test_a_person_moved_to_another_customer_is_linked_to_that_company_only(
    engine: Engine, hipe: RunningSandbox
) -> None:
    for key in ("C1", "C2"):
        assert engine.process(delivery_of(customer_event(key, f"Client {key}"))) == "applied"
    assert engine.process(person("P1", 1)) == "applied"
    assert engine.process(person("P1", 2, employer_key="C2")) == "applied"
    assert contacts(hipe)["P1"]["collaborationIds"] == [company_id(hipe, "C2")]


def test_an_inactive_person_hipe_lacks_is_created_archived_once_its_company_is_there(
    engine: Engine, hipe: RunningSandbox
) -> None:
    assert engine.process(person("P2", 1, active=False)) == "parked"
    assert engine.process(delivery_of(customer_event("C1", "Un inc."))) == "applied"
    assert engine.process(person("P2", 2, active=False)) == "applied"
    stored = contacts(hipe)["P2"]
    assert (stored["archived"], stored["collaborationIds"]) == (True, [company_id(hipe, "C1")])
    assert engine.process(person("P3", 1, operation="delete")) == "applied"
    assert "P3" not in contacts(hipe), "a person deleted before HIPE had it: nothing to do"


def test_reconcile_views_agree_and_show_what_differs(
    engine: Engine, sink: Sink, hipe: RunningSandbox
) -> None:
    assert isinstance(sink, BulkSinkRouter), "companies keep their bulk path beside contacts"
    assert engine.process(delivery_of(customer_event("C1", "Un inc."))) == "applied"
    assert engine.process(person("P1", 1)) == "applied"
    assert engine.process(person("P2", 1, active=False, mobile="+1 438 555 0100")) == "applied"
    source = {d.event.key: d.event.payload for d in (person("P1", 1), person("P2", 1))}
    source["P2"] = {**source["P2"], "active": False, "mobile": "+1 438 555 0100"}
    observed = {o.key: o.fields for o in sink.observed("person")}
    expected = {k: sink.expected("person", p) for k, p in source.items()}
    assert observed == expected
    assert observed["P1"]["employer_key"] == "C1"
    assert sink.known_limits("person") == []
    assert observed["P2"]["active"] is False
