"""The OnlineERP sandbox served over real HTTP, its control surface and an authorised client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulators.onlineerp import OnlineErpSimulator
from simulators.server import RunningSandbox
from tests.support.onlineerp_sandbox import LICENCE, SECRET, create, customer, product


@pytest.fixture(scope="package")
def running() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"onlineerp": OnlineErpSimulator()}) as sandbox:
        yield sandbox


@pytest.fixture
def control(running: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.endpoints["onlineerp"].url, timeout=30) as client:
        assert client.post("/_sandbox/reset").status_code == 200
        yield client


@pytest.fixture
def api(running: RunningSandbox, control: httpx.Client) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=running.endpoints["onlineerp"].api_url,
        auth=(LICENCE, SECRET),
        headers={"COMPANY_ID": "0"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def billing_data(api: httpx.Client) -> None:
    create(api, "Customer", customer("C1"))
    create(api, "Product", product("P1", 10.0))
    create(api, "Product", product("P2", 99.0))
