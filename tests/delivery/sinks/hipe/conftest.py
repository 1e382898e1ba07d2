"""The HIPE simulator served over real HTTP, and an engine or a mapped sink over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from adapters import make_client
from delivery.engine import Engine
from delivery.sinks.hipe import HipeSink
from erpsync.mapping import TargetMapping
from erpsync.settings import HipeSettings
from simulators.hipe import HipeSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support.engine import engine_over
from tests.support.hipe_sink import CUSTOM


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
    yield engine_over("hipe", sink, seed=3)
    sink.close()


@pytest.fixture
def mapped(hipe: RunningSandbox) -> Iterator[tuple[Engine, HipeSink]]:
    settings = HipeSettings(
        base_url=hipe.endpoints["hipe"].api_url,
        access_token=SecretStr(CREDENTIALS["hipe"]["access_token"]),
        page_size=2,  # several pages with a handful of companies
    )
    sink = HipeSink(settings, make_client(settings), {"customer": CUSTOM})
    engine = engine_over("hipe", sink, seed=3)
    yield engine, sink
    sink.close()
