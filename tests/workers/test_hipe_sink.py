"""The HIPE sink under the engine, against the HIPE simulator over real HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import SecretStr

from adapters._http import make_client
from erpsync.events import ChangeEvent, Delivery
from erpsync.keys import Keys
from erpsync.mapping import TargetMapping
from erpsync.settings import HipeSettings
from simulators.hipe import HipeSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from workers.dlq import DeadLetterStore
from workers.engine import Engine, Sink
from workers.limits import Circuit
from workers.policy import RetryPolicy
from workers.sinks.hipe import HipeSink
from workers.state import State


@pytest.fixture
def hipe() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"hipe": HipeSimulator()}) as running:
        yield running


@pytest.fixture
def engine(hipe: RunningSandbox) -> Iterator[Engine]:
    settings = HipeSettings(
        base_url=hipe.endpoints["hipe"].api_url,
        access_token=SecretStr(CREDENTIALS["hipe"]["access_token"]),
    )
    sink = HipeSink(settings, make_client(settings), {"customer": TargetMapping()})
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = Keys("t")
    sinks: Mapping[str, Sink] = {"hipe": sink}
    yield Engine(
        state=State(client, keys),
        circuit=Circuit(client, keys),
        dlq=DeadLetterStore(client, keys),
        sinks=lambda: sinks,
        policy=RetryPolicy(),
        rng=random.Random(3),
    )
    sink.close()


def change(key: str, version: int, *, active: bool = True, parent: str | None = None) -> Delivery:
    payload = {"key": key, "name": f"Company {key}", "parent_key": parent, "active": active}
    event = ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key=key,
        operation="upsert",
        payload=payload,
        source_version=version,
        parent_key=parent,
    )
    return Delivery(event=event, target="hipe")


def parked(engine: Engine) -> list[Delivery]:
    """Take every parked delivery, due or not."""
    members = engine.state.claim_due(now=engine.clock() + 1e6)
    engine.state.done(members)
    return [Delivery.model_validate(json.loads(m)) for m in members]


def companies(hipe: RunningSandbox) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{hipe.endpoints['hipe'].url}/_sandbox/records/companies", timeout=10)
    return {str(c["externalId"]): c for c in answer.json()}


def test_a_child_waits_for_a_parent_known_only_as_deactivated_then_links_to_it(
    engine: Engine, hipe: RunningSandbox
) -> None:
    # P's deactivation is applied before P was ever created in HIPE: its ledger names no
    # HIPE company. A child of P must wait for P, not be created without its parent.
    assert engine.process(change("P", 2, active=False)) == "applied"
    ledger = engine.state.ledger_get("hipe", "customer", "P")
    assert ledger is not None
    assert ledger.deleted
    assert ledger.target_id is None

    assert engine.process(change("C", 4, parent="P")) == "parked"
    (waiting,) = parked(engine)
    assert waiting.last_error is not None
    assert waiting.last_error["vendor_code"] == "parent-not-synced"
    assert "C" not in companies(hipe)

    assert engine.process(change("P", 3)) == "applied"  # P reactivated: created in HIPE
    assert engine.process(waiting) == "applied"
    stored = companies(hipe)
    assert stored["C"]["parentId"] == stored["P"]["id"]
