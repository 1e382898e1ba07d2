"""An engine on fakeredis with a scripted sink: the fixtures of the engine's unit tests.

A test module takes the fixtures with ``pytest_plugins = ["tests.support.engine"]``
(``redis_client``, ``sink``, ``clock``, ``engine``) or builds its own with
:func:`make_engine`; :func:`deliver` and :func:`due` drive it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import fakeredis
import pytest
import redis

from delivery.engine import ApplyContext, ApplyResult, Engine, Sink
from delivery.policy import RetryPolicy
from erpsync.errors import SyncError
from erpsync.events import ChangeEvent, Delivery
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import State
from tests.support.clock import Clock


@dataclass
class ScriptedSink:
    """Applies customers in memory, failing with the scripted errors first."""

    target: str = "hipe"
    failures: list[SyncError] = field(default_factory=list)
    applied: list[tuple[str, str]] = field(default_factory=list)
    parent_required: bool = True
    #: the next write reaches the target, then the worker dies before it hears back
    die_after_write: bool = False

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return self.parent_required

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        if self.failures:
            raise self.failures.pop(0)
        self.applied.append((event.key, event.fingerprint))
        if self.die_after_write:
            self.die_after_write = False
            raise WorkerKilledError
        return ApplyResult("updated" if context.ledger else "created", target_id=f"id-{event.key}")


class WorkerKilledError(BaseException):
    """The worker process dies mid-call (SIGKILL): nothing after the write runs."""


def engine_over(target: str, sink: Sink, *, seed: int) -> Engine:
    """An engine over a fresh fakeredis with the default circuit and retry policy, applying
    ``target``'s deliveries with ``sink`` (the sink tests' engine); ``seed`` seeds the jitter."""
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = Keys("t")
    sinks: Mapping[str, Sink] = {target: sink}
    return Engine(
        state=State(client, keys),
        circuit=Circuit(client, keys),
        dlq=DeadLetterStore(client, keys),
        sinks=lambda: sinks,
        policy=RetryPolicy(),
        rng=random.Random(seed),
    )


def make_engine(
    client: redis.Redis,
    sinks: Mapping[str, Sink],
    clock: Clock,
    *,
    prefix: str = "t",
) -> Engine:
    """The unit tests' engine: the circuit opens after 3 failures (10 s cool-down), 3
    transient attempts, 2 dependency waits, a seeded jitter."""
    keys = Keys(prefix)
    return Engine(
        state=State(client, keys),
        circuit=Circuit(client, keys, failure_threshold=3, cooldown_s=10),
        dlq=DeadLetterStore(client, keys),
        sinks=lambda: sinks,
        policy=RetryPolicy(
            transient_max_attempts=3, dependency_max_waits=2, rate_limited_max_waits=5
        ),
        rng=random.Random(7),
        clock=clock,
    )


def deliver(engine: Engine, ev: ChangeEvent, **kwargs: object) -> str:
    """Produce ``ev`` for ``hipe`` (counted) and process its delivery; the outcome."""
    engine.state.mark_produced("hipe", Delivery(event=ev, target="hipe").delivery_id)
    return engine.process(Delivery(event=ev, target="hipe", **kwargs))  # type: ignore[arg-type]


def due(engine: Engine, clock: Clock) -> list[Delivery]:
    """Take every parked delivery (as if its time had come)."""
    members = engine.state.claim_due(now=clock.now + 1e6)
    engine.state.done(members)
    return [Delivery.model_validate(json.loads(m)) for m in members]


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def sink() -> ScriptedSink:
    return ScriptedSink()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(redis_client: fakeredis.FakeRedis, sink: ScriptedSink, clock: Clock) -> Engine:
    return make_engine(redis_client, {"hipe": sink}, clock)
