"""The Propeller simulator on a test clock and its clients (anonymous and authorised)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.propeller import PropellerSimulator
from simulators.server import RunningSandbox
from tests.support import Clock
from tests.support.propeller_sandbox import CREDENTIALS, START


@pytest.fixture(scope="package")
def clock() -> Clock:
    return Clock(START)


@pytest.fixture(scope="package")
def simulator(clock: Clock) -> PropellerSimulator:
    return PropellerSimulator(clock=clock)


@pytest.fixture(scope="package")
def base_url(simulator: PropellerSimulator) -> Iterator[str]:
    with RunningSandbox(simulators={"propeller": simulator}) as running:
        yield running.endpoints["propeller"].url


@pytest.fixture
def anon(base_url: str, clock: Clock) -> Iterator[httpx.Client]:
    """A client without a token, on an empty simulator, at the start time."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        clock.now = START
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


@pytest.fixture
def api(anon: httpx.Client) -> httpx.Client:
    """A client holding a fresh bearer token."""
    token = anon.post("/oauth2/token", data=CREDENTIALS).json()["access_token"]
    anon.headers["Authorization"] = f"Bearer {token}"
    return anon
