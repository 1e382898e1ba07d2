"""A fakeredis client for the billing saga run through the engine."""

from __future__ import annotations

import fakeredis
import pytest


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)
