"""An engine over fakeredis with a scripted bulk sink, on a test clock."""

from __future__ import annotations

import fakeredis
import pytest

from delivery.engine import Engine
from tests.support import Clock
from tests.support.bulk import TARGET, BulkScriptedSink
from tests.support.engine import make_engine


@pytest.fixture
def sink() -> BulkScriptedSink:
    return BulkScriptedSink()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(sink: BulkScriptedSink, clock: Clock) -> Engine:
    return make_engine(fakeredis.FakeRedis(decode_responses=True), {TARGET: sink}, clock)
