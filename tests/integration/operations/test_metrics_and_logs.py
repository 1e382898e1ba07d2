"""Issue #5: a real worker's Prometheus metrics and its structured log lines.

* ``erpsync worker --metrics-port P`` serves outcome counts that match the engine's own
  counters, and the DLQ depth by code after dead letters, read from Redis on scrape.
* Every log line of a task carries the bound context (flow, target, entity, key, event id,
  attempt), there is one line per outcome, the lines are JSON when the output is not a
  terminal, and no secret appears in them.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import TARGETS, Pipeline
from simulators.server import CREDENTIALS
from state.dlq import DeadLetterStore
from state.messages import queue_for

pytestmark = pytest.mark.integration

PRODUCTS_ONLY = {"products": {"source": "onlineerp", "entity": "product", "targets": ["atollon"]}}
#: a permanent failure of the first product writes in Atollon: they are dead-lettered
PRODUCT_FAULT = {"statuses": [400], "path": "/crab/crawler/product*"}
BOUND = ("flow", "target", "entity", "key", "event_id", "attempt")
OUTCOMES = ("sync.applied", "sync.skipped", "sync.dead_lettered")

#: events of the worker process itself, logged outside any task
PROCESS_EVENTS = ("worker.", "pump.", "metrics.")
DOTTED = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def seed(p: Pipeline, customers: int, products: int) -> None:
    with p.control("onlineerp") as client:
        client.post(
            "/_sandbox/seed", json={"customers": customers, "products": products}
        ).raise_for_status()


def scrape(port: int, timeout_s: float = 60.0) -> Samples:
    """Every sample of the worker's /metrics (waits for the server to answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert answer.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_worker_metrics_match_the_engine_and_show_dlq_depth_by_code(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=PRODUCTS_ONLY)
    seed(p, customers=0, products=20)
    p.faults("atollon", [{**PRODUCT_FAULT, "count": 3}])

    # A worker that consumes another queue: its metrics show atollon's backlog and lag.
    idle_port = free_port()
    p.start_worker("--queues", "hipe", "--metrics-port", str(idle_port))
    p.wait_workers(1)
    p.produce()
    assert p.counters("atollon")["produced"] == 20
    backlog = scrape(idle_port)
    assert total(backlog, "erpsync_queue_depth", target="atollon") == 20
    assert p.redis.llen(f"{p.prefix}:{queue_for('atollon')}") == 20
    assert 0 < total(backlog, "erpsync_queue_head_age_seconds", target="atollon") < 600
    assert total(backlog, "erpsync_state_store_up") == 1

    port = free_port()
    p.start_worker("--metrics-port", str(port))
    p.wait_workers(2)
    p.wait_converged(targets=("atollon",))

    samples = scrape(port)
    counters = p.counters("atollon")
    applied = total(samples, "erpsync_outcomes_total", target="atollon", outcome="applied")
    dead = total(samples, "erpsync_outcomes_total", target="atollon", outcome="dead_lettered")
    assert (applied, dead) == (counters["applied"], counters["dead_lettered"]) == (17, 3)
    assert total(samples, "erpsync_outcomes_total", outcome="skipped") == counters.get("skipped", 0)
    created = total(
        samples, "erpsync_outcomes_total", target="atollon", outcome="applied", detail="created"
    )
    assert created == counters["action_created"]

    dlq = DeadLetterStore(p.redis, p.keys).counts_by_target_code()
    assert list(dlq) == ["atollon"], dlq
    (code,) = dlq["atollon"]
    assert dlq["atollon"][code] == 3
    assert total(samples, "erpsync_dead_letters_total", target="atollon", code=code) == 3
    assert total(samples, "erpsync_dlq_depth", target="atollon", code=code) == 3
    assert total(samples, "erpsync_dlq_entries") == 3
    assert total(samples, "erpsync_queue_depth", target="atollon") == 0
    assert total(samples, "erpsync_queue_head_age_seconds", target="atollon") == 0
    assert total(samples, "erpsync_circuit_state", target="atollon", state="closed") == 1
    assert total(samples, "erpsync_delayed_deliveries") == 0
    # The idle worker did none of it: counters are per process.
    assert total(scrape(idle_port), "erpsync_outcomes_total") == 0


def log_lines(p: Pipeline) -> tuple[list[dict[str, Any]], list[str]]:
    """The worker's JSON log lines, and any other non-empty line."""
    parsed: list[dict[str, Any]] = []
    other: list[str] = []
    for path in sorted(p.directory.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                parsed.append(json.loads(line))
            except ValueError:
                other.append(line)
    return parsed, other


def test_every_line_of_a_task_carries_its_context_and_no_secret(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline()
    # INFO shows every outcome; "auto" must choose JSON, the worker's output is a file.
    p.config.update(log_level="INFO", log_format="auto")
    p.config_path.write_text(tomli_w.dumps(p.config), encoding="utf-8")
    seed(p, customers=12, products=5)
    p.faults("atollon", [{**PRODUCT_FAULT, "count": 2}])
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged()

    lines, other = log_lines(p)
    structured = [line for line in other if re.match(r"^\s*\d{4}-\d\d-\d\d", line)]
    assert structured == [], f"log lines that are not JSON: {structured[:3]}"
    assert lines, "the worker logged nothing"

    # erpsync's own lines have dotted names; outside tasks only the process's own events.
    ours = [line for line in lines if DOTTED.match(str(line.get("event", "")))]
    in_task = [line for line in ours if not line["event"].startswith(PROCESS_EVENTS)]
    assert {line["event"] for line in in_task} >= set(OUTCOMES) - {"sync.skipped"}
    for line in in_task:
        missing = [name for name in BOUND if line.get(name) in (None, "")]
        assert not missing, f"{line['event']} lacks {missing}: {line}"
        assert isinstance(line["attempt"], int)
        assert line["target"] in TARGETS
    outside = [line for line in lines if line.get("event") == "worker.ready"]
    assert outside, "no worker.ready line"
    assert all("event_id" not in line for line in outside), "task context leaked"

    # One line per outcome: as many as the engine counted, one per delivery.
    outcomes = [line for line in lines if line.get("event") in OUTCOMES]
    per_delivery = Counter((line["target"], line["event_id"]) for line in outcomes)
    assert max(per_delivery.values()) == 1, per_delivery.most_common(3)
    seen = Counter((line["target"], line["event"]) for line in outcomes)
    for target in TARGETS:
        counters = p.counters(target)
        for outcome in ("applied", "skipped", "dead_lettered"):
            assert seen[(target, f"sync.{outcome}")] == counters.get(outcome, 0), (target, seen)
    assert sum(per_delivery.values()) == sum(p.counters(t)["produced"] for t in TARGETS)
    dead = [line for line in outcomes if line["event"] == "sync.dead_lettered"]
    assert len(dead) == 2
    assert all(d["target"] == "atollon" and d["entity"] == "product" for d in dead)
    assert all(d["code"] and d["dlq_id"] and d["error_class"] == "permanent" for d in dead)
    assert {line["level"] for line in dead} == {"warning"}

    text = "\n".join(path.read_text(errors="replace") for path in p.directory.glob("worker-*"))
    secrets = [v for creds in CREDENTIALS.values() for k, v in creds.items() if "secret" in k]
    secrets += [CREDENTIALS["hipe"]["access_token"]]
    for secret in secrets:
        assert secret not in text
    assert not re.search(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}", text)
