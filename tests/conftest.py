"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from simulators.server import RunningSandbox


@pytest.fixture(scope="session")
def run_id() -> str:
    """A token unique to this test run, for Redis key prefixes and queue names."""
    return f"t{os.getpid()}{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    """All four simulators over real HTTP on 127.0.0.1 (free ports), for the session.

    Tests that change state reset it first (``POST /_sandbox/reset``) or use
    :func:`fresh_sandbox`.
    """
    with RunningSandbox() as running:
        yield running
