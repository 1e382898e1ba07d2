"""Worker metrics: engine counters through the observer hook, shared state read on scrape."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import fakeredis
import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from delivery.engine import ApplyContext, ApplyResult, Engine, Sink
from delivery.policy import RetryPolicy
from erpsync.errors import PermanentError, SyncError, TransientError
from erpsync.events import ChangeEvent, Delivery
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import State
from tests.support import customer_event
from workers.metrics import WorkerMetrics

KEYS = Keys("m")


@dataclass
class ScriptedSink:
    """Applies customers in memory, failing with the scripted errors first."""

    target: str = "hipe"
    failures: list[SyncError] = field(default_factory=list)

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        if self.failures:
            raise self.failures.pop(0)
        return ApplyResult("updated" if context.ledger else "created", target_id=f"id-{event.key}")


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def sink() -> ScriptedSink:
    return ScriptedSink()


@pytest.fixture
def engine(client: fakeredis.FakeRedis, sink: ScriptedSink) -> Engine:
    sinks: Mapping[str, Sink] = {"hipe": sink}
    return Engine(
        state=State(client, KEYS),
        circuit=Circuit(client, KEYS, failure_threshold=3, cooldown_s=10),
        dlq=DeadLetterStore(client, KEYS),
        sinks=lambda: sinks,
        policy=RetryPolicy(transient_max_attempts=3, dependency_max_waits=2),
        rng=random.Random(7),
    )


def metrics_for(client: fakeredis.FakeRedis, discovery_interval_s: float = 60.0) -> WorkerMetrics:
    return WorkerMetrics(
        client,
        KEYS,
        ["hipe", "propeller"],
        registry=CollectorRegistry(),
        process_metrics=False,
        discovery_interval_s=discovery_interval_s,
    )


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def deliver(engine: Engine, key: str, name: str = "Acme", version: int = 1) -> str:
    delivery = Delivery(event=customer_event(key, name=name, version=version), target="hipe")
    engine.state.mark_produced("hipe", delivery.delivery_id)
    return engine.process(delivery)


def test_outcome_counters_match_the_engines_own_counters(
    engine: Engine, sink: ScriptedSink, client: fakeredis.FakeRedis
) -> None:
    metrics = metrics_for(client)
    metrics.attach(engine)
    metrics.attach(engine)  # attaching twice must not count twice

    for key in ("C1", "C2", "C3"):
        assert deliver(engine, key) == "applied"
    assert deliver(engine, "C1", version=2) == "skipped"  # the same content detected again
    assert deliver(engine, "C1", name="Acme 2", version=3) == "applied"  # an update
    sink.failures.append(
        PermanentError("ambiguous", system="hipe", operation="upsert", vendor_code="40005")
    )
    assert deliver(engine, "C4") == "dead_lettered"
    sink.failures.append(TransientError("busy", system="hipe", operation="upsert", status_code=503))
    assert deliver(engine, "C5") == "parked"

    counters = engine.state.counters("hipe")
    applied = {
        action: value(
            metrics,
            "erpsync_outcomes_total",
            target="hipe",
            flow="customers",
            outcome="applied",
            detail=action,
        )
        for action in ("created", "updated")
    }
    assert applied == {"created": 3.0, "updated": 1.0}
    assert sum(v or 0 for v in applied.values()) == counters["applied"] == 4
    assert counters["action_created"] == 3
    skipped = value(
        metrics,
        "erpsync_outcomes_total",
        target="hipe",
        flow="customers",
        outcome="skipped",
        detail="unchanged",
    )
    assert skipped == counters["skipped"] == 1
    assert value(metrics, "erpsync_dead_letters_total", target="hipe", code="40005") == 1.0
    assert counters["dead_lettered"] == 1
    assert value(metrics, "erpsync_retries_total", target="hipe", code="http-503") == 1.0
    assert counters["retries"] == 1


def test_dlq_depth_by_code_and_the_shared_state_are_read_on_scrape(
    engine: Engine, sink: ScriptedSink, client: fakeredis.FakeRedis
) -> None:
    for key in ("C1", "C2"):
        sink.failures.append(
            PermanentError("ambiguous", system="hipe", operation="upsert", vendor_code="40005")
        )
        assert deliver(engine, key) == "dead_lettered"

    # Another worker's metrics: it did not see the dead letters, it discovers them.
    other = metrics_for(client)
    assert value(other, "erpsync_state_store_up") == 1.0
    assert value(other, "erpsync_dlq_depth", target="hipe", code="40005") == 2.0
    assert value(other, "erpsync_dlq_entries") == 2.0

    # A replayed entry leaves the queue: depth goes to 0 (the series stays).
    entry_id = engine.dlq.ids()[0]
    engine.dlq.remove(entry_id)
    assert value(other, "erpsync_dlq_depth", target="hipe", code="40005") == 1.0

    # Circuits: one-hot state per target; a paused target says so.
    engine.circuit.pause("propeller")
    states = {
        s: value(other, "erpsync_circuit_state", target="propeller", state=s)
        for s in ("closed", "open", "half_open", "paused")
    }
    assert states == {"closed": 0.0, "open": 0.0, "half_open": 0.0, "paused": 1.0}
    assert value(other, "erpsync_circuit_state", target="hipe", state="closed") == 1.0

    # In flight and delayed: a parked retry shows in the delayed set.
    sink.failures.append(TransientError("busy", system="hipe", operation="upsert", status_code=503))
    assert deliver(engine, "C9") == "parked"
    assert value(other, "erpsync_delayed_deliveries") == 1.0
    assert value(other, "erpsync_queue_depth", target="hipe") == 0.0
    assert value(other, "erpsync_queue_head_age_seconds", target="hipe") == 0.0


def test_a_code_dead_lettered_here_is_reported_before_the_next_discovery(
    engine: Engine, sink: ScriptedSink, client: fakeredis.FakeRedis
) -> None:
    metrics = metrics_for(client, discovery_interval_s=3600.0)
    metrics.attach(engine)
    assert value(metrics, "erpsync_dlq_entries") == 0.0  # first scrape: discovery done

    sink.failures.append(
        PermanentError("schema", system="hipe", operation="upsert", vendor_code="10007")
    )
    assert deliver(engine, "C1") == "dead_lettered"
    assert value(metrics, "erpsync_dlq_depth", target="hipe", code="10007") == 1.0


def test_an_unreachable_redis_is_a_gauge_not_a_failed_scrape() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = redis.Redis(
        port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0), decode_responses=True
    )
    metrics = WorkerMetrics(
        dead, KEYS, ["hipe"], registry=CollectorRegistry(), process_metrics=False
    )
    assert value(metrics, "erpsync_state_store_up") == 0.0
    assert b"erpsync_state_store_up 0.0" in metrics.render()


def test_serves_on_loopback_by_default() -> None:
    metrics = metrics_for(fakeredis.FakeRedis(decode_responses=True))
    port = metrics.serve(0)
    try:
        assert metrics._server is not None
        assert metrics._server.server_address[0] == "127.0.0.1"
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert answer.status_code == 200
        assert "erpsync_queue_depth" in answer.text
    finally:
        metrics.stop()


def test_drift_of_each_flows_last_reconcile_is_a_gauge(client: fakeredis.FakeRedis) -> None:
    metrics = WorkerMetrics(
        client,
        KEYS,
        ["hipe", "propeller"],
        registry=CollectorRegistry(),
        process_metrics=False,
        flows=["customers", "products"],
    )
    assert value(metrics, "erpsync_drift_records", flow="customers", target="hipe",
                 kind="missing") is None, "never reconciled: no series"  # fmt: skip
    summary = {
        "flow": "customers",
        "finished_at": 1_700_000_000.5,
        "targets": {
            "hipe": {"checked": 10, "in_sync": 6, "missing": 1, "different": 2, "orphaned": 0,
                     "duplicates": 1, "invalid_source": 0},
            "atollon": {"checked": 0, "missing": 0, "not_checked": "circuit open"},
        },
    }  # fmt: skip
    client.set(KEYS.reconcile_last("customers"), json.dumps({"summary": summary}))
    found = {
        kind: value(metrics, "erpsync_drift_records", flow="customers", target="hipe", kind=kind)
        for kind in ("missing", "different", "orphaned", "duplicates")
    }
    assert found == {"missing": 1.0, "different": 2.0, "orphaned": 0.0, "duplicates": 1.0}
    assert value(metrics, "erpsync_drift_records", flow="customers", target="atollon",
                 kind="missing") is None, "a target not checked has no drift figure"  # fmt: skip
    assert value(metrics, "erpsync_reconcile_finished_seconds", flow="customers") == 1_700_000_000.5
    assert value(metrics, "erpsync_reconcile_finished_seconds", flow="products") is None
