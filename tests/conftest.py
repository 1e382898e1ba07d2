"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from kombu.transport import memory

from cli.embedded_redis import EmbeddedRedis
from simulators.server import RunningSandbox

REDIS_ENV = "ERPSYNC_TEST_REDIS_URL"

# Hypothesis tests assert behaviour, not speed (speed lives in bench/): on a shared two-core
# machine running the suite in two processes, its per-example deadline and "too slow"
# health checks failed tests whose every example held.
settings.register_profile("erpsync", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("erpsync")

# The shared helpers' asserts report like a test's, and their fixtures load as a plugin
# (``pytest_plugins = ["tests.support.engine"]``) in a module that also imports them.
pytest.register_assert_rewrite("tests.support")


@pytest.fixture(autouse=True)
def _empty_in_memory_broker() -> Iterator[None]:
    """kombu's ``memory://`` queues live as long as the process: empty them after a test."""
    yield
    memory.Channel.queues.clear()
    memory.Channel.events.clear()
    memory.Transport.global_state.clear()


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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The tests' Redis: ``$ERPSYNC_TEST_REDIS_URL``, else an embedded one for the session.

    Every test that writes to it uses a key prefix of its own.
    """
    configured = os.environ.get(REDIS_ENV)
    if configured:
        client = redis.Redis.from_url(configured, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise RuntimeError(f"{REDIS_ENV}={configured} does not answer: {exc}") from exc
        finally:
            client.close()
        yield configured
        return
    with EmbeddedRedis() as embedded:
        os.environ[REDIS_ENV] = embedded.url
        try:
            yield embedded.url
        finally:
            del os.environ[REDIS_ENV]


#: the modules whose runs load both cores by themselves (the chaos run, the benchmark's short
#: run): one work unit, so that two of them never run at once in two processes
HEAVY = ("tests/chaos/", "tests/bench/")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` with the heavy modules as one unit (see :data:`HEAVY`)."""
    if config.getoption("dist", None) != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class HeavyTogether(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(HEAVY):
                return "heavy"
            return str(super()._split_scope(nodeid))

    return HeavyTogether(config, log)


def _start_order(item: pytest.Item) -> int:
    """0 for the modules with minutes-long set-ups (the chaos run, the benchmark's short
    run), 1 for the other integration tests, 2 for the rest."""
    path = item.path.as_posix()
    if any(f"/{heavy}" in path for heavy in HEAVY):
        return 0
    return 1 if item.get_closest_marker("integration") is not None else 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest modules first (a stable sort: each module's own order is kept).

    ``scripts/check`` runs the suite in two processes, a module at a time each
    (``--dist loadscope``, in this order): the long modules start at once and the many
    short ones fill in after, so that both processes finish at about the same time.
    """
    items.sort(key=_start_order)
