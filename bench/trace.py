"""``python -m bench.trace``: what the record trace costs the single-record path.

The initial load of the single-record path (one delivery per customer, Propeller) with the
trace at its defaults (``trace_max_events`` 50) and off (0), every other setting the
product's default (log level included), in rounds of both (which goes first alternates
round by round), each from a fresh installation and worker. The producer writes a record's
``detected`` and ``sent`` events in the pipeline that advances its snapshot; the worker
buffers its events and writes them from a background thread. Goal: the trace keeps at
least 95% of the rate (issue 21), judged on the median of the rounds' ratios (a round's
two loads meet much the same load of the shared machine). Beside it: the worker's CPU per
record on and off, and the trace's own CPU per record on each side measured alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any

import redis
from rich.console import Console

from bench._harness import (
    Installation,
    Sandbox,
    customer_deliveries,
    customers_flow,
    redis_server,
    sandbox_process,
)
from bench._util import machine_info, print_json
from bench.pipeline import TARGET, measure_load
from erpsync.settings import Settings
from producers.base import _trace_items
from state.keys import Keys
from state.trace import TraceBuffer, TraceStore, engine_observer

#: the trace's share of the rate that the single-record path must keep
GOAL = 0.95
DEFAULT_MAX_EVENTS: int = Settings.model_fields["trace_max_events"].default


def measure_trace(sandbox: Sandbox, url: str, customers: int, rounds: int) -> dict[str, Any]:
    """Records/s of the single-record load with the trace on and off, alternating rounds."""
    found: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for index in range(rounds):
        order = [("on", DEFAULT_MAX_EVENTS), ("off", 0)]
        for name, max_events in order if index % 2 == 0 else order[::-1]:  # no order bias
            with Installation(
                sandbox, url, customers_flow(TARGET), extra={"trace_max_events": max_events}
            ) as installation:
                installation.start_worker(f"--queues={TARGET}")
                load = measure_load(installation, customers, bulk=False)
                if name == "on":
                    load["traced_records"] = sum(
                        1 for _ in installation.redis.scan_iter(f"{installation.prefix}:trace:*")
                    )
                found[name].append(load)
    ratios = [
        float(on["records_per_s"]) / float(off["records_per_s"])
        for on, off in zip(found["on"], found["off"], strict=True)
    ]
    cpu = [
        float(on["worker_cpu_ms_per_record"]) / float(off["worker_cpu_ms_per_record"])
        for on, off in zip(found["on"], found["off"], strict=True)
    ]
    return {
        "customers": customers,
        "worker_cpu_ratio": statistics.median(cpu),
        "round_cpu_ratios": [round(r, 3) for r in cpu],
        "on_worker_cpu_ms_per_record": [
            round(float(r["worker_cpu_ms_per_record"]), 2) for r in found["on"]
        ],
        "off_worker_cpu_ms_per_record": [
            round(float(r["worker_cpu_ms_per_record"]), 2) for r in found["off"]
        ],
        "trace_max_events": DEFAULT_MAX_EVENTS,
        "ratio": statistics.median(ratios),
        "round_ratios": [round(r, 3) for r in ratios],
        "on_records_per_s": [round(float(r["records_per_s"]), 1) for r in found["on"]],
        "off_records_per_s": [round(float(r["records_per_s"]), 1) for r in found["off"]],
        "traced_records": [r["traced_records"] for r in found["on"]],
        "goal": GOAL,
        "holds": statistics.median(ratios) >= GOAL,
    }


def measure_cost(url: str, count: int = 5_000) -> dict[str, Any]:
    """CPU microseconds the trace adds per record, each side measured on its own.

    Worker: the engine observer's ``applied`` event and its share of the background
    write (one pipeline for all). Producer: a record's ``detected`` and ``sent`` events
    queued into the snapshot pipeline, and that pipeline's extra commands. Seed customers'
    payloads, a real Redis; CPU of this process (Redis's own is apart, a few µs a command).
    """
    client = redis.Redis.from_url(url, decode_responses=True)
    store = TraceStore(client, Keys(f"benchtrace{uuid.uuid4().hex[:8]}"))
    deliveries = customer_deliveries(1, count, TARGET)
    try:
        buffer = TraceBuffer(store, interval_s=3600)  # flushed by hand below
        observe = engine_observer(buffer)
        started = time.process_time()
        for delivery in deliveries:
            observe("applied", delivery, {"action": "created"})
        buffer.flush()
        worker_s = time.process_time() - started
        buffer.close()
        started = time.process_time()
        for start in range(0, count, 1000):
            chunk = deliveries[start : start + 1000]
            with client.pipeline(transaction=False) as pipe:
                store.queue(pipe, _trace_items([d.event for d in chunk], chunk, [], time.time()))
                pipe.execute()
        producer_s = time.process_time() - started
    finally:
        for key in client.scan_iter(f"{store.keys.prefix}:*", count=1000):
            client.delete(key)
        client.close()
    return {
        "records": count,
        "worker_us_per_record": worker_s / count * 1e6,
        "producer_us_per_record": producer_s / count * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--redis-url", default=None, help="a Redis to use (default: embedded)")
    parser.add_argument("--customers", type=int, default=None, help="customers per load")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (on and off each)")
    args = parser.parse_args(argv)
    customers = args.customers or (300 if args.quick else 2_000)
    rounds = args.rounds or (1 if args.quick else 3)
    with redis_server(args.redis_url) as url, sandbox_process() as sandbox:
        cost = measure_cost(url)
        report = {"machine": machine_info(), **measure_trace(sandbox, url, customers, rounds)}
    report["cost"] = cost
    off_cpu_us = statistics.median(report["off_worker_cpu_ms_per_record"]) * 1e3
    report["worker_cpu_share"] = cost["worker_us_per_record"] / off_cpu_us
    if args.json:
        print_json(report)
        return 0
    console = Console()
    console.print(
        f"trace on ÷ off, single-record initial load of {customers:,} customers: "
        f"{report['ratio']:.3f} (goal ≥ {GOAL}: {'holds' if report['holds'] else 'MISSED'}); "
        f"rounds {report['round_ratios']}, on {report['on_records_per_s']} records/s, "
        f"off {report['off_records_per_s']} records/s; worker CPU per record on ÷ off "
        f"{report['worker_cpu_ratio']:.3f} (rounds {report['round_cpu_ratios']}); the trace's "
        f"own CPU: worker {cost['worker_us_per_record']:.1f} µs per record "
        f"({report['worker_cpu_share']:.2%} of the worker's CPU per record without it), "
        f"producer {cost['producer_us_per_record']:.1f} µs per record"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
