"""What ``erpsync adopt link`` learns of one Atollon contact (``AtollonAdopter.find``),
against the Atollon simulator over real HTTP: Atollon links by name, so a contact whose
name another contact without our id shares cannot be linked, nor a person contact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters import make_client
from delivery.sinks.adoption import AtollonAdopter, TargetRecord
from delivery.sinks.atollon import AtollonSink
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings
from simulators.atollon import AtollonSimulator
from simulators.server import CREDENTIALS, RunningSandbox


@pytest.fixture
def running() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as sandbox:
        yield sandbox


@pytest.fixture
def adopter(running: RunningSandbox) -> Iterator[AtollonAdopter]:
    settings = AtollonSettings(
        base_url=running.endpoints["atollon"].api_url,
        instance=CREDENTIALS["atollon"]["instance"],
        page_size=2,  # several pages
    )
    sink = AtollonSink(settings, make_client(settings), {"customer": TargetMapping()})
    yield AtollonAdopter(sink)
    sink.close()


def add(running: RunningSandbox, body: dict[str, Any]) -> str:
    """A contact typed by hand (through the sandbox's load route); its id."""
    with httpx.Client(base_url=running.endpoints["atollon"].url) as control:
        answer = control.post("/_sandbox/load/contacts", json=[body])
        answer.raise_for_status()
    return str(answer.json()["records"][0]["contactId"])


def company(name: str, system: str, key: str) -> dict[str, Any]:
    return {"company": {"companyName": name}, "externalId": [{"system": system, "id": key}]}


def test_find_says_whose_a_contact_is_and_why_it_cannot_be_linked(
    adopter: AtollonAdopter, running: RunningSandbox
) -> None:
    ours = add(running, company("Boulangerie Roy", "onlineerp", "C-1"))
    free = add(running, company("Fromagerie Côté", "legacy", "L-1"))
    twin = add(running, company("Épicerie Nord", "legacy", "L-2"))
    other_twin = add(running, company("ÉPICERIE  NORD", "legacy", "L-3"))
    person = add(running, {"person": {"firstName": "Ana", "lastName": "Roy"},
                           "externalId": [{"system": "legacy", "id": "L-4"}]})  # fmt: skip

    assert adopter.find(ours) == TargetRecord(ours, "Boulangerie Roy", "C-1")
    assert adopter.find(free) == TargetRecord(free, "Fromagerie Côté", None)
    assert adopter.find(twin) == TargetRecord(
        twin, "Épicerie Nord", None,
        refused=f"Atollon links by name, and contact {other_twin} without our id has the "
        "same name: rename one of them in Atollon first",
    )  # fmt: skip
    assert adopter.find(person) == TargetRecord(
        person, None, None, refused="it is a person contact, not a company"
    )
    assert adopter.find("999999") is None
