"""Prometheus metrics of a worker: what its engine did, and the shared state it works on.

Two kinds of series, served on ``erpsync worker --metrics-port P`` (127.0.0.1 by default):

* **Counters of this process** (``erpsync_outcomes_total``, ``erpsync_dead_letters_total``,
  ``erpsync_retries_total``, ``erpsync_dependency_waits_total``,
  ``erpsync_auth_failures_total``, ``erpsync_parked_total``), fed by the engine's observer
  hook as deliveries happen. Each worker counts what it did; ``sum()`` them across workers.
* **Gauges of the shared state**, read from Redis on every scrape by a custom collector
  (``erpsync_dlq_depth``, ``erpsync_queue_depth``, ``erpsync_queue_head_age_seconds``,
  ``erpsync_inflight_deliveries``, ``erpsync_delayed_deliveries``, ``erpsync_circuit_state``,
  ``erpsync_circuit_openings``, and from each flow's last reconcile ``erpsync_drift_records``
  and ``erpsync_reconcile_finished_seconds``). They describe the whole installation, so every worker
  reports the same values: aggregate them with ``max()``, not ``sum()``.

A scrape costs one pipelined round trip to Redis. The DLQ sets (one per target and code)
are discovered with a ``SCAN`` at most every ``discovery_interval_s``, because codes are
open-ended and a ``SCAN`` walks the whole key space; a code dead-lettered by this process is
known at once, one dead-lettered by another worker shows up at the next discovery.

With the threads or solo pool (the default is threads) deliveries run in the worker's main
process, where the HTTP server lives, so one registry sees everything. With the prefork
pool deliveries run in child processes whose counters this server cannot see: the Redis
gauges stay exact, the counters stay at zero, and the worker says so in its log at start.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import redis
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from erpsync.events import Delivery
from state.broker import KOMBU_PRIORITY_STEPS, queue_keys
from state.keys import Keys
from state.reconciled import parse_reconcile_summary

if TYPE_CHECKING:
    from delivery.engine import Engine
    from workers.runtime import Runtime

log = structlog.get_logger("erpsync.metrics")

DEFAULT_ADDRESS = "127.0.0.1"
CIRCUIT_STATES = ("closed", "open", "half_open", "paused")
#: the kinds of drift a reconcile reports
DRIFT_KINDS = ("missing", "different", "orphaned", "duplicates")
#: kombu's Redis transport keeps a queue's priorities in sibling lists (``<queue>\x06\x16<n>``)


class EngineCounters:
    """Counters fed by :attr:`delivery.engine.Engine.observers` (what this process did)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "erpsync_outcomes",
            "Deliveries that reached an outcome; detail is the sink's action (applied), "
            "the reason (skipped) or the error code (dead_lettered)",
            ["target", "flow", "outcome", "detail"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "erpsync_dead_letters",
            "Deliveries dead-lettered, by error code",
            ["target", "code"],
            registry=registry,
        )
        self.retries = Counter(
            "erpsync_retries",
            "Transient failures scheduled for a retry, by error code",
            ["target", "code"],
            registry=registry,
        )
        self.dependency_waits = Counter(
            "erpsync_dependency_waits",
            "Deliveries parked to wait for a dependency (a parent not yet in the target)",
            ["target", "code"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "erpsync_auth_failures",
            "Authentication or configuration failures (they open the target's circuit)",
            ["target", "code"],
            registry=registry,
        )
        self.parked = Counter(
            "erpsync_parked",
            "Deliveries parked without an attempt because the target's circuit was not closed",
            ["target", "reason"],
            registry=registry,
        )


@dataclass(eq=False)  # registries key collectors by identity
class StateCollector:
    """Gauges read from Redis on scrape: DLQ depth, queues, in flight, circuits."""

    client: redis.Redis
    keys: Keys
    targets: Sequence[str]
    #: flows whose last reconcile is reported (``erpsync_drift_records``)
    flows: Sequence[str] = ()
    discovery_interval_s: float = 60.0
    clock: Callable[[], float] = time.time
    _known_dlq: set[tuple[str, str]] = field(default_factory=set, init=False)
    _discovered_at: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def note_dlq(self, target: str, code: str) -> None:
        """A dead letter of (target, code) exists: report its depth from the next scrape."""
        with self._lock:
            self._known_dlq.add((target, code))

    def _discover(self) -> None:
        now = self.clock()
        if self._discovered_at is not None and now - self._discovered_at < (
            self.discovery_interval_s
        ):
            return
        head = self.keys.dlq_prefix()
        found: set[tuple[str, str]] = set()
        for raw in self.client.scan_iter(match=f"{head}*", count=1000, _type="zset"):
            rest = str(raw)[len(head) :]
            target, sep, code = rest.partition(":")
            if sep and code:  # dlq:<target>:<code>; dlq:index has no code
                found.add((target, code))
        with self._lock:
            self._known_dlq |= found
        self._discovered_at = now

    def collect(self) -> Iterable[Metric]:
        """Read the shared state in one pipelined round trip (never raises)."""
        up = GaugeMetricFamily(
            "erpsync_state_store_up", "1 when the last scrape could read erpsync's Redis"
        )
        try:
            families = self._read()
        except redis.RedisError as exc:
            log.warning("metrics.state_unavailable", error=str(exc))
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _read(self) -> list[Metric]:
        self._discover()
        with self._lock:
            dlq = sorted(self._known_dlq)
        targets = list(self.targets)
        answers = self._query(targets, dlq)
        return [
            *self._target_families(targets, answers, self.clock()),
            *self._dlq_families(dlq, answers),
            *self._reconcile_families(answers),
        ]

    def _query(self, targets: list[str], dlq: list[tuple[str, str]]) -> Iterator[Any]:
        """Every figure in one round trip, in the order the families read them."""
        with self.client.pipeline(transaction=False) as pipe:
            for target in targets:
                queues = queue_keys(self.keys, target)
                for queue in queues:
                    pipe.llen(queue)
                pipe.lindex(queues[0], -1)  # LPUSH in, BRPOP out: the oldest is at the tail
                pipe.hlen(self.keys.inflight(target))
                pipe.hgetall(self.keys.circuit(target))
            for target, code in dlq:
                pipe.zcard(self.keys.dlq_by_target_code(target, code))
            pipe.zcard(self.keys.dlq_index())
            pipe.zcard(self.keys.delayed())
            pipe.zcard(self.keys.delayed_claimed())
            for flow in self.flows:
                pipe.get(self.keys.reconcile_last(flow))
            return iter(pipe.execute())

    def _target_families(
        self, targets: list[str], answers: Iterator[Any], now: float
    ) -> list[Metric]:
        """Per target: queue depth, head age (the lag), in flight, circuit state, openings."""
        depth = GaugeMetricFamily(
            "erpsync_queue_depth", "Deliveries waiting on the target's queue", labels=["target"]
        )
        head_age = GaugeMetricFamily(
            "erpsync_queue_head_age_seconds",
            "Age of the change at the head of the target's queue (0 when empty): the lag",
            labels=["target"],
        )
        inflight = GaugeMetricFamily(
            "erpsync_inflight_deliveries",
            "Deliveries being applied to the target now",
            labels=["target"],
        )
        circuit = GaugeMetricFamily(
            "erpsync_circuit_state",
            "The target's circuit: 1 for its current state, 0 for the others",
            labels=["target", "state"],
        )
        openings = GaugeMetricFamily(
            "erpsync_circuit_openings",
            "Times the target's circuit opened since it last closed by hand",
            labels=["target"],
        )
        for target in targets:
            depth.add_metric([target], sum(int(next(answers)) for _ in KOMBU_PRIORITY_STEPS))
            oldest = _detected_at(next(answers))
            head_age.add_metric([target], max(0.0, now - oldest) if oldest is not None else 0.0)
            inflight.add_metric([target], int(next(answers)))
            stored: dict[str, str] = next(answers) or {}
            state = stored.get("state") or "closed"
            for name in CIRCUIT_STATES:
                circuit.add_metric([target, name], 1.0 if name == state else 0.0)
            openings.add_metric([target], _number(stored.get("openings")))
        return [depth, head_age, inflight, circuit, openings]

    def _dlq_families(self, dlq: list[tuple[str, str]], answers: Iterator[Any]) -> list[Metric]:
        """Dead letters by target and code, in all, and the delayed deliveries."""
        dlq_depth = GaugeMetricFamily(
            "erpsync_dlq_depth",
            "Dead letters waiting, by target and code",
            labels=["target", "code"],
        )
        for target, code in dlq:
            dlq_depth.add_metric([target, code], int(next(answers)))
        dlq_total = GaugeMetricFamily("erpsync_dlq_entries", "Dead letters waiting, in all")
        dlq_total.add_metric([], int(next(answers)))
        delayed = GaugeMetricFamily(
            "erpsync_delayed_deliveries",
            "Deliveries parked in the delayed set (retries, dependency waits, open circuits)",
        )
        delayed.add_metric([], int(next(answers)) + int(next(answers)))
        return [dlq_depth, dlq_total, delayed]

    def _reconcile_families(self, answers: Iterator[Any]) -> list[Metric]:
        """Per flow: the last reconcile's drift by target and kind, and when it finished."""
        drift = GaugeMetricFamily(
            "erpsync_drift_records",
            "Records found drifted by the flow's last reconcile, by target and kind "
            "(missing, different, orphaned, duplicates)",
            labels=["flow", "target", "kind"],
        )
        reconciled = GaugeMetricFamily(
            "erpsync_reconcile_finished_seconds",
            "When the flow's last reconcile finished (epoch seconds)",
            labels=["flow"],
        )
        for flow in self.flows:
            summary = parse_reconcile_summary(next(answers))
            if summary is None:
                continue
            reconciled.add_metric([flow], _number(str(summary.get("finished_at") or 0)))
            for target, counts in (summary.get("targets") or {}).items():
                if not isinstance(counts, dict) or counts.get("not_checked"):
                    continue
                for kind in DRIFT_KINDS:
                    drift.add_metric([flow, str(target), kind], _number(str(counts.get(kind, 0))))
        return [drift, reconciled]


def _number(raw: str | None) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


def _detected_at(raw: Any) -> float | None:
    """When the change in a queued kombu message was detected (None when unreadable)."""
    if not raw:
        return None
    try:
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]  # task protocol 2: [args, kwargs, embed]
        return datetime.fromisoformat(args[0]["event"]["detected_at"]).timestamp()
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class WorkerMetrics:
    """A worker's registry: engine counters, the Redis state collector, process metrics."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        targets: Sequence[str],
        *,
        discovery_interval_s: float = 60.0,
        registry: CollectorRegistry | None = None,
        process_metrics: bool = True,
        flows: Sequence[str] = (),
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.counters = EngineCounters(self.registry)
        self.state = StateCollector(
            client,
            keys,
            tuple(targets),
            flows=tuple(flows),
            discovery_interval_s=discovery_interval_s,
        )
        self.registry.register(self.state)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> WorkerMetrics:
        """Metrics of a worker process, for the targets of every enabled flow."""
        settings = runtime.settings
        targets = sorted({t for f in settings.flows.values() if f.enabled for t in f.targets})
        flows = sorted(name for name, f in settings.flows.items() if f.enabled)
        return cls(runtime.redis, runtime.keys, targets, flows=flows)

    def observe(self, what: str, delivery: Delivery, details: dict[str, Any]) -> None:
        """The engine observer: count one outcome, retry, wait or park."""
        target, flow = delivery.target, delivery.event.flow
        code = str(details.get("code") or "unknown")
        c = self.counters
        if what == "applied":
            c.outcomes.labels(target, flow, "applied", str(details.get("action", ""))).inc()
        elif what == "skipped":
            c.outcomes.labels(target, flow, "skipped", str(details.get("reason", ""))).inc()
        elif what == "dead_lettered":
            c.outcomes.labels(target, flow, "dead_lettered", code).inc()
            c.dead_letters.labels(target, code).inc()
            self.state.note_dlq(target, code)
        elif what == "retry":
            c.retries.labels(target, code).inc()
        elif what == "dependency_wait":
            c.dependency_waits.labels(target, code).inc()
        elif what in {"auth_failed", "circuit_opened"}:
            c.auth_failures.labels(target, code).inc()
        elif what == "parked_circuit":
            c.parked.labels(target, "circuit").inc()

    def attach(self, engine: Engine) -> None:
        """Observe ``engine`` (once, however often this is called)."""
        if self.observe not in engine.observers:
            engine.observers.append(self.observe)

    def render(self) -> bytes:
        """The exposition text, as a scrape would get it."""
        return generate_latest(self.registry)

    def serve(self, port: int, address: str = DEFAULT_ADDRESS) -> int:
        """Serve ``/metrics`` from a daemon thread; returns the bound port (``port`` 0: any)."""
        server, thread = start_http_server(port, addr=address, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def stop(self) -> None:
        """Stop serving (the counters keep their values)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


def start_worker_metrics(
    runtime: Runtime, port: int, *, address: str = DEFAULT_ADDRESS, prefork: bool = False
) -> WorkerMetrics:
    """Attach the metrics to the worker's engine and serve them (worker main process)."""
    metrics = WorkerMetrics.for_runtime(runtime)
    metrics.attach(runtime.engine)
    bound = metrics.serve(port, address)
    log.info("worker.metrics_serving", address=address, port=bound)
    if prefork:
        log.warning(
            "worker.metrics_partial",
            reason="prefork pool: deliveries run in child processes whose counters this "
            "server cannot see; the Redis gauges are exact, the erpsync_*_total counters "
            "stay at zero (use the threads pool for complete metrics)",
        )
    return metrics
