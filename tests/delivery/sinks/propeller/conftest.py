"""The Propeller simulator served over real HTTP (one per folder), its control surface reset
for each test, and the rig (tests.support.propeller_sink.Rig) over them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.propeller import PropellerSimulator
from simulators.server import RunningSandbox
from tests.support.propeller_sink import Rig


@pytest.fixture(scope="package")
def sandbox() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"propeller": PropellerSimulator()}) as running:
        yield running


@pytest.fixture
def control(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.endpoints["propeller"].url, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        http.delete("/_sandbox/stats").raise_for_status()
        yield http


@pytest.fixture
def rig(sandbox: RunningSandbox, control: httpx.Client) -> Iterator[Rig]:
    made = Rig(sandbox, control)
    yield made
    made.close()


@pytest.fixture
def strict(sandbox: RunningSandbox) -> Iterator[None]:
    """The sandbox follows the endpoint reference: no e-mail or phone in bulk items."""
    simulator = sandbox.simulators["propeller"]
    assert isinstance(simulator, PropellerSimulator)
    simulator.bulk_mode = "strict"
    yield
    simulator.bulk_mode = "guide"
