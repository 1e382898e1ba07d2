"""The Atollon sink under the engine, against the Atollon simulator over real HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import fakeredis
import httpx
import pytest

from adapters._http import make_client
from erpsync.events import ChangeEvent, Delivery
from erpsync.keys import Keys
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings
from simulators.atollon import AtollonSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from workers.dlq import DeadLetterStore
from workers.engine import Engine, Sink
from workers.limits import Circuit
from workers.policy import RetryPolicy
from workers.sinks.atollon import INACTIVE_GROUP, AtollonSink
from workers.state import State


@pytest.fixture
def atollon() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as running:
        yield running


@pytest.fixture
def engine(atollon: RunningSandbox) -> Iterator[Engine]:
    settings = AtollonSettings(
        base_url=atollon.endpoints["atollon"].api_url, instance=CREDENTIALS["atollon"]["instance"]
    )
    sink = AtollonSink(settings, make_client(settings), {"customer": TargetMapping()})
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = Keys("t")
    sinks: Mapping[str, Sink] = {"atollon": sink}
    yield Engine(
        state=State(client, keys),
        circuit=Circuit(client, keys),
        dlq=DeadLetterStore(client, keys),
        sinks=lambda: sinks,
        policy=RetryPolicy(),
        rng=random.Random(5),
    )
    sink.close()


def change(key: str, version: int, *, active: bool) -> Delivery:
    payload = {"key": key, "name": f"Company {key}", "parent_key": None, "active": active}
    event = ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key=key,
        operation="upsert",
        payload=payload,
        source_version=version,
    )
    return Delivery(event=event, target="atollon")


def control(atollon: RunningSandbox) -> httpx.Client:
    return httpx.Client(base_url=atollon.endpoints["atollon"].url, timeout=10)


def groups(atollon: RunningSandbox, key: str) -> set[str]:
    with control(atollon) as client:
        contacts: list[dict[str, Any]] = client.get("/_sandbox/records/contacts").json()
    (contact,) = [c for c in contacts if any(e.get("id") == key for e in c.get("externalId") or [])]
    return {str(g.get("name")) for g in contact.get("contactGroup") or []}


def test_a_reactivation_after_a_deactivation_whose_answer_was_lost_leaves_inactive(
    engine: Engine, atollon: RunningSandbox
) -> None:
    assert engine.process(change("C1", 1, active=True)) == "applied"
    # Atollon applies the deactivation, then the connection drops before its answer.
    with control(atollon) as client:
        rule = {"drop_rate": 1.0, "drop_phase": "after", "methods": ["POST"], "count": 1}
        client.post("/_sandbox/faults", json=rule).raise_for_status()
    deactivation = change("C1", 2, active=False)
    assert engine.process(deactivation) == "parked"  # a retry, as for any dropped answer
    assert INACTIVE_GROUP in groups(atollon, "C1")

    # Reactivated in the ERP (the content of version 1 again) before the retry comes.
    assert engine.process(change("C1", 3, active=True)) == "applied"
    assert INACTIVE_GROUP not in groups(atollon, "C1")

    members = engine.state.claim_due(now=engine.clock() + 1e6)
    engine.state.done(members)
    (retry,) = [Delivery.model_validate(json.loads(m)) for m in members]
    assert engine.process(retry) == "skipped"  # stale: version 2 < 3
    assert INACTIVE_GROUP not in groups(atollon, "C1")


def test_a_first_write_that_deactivates_and_loses_its_answer_leaves_no_contact_inactive(
    engine: Engine, atollon: RunningSandbox
) -> None:
    """Found by the chaos run (issue 8): a customer deactivated before its creation reached
    Atollon; the deactivation's upsert was applied, its answer lost; the create retried
    then kept the contact in the Inactive group, and the ledger said active."""
    with control(atollon) as client:
        rule = {"drop_rate": 1.0, "drop_phase": "after", "methods": ["POST"], "count": 1}
        client.post("/_sandbox/faults", json=rule).raise_for_status()
    assert engine.process(change("C1", 2, active=False)) == "parked"
    assert INACTIVE_GROUP in groups(atollon, "C1"), "Atollon took the write"

    # Reactivated in the ERP before the retry comes back.
    assert engine.process(change("C1", 3, active=True)) == "applied"
    assert INACTIVE_GROUP not in groups(atollon, "C1")
