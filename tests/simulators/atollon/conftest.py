"""The Atollon sandbox served over real HTTP (one per folder) and a client on an empty one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.atollon import AtollonSimulator
from simulators.server import RunningSandbox


@pytest.fixture(scope="package")
def running() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as sandbox:
        yield sandbox


@pytest.fixture
def atollon(running: RunningSandbox) -> Iterator[httpx.Client]:
    """A client of the crawler with ``instance=sandbox``, on an empty simulator."""
    with httpx.Client(
        base_url=running.endpoints["atollon"].url, params={"instance": "sandbox"}, timeout=10
    ) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield client
