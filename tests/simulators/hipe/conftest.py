"""The HIPE sandbox served over real HTTP and a client with the access token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.hipe import HipeSimulator
from simulators.server import RunningSandbox
from tests.support.hipe_sandbox import TOKEN


@pytest.fixture(scope="package")
def served() -> Iterator[tuple[HipeSimulator, str]]:
    simulator = HipeSimulator(notify_after_s=None)  # SENT (4) has a test of its own
    with RunningSandbox(simulators={"hipe": simulator}) as running:
        yield simulator, running.endpoints["hipe"].url


@pytest.fixture
def hipe(served: tuple[HipeSimulator, str]) -> Iterator[httpx.Client]:
    """An authenticated client on a freshly reset simulator."""
    simulator, url = served
    with httpx.Client(base_url=url, headers={"X-ACCESS-TOKEN": TOKEN}, timeout=30) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client
    simulator.release_imports()


@pytest.fixture
def simulator(served: tuple[HipeSimulator, str]) -> HipeSimulator:
    return served[0]
