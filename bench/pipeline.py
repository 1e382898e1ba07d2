"""Throughput of the erpsync pipeline, each figure a ratio measured side by side in one run.

Run ``uv run python -m bench [--json] [--quick]``. One Redis (embedded unless
``--redis-url``), the sandbox in a child process, real ``erpsync worker`` processes with
the project's default worker settings (pool, concurrency, prefetch), and the producer:

1. **pipeline overhead**: deliveries/s of the single-record path (``sync.apply``, one
   Propeller create each, sandbox without latency) ÷ no-op Celery tasks/s (``sync.noop``,
   same message body) on the same worker, queue and Redis; rounds alternate, and each rate
   is a drain of a pre-filled queue (see :mod:`bench._harness`);
2. **initial load**: records/s and HTTP requests per record from the producer's first poll
   of an ERP of N customers (a three-level hierarchy) until all are in Propeller: the bulk
   path (the producer's batches, ``sync.apply_batch``) ÷ the single-record path (the same
   poll with bulk routes off), when the bulk path exists (``delivery.batch``); the bulk
   load, a few seconds long, is the median of the run's rounds, each from a fresh worker;
3. **rate-limited target**: Propeller allowing 10 requests in any second (the sandbox
   answers 429 beyond that: fault rule ``max_per_s``) with 50 ms latency, and the workers'
   shared limit set to 10/s: records/s achieved ÷ the most the limit allows (10 records/s
   one by one; 10 × ``bulk_batch_size`` in bulk), and the share of 429 answers; each path
   drains a backlog in place when the clock starts (in bulk: the producer's batches of an
   initial load, staged before the worker starts), and the bulk load is also timed from
   the producer's first poll (shown beside it: that window holds the poll too);
4. **change detection**: a poll of N ERP customers with 1% changed ÷ merely paging through
   them with the OnlineERP adapter (``iter_customer_pages``), each in a fresh process, the
   median of per-round ratios; peak memory of the poll at two sizes; events emitted (must
   equal the changes);
5. **latency**: from an ERP edit to its arrival in every target (the target's answer, as
   the ledger records it), p50 and p99, with the producer polling every
   ``poll_interval_s``;
6. **reconcile** (issue 15, :mod:`bench.reconcile`): ``erpsync reconcile`` of N customers
   against Propeller, HIPE and Atollon filled in sync ÷ merely reading the source and the
   three targets, and its peak memory at two sizes;
7. **batch slots** (issue 16, :mod:`bench.slots`; only with ``--only batch_slots``): the
   producer's bulk batches of an initial load, staged, drained by a fresh worker at each
   ``worker.batch_cpu_slots`` (2, the default; 0, no bound; 1): seconds, records/s and the
   worker's CPU per record.

Every figure is printed next to its goal (issues 9 and 15) with a pass/fail mark. Timings depend on
the machine and on whatever else runs on it; the ratios much less, and the CPU each side
used (workers, sandbox, Redis) says where the time went.

Workers, producer and sandbox run with the product's defaults, log level included (``INFO``:
what users run); a figure measured under another setting says so beside it. The one such
figure is the bulk initial load at ``WARNING``, measured in rounds alternating with the
default's, so that what logging costs the bulk path is a ratio of the same run (issue 22).
The bench process's own producer logs as ``erpsync produce`` does, into a file of the run
(``producer_log`` in the report), so that the console keeps the report.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from bench._harness import (
    BenchError,
    Drain,
    ErpEditor,
    Installation,
    Sandbox,
    as_json,
    customer_deliveries,
    customers_flow,
    redis_server,
    sandbox_process,
)
from bench._util import machine_info, percentile, print_json, rounded
from bench.reconcile import ReconcileSizes, measure_reconcile
from erpsync.logging import configure_logging
from erpsync.settings import Settings
from producers.runner import ProducerService
from state.messages import TASK_APPLY, TASK_NOOP, queue_for

TARGET = "propeller"
LATENCY_TARGETS = ("propeller", "hipe", "atollon")
#: the level every figure is measured at unless it says otherwise: the product's default
DEFAULT_LOG_LEVEL: str = Settings.model_fields["log_level"].default
#: the level the bulk load is also measured at, to show what logging costs it
QUIET_LOG_LEVEL = "WARNING"

#: issue 9's goals (and issue 22's: logging at the default costs the bulk load little):
#: (figure, comparison, bound)
GOALS: dict[str, tuple[str, float]] = {
    "overhead_ratio": (">=", 0.35),
    "bulk_speedup": (">=", 20.0),
    "bulk_default_log_cost": ("<=", 1.10),
    "bulk_requests_per_record": ("<=", 0.02),
    "rate_limited_share_single": (">=", 0.90),
    "rate_limited_share_bulk": (">=", 0.90),
    "rate_limited_429_share_single": ("<", 0.01),
    "rate_limited_429_share_bulk": ("<", 0.01),
    "detection_ratio": ("<=", 1.3),
    "memory_growth_mb": ("<", 100.0),
    "events_equal_changes": ("==", 1.0),
    # issue 15: reconcile of N customers and three targets ÷ merely reading them all
    "reconcile_ratio": ("<=", 1.5),
    "reconcile_memory_growth_mb": ("<", 100.0),
}


@dataclass(frozen=True)
class Sizes:
    """How much each figure measures (``--quick`` is a smoke run)."""

    quick: bool
    rounds: int
    noop_messages: int
    apply_messages: int
    initial_load: int
    rate_limit_per_s: int
    rate_limited_records: int
    rate_limited_bulk_records: int
    latency_ms: int
    detect_small: int
    detect_large: int
    detect_rounds: int
    latency_customers: int
    latency_edits: int
    poll_interval_s: float

    @staticmethod
    def of(quick: bool) -> Sizes:
        """The full run, or the quick one."""
        if quick:
            return Sizes(
                quick=True,
                rounds=2,
                noop_messages=300,
                apply_messages=150,
                initial_load=600,
                rate_limit_per_s=10,
                rate_limited_records=20,
                rate_limited_bulk_records=600,
                latency_ms=50,
                detect_small=1_000,
                detect_large=5_000,
                detect_rounds=1,
                latency_customers=30,
                latency_edits=6,
                poll_interval_s=1.0,
            )
        return Sizes(
            quick=False,
            rounds=3,
            noop_messages=3_000,
            apply_messages=1_000,
            initial_load=10_000,
            rate_limit_per_s=10,
            rate_limited_records=200,
            rate_limited_bulk_records=10_000,
            latency_ms=50,
            detect_small=10_000,
            detect_large=100_000,
            detect_rounds=3,
            latency_customers=200,
            latency_edits=40,
            poll_interval_s=1.0,
        )


def bulk_available() -> bool:
    """True when the bulk paths of issue 9 exist in this tree (``delivery.batch``)."""
    return importlib.util.find_spec("delivery.batch") is not None


# --- waiting --------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds; a timeout is a :class:`BenchError`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not done after {timeout_s:g} s")
        time.sleep(0.02)


def outcomes(installation: Installation, target: str) -> int:
    """Deliveries of ``target`` that reached their end (applied, skipped, dead-lettered)."""
    c = installation.counters(target)
    return c.get("applied", 0) + c.get("skipped", 0) + c.get("dead_lettered", 0)


def reached(installation: Installation, target: str, count: int) -> Callable[[], bool]:
    """A check that ``count`` deliveries of ``target`` reached their end."""
    return lambda: outcomes(installation, target) >= count


@contextlib.contextmanager
def producing(service: ProducerService, interval_s: float) -> Iterator[None]:
    """The producer polling every ``interval_s`` in a thread, for the ``with`` block."""
    stop = threading.Event()
    thread = threading.Thread(
        target=service.run, args=(interval_s, stop), name="bench-producer", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


# --- 1. pipeline overhead ----------------------------------------------------------------


def measure_overhead(installation: Installation, sizes: Sizes) -> dict[str, Any]:
    """sync.apply against the sandbox ÷ sync.noop, alternating rounds on one worker."""
    queue = queue_for(TARGET)
    first = 1_000_000
    warm = customer_deliveries(first, 50, TARGET)
    installation.drain(
        installation.stage(TASK_APPLY, as_json(warm)),
        queue,
        timeout_s=120,
        done=lambda: outcomes(installation, TARGET) >= len(warm),
    )
    first += len(warm)
    noops: list[Drain] = []
    applies: list[Drain] = []
    for _ in range(sizes.rounds):
        bodies = customer_deliveries(first, sizes.noop_messages, TARGET)
        noops.append(
            installation.drain(installation.stage(TASK_NOOP, as_json(bodies)), queue, timeout_s=600)
        )
        first += sizes.noop_messages
        deliveries = customer_deliveries(first, sizes.apply_messages, TARGET)
        expected = outcomes(installation, TARGET) + len(deliveries)
        applies.append(
            installation.drain(
                installation.stage(TASK_APPLY, as_json(deliveries)),
                queue,
                timeout_s=900,
                done=reached(installation, TARGET, expected),
            )
        )
        first += sizes.apply_messages
    counters = installation.counters(TARGET)
    if counters.get("dead_lettered", 0) or counters.get("applied", 0) != outcomes(
        installation, TARGET
    ):
        raise BenchError(f"the single-record path did not apply every delivery: {counters}")
    ratios = [a.per_s / n.per_s for a, n in zip(applies, noops, strict=True)]
    return {
        "ratio": statistics.median(ratios),
        "round_ratios": [round(r, 3) for r in ratios],
        "apply_per_s": max(a.per_s for a in applies),
        "noop_per_s": max(n.per_s for n in noops),
        "apply_rounds": [a.as_dict() for a in applies],
        "noop_rounds": [n.as_dict() for n in noops],
    }


# --- 2. initial load ---------------------------------------------------------------------


def measure_load(
    installation: Installation,
    customers: int,
    *,
    bulk: bool,
    faults: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The producer's first poll of ``customers`` ERP customers until all are in Propeller.

    ``bulk``: the producer cuts the load into bulk batches (its default for a large poll);
    otherwise it sends one delivery per record (the single-record path). Propeller starts
    empty, then gets ``faults``; the window runs from the poll's start to the last outcome.
    """
    installation.seed_erp(customers)
    with installation.control(TARGET) as client:
        client.post("/_sandbox/reset").raise_for_status()
    installation.faults(TARGET, faults)
    counters_before = installation.counters(TARGET)
    before = outcomes(installation, TARGET)
    service = ProducerService(installation.settings)
    if not bulk:
        service.producer.bulk = {}
    try:
        cpu = installation.sample()
        results = service.poll_once()
        polled_s = installation.sample().wall_s - cpu.wall_s
        if results[0].changed != customers:
            raise BenchError(f"the first poll found {results[0].changed} of {customers}")
        if bulk and not results[0].batches:
            raise BenchError("the producer sent no bulk batch for an initial load")
        wait_for(
            lambda: (
                outcomes(installation, TARGET) - before >= customers
                and installation.redis.zcard(installation.keys.delayed()) == 0
            ),
            timeout_s=1800,
            what=f"initial load of {customers} customers",
        )
        after = installation.sample()
    finally:
        service.close()
    stats = installation.sandbox_stats(TARGET)
    installation.faults(TARGET, None)
    counters = installation.counters(TARGET)
    delta = {k: v - counters_before.get(k, 0) for k, v in counters.items()}
    seconds = after.wall_s - cpu.wall_s
    total = int(stats["total"])
    too_many = int(stats["by_status"].get("429", 0))
    return {
        "path": "bulk" if bulk else "single",
        "log_level": installation.settings.log_level,
        "customers": customers,
        "batches": results[0].batches,
        "seconds": seconds,
        "poll_seconds": polled_s,
        "records_per_s": customers / seconds,
        "http_requests": total,
        "requests_per_record": total / customers,
        "answers_429": too_many,
        "share_429": too_many / total if total else 0.0,
        "applied": delta.get("applied", 0),
        "dependency_waits": delta.get("dependency_waits", 0),
        "retries": delta.get("retries", 0),
        "dead_lettered": delta.get("dead_lettered", 0),
        "worker_cpu_ms_per_record": (after.workers_cpu_s - cpu.workers_cpu_s) / customers * 1e3,
        "sandbox_cpu_ms_per_record": (after.sandbox_cpu_s - cpu.sandbox_cpu_s) / customers * 1e3,
    }


# --- 3. rate-limited target --------------------------------------------------------------


def limit_faults(sizes: Sizes) -> list[dict[str, Any]]:
    """Propeller allowing ``rate_limit_per_s`` requests in any second, ``latency_ms`` each."""
    return [{"latency_ms": sizes.latency_ms, "max_per_s": sizes.rate_limit_per_s}]


def warm_up(installation: Installation, first: int, count: int = 16) -> int:
    """Deliveries outside any timed window, so that every worker thread has built its
    client and fetched its token (through the limit) before the clock starts; then the
    sandbox's request counts are zeroed. Returns how many were applied."""
    warm = customer_deliveries(first, count, TARGET)
    installation.drain(
        installation.stage(TASK_APPLY, as_json(warm)),
        queue_for(TARGET),
        timeout_s=300,
        done=lambda: outcomes(installation, TARGET) >= len(warm),
    )
    installation.clear_sandbox_stats(TARGET)
    return len(warm)


def stage_bulk_load(installation: Installation, customers: int) -> tuple[tuple[str, int], int]:
    """The producer's first poll of ``customers`` ERP customers, its batches staged.

    No worker may consume the target's queue meanwhile: the poll's ``sync.apply_batch``
    messages are then moved to a staging list, for :meth:`Installation.drain` to release
    at once. Returns (the staged backlog, the poll's deliveries).
    """
    if installation.workers:
        raise BenchError("a worker would take the batches before they are staged")
    installation.seed_erp(customers)
    with installation.control(TARGET) as client:
        client.post("/_sandbox/reset").raise_for_status()
    service = ProducerService(installation.settings)
    try:
        (result,) = service.poll_once()
    finally:
        service.close()
    if result.changed != customers or not result.batches:
        found = f"{result.changed} of {customers} customers, {result.batches} batches"
        raise BenchError(f"the poll found {found}")
    queue_key = installation.queue_key(queue_for(TARGET))
    staging = installation.queue_key(f"bench.staging.{TARGET}.bulk")
    if installation.redis.llen(queue_key) != result.batches:
        raise BenchError(f"{installation.redis.llen(queue_key)} of {result.batches} batches queued")
    installation.redis.rename(queue_key, staging)
    return (staging, result.batches), result.deliveries


def measure_rate_limited_bulk(
    installation: Installation, sizes: Sizes, from_poll: dict[str, Any]
) -> dict[str, Any]:
    """The producer's bulk batches of an initial load drained through the limited Propeller.

    As on the single-record path, the backlog is in place when the clock starts (the
    producer's batches for ``rate_limited_bulk_records`` customers, staged before the
    worker starts), so the figure is the workers' use of the limit; the most it allows is
    ``rate_limit_per_s`` calls of ``bulk_batch_size`` records. ``from_poll`` is the same
    load timed from the producer's first poll (:func:`measure_load`), shown beside it: that
    window also holds the poll's own time (the poll starts alone and must keep ahead).
    """
    records = sizes.rate_limited_bulk_records
    staged, deliveries = stage_bulk_load(installation, records)
    installation.start_worker(f"--queues={TARGET}")
    installation.faults(TARGET, limit_faults(sizes))
    warmed = warm_up(installation, 2_200_000)
    expected = outcomes(installation, TARGET) + deliveries
    drain = installation.drain(
        staged,
        queue_for(TARGET),
        timeout_s=records / sizes.rate_limit_per_s + 300,
        done=lambda: (
            outcomes(installation, TARGET) >= expected
            and installation.redis.zcard(installation.keys.delayed()) == 0
        ),
    )
    stats = installation.sandbox_stats(TARGET)
    installation.faults(TARGET, None)
    counters = installation.counters(TARGET)
    if counters.get("applied", 0) < deliveries + warmed or counters.get("dead_lettered", 0):
        raise BenchError(f"the bulk load under the limit did not apply every record: {counters}")
    propeller = installation.settings.systems.propeller
    batch = propeller.bulk_batch_size if propeller is not None else 1
    allowed = float(sizes.rate_limit_per_s * batch)
    total = int(stats["total"])
    too_many = int(stats["by_status"].get("429", 0))
    records_per_s = records / drain.seconds
    return {
        "limit_per_s": sizes.rate_limit_per_s,
        "latency_ms": sizes.latency_ms,
        "records": records,
        "batches": staged[1],
        "batch_size": batch,
        "seconds": drain.seconds,
        "records_per_s": records_per_s,
        "allowed_records_per_s": allowed,
        "share_of_limit": records_per_s / allowed,
        "http_requests": total,
        "answers_429": too_many,
        "share_429": too_many / total if total else 0.0,
        "retries": counters.get("retries", 0),
        "dependency_waits": counters.get("dependency_waits", 0),
        "worker_cpu_ms_per_record": drain.workers_cpu_s / records * 1e3,
        "from_poll": {
            "seconds": from_poll["seconds"],
            "poll_seconds": from_poll["poll_seconds"],
            "records_per_s": from_poll["records_per_s"],
            "share_of_limit": from_poll["records_per_s"] / allowed,
            "http_requests": from_poll["http_requests"],
            "answers_429": from_poll["answers_429"],
            "share_429": from_poll["share_429"],
        },
    }


def measure_rate_limited(installation: Installation, sizes: Sizes) -> dict[str, Any]:
    """Records/s through a target allowing ``rate_limit_per_s`` requests/s, and its 429s."""
    queue = queue_for(TARGET)
    limit = sizes.rate_limit_per_s
    installation.faults(TARGET, limit_faults(sizes))
    warm_up(installation, 2_000_000)
    deliveries = customer_deliveries(2_100_000, sizes.rate_limited_records, TARGET)
    expected = outcomes(installation, TARGET) + len(deliveries)
    drain = installation.drain(
        installation.stage(TASK_APPLY, as_json(deliveries)),
        queue,
        timeout_s=sizes.rate_limited_records / limit * 10 + 120,
        done=lambda: (
            outcomes(installation, TARGET) >= expected
            and installation.redis.zcard(installation.keys.delayed()) == 0
        ),
    )
    stats = installation.sandbox_stats(TARGET)
    installation.faults(TARGET, None)
    total = stats["total"]
    too_many = int(stats["by_status"].get("429", 0))
    records_per_s = len(deliveries) / drain.seconds
    return {
        "limit_per_s": limit,
        "latency_ms": sizes.latency_ms,
        "records": len(deliveries),
        "seconds": drain.seconds,
        "records_per_s": records_per_s,
        "allowed_records_per_s": float(limit),
        "share_of_limit": records_per_s / limit,
        "http_requests": total,
        "answers_429": too_many,
        "share_429": too_many / total if total else 0.0,
        "retries": installation.counters(TARGET).get("retries", 0),
    }


# --- 4. change detection -----------------------------------------------------------------


def edit_share(editor: ErpEditor, customers: int, offset: int, share: float = 0.01) -> int:
    """Edit ``share`` of the customers (evenly spread); returns how many were edited."""
    step = round(1 / share)
    edited = 0
    for index in range(offset % step, customers, step):
        editor.edit(index)
        edited += 1
    return edited


def measure_detection(sandbox: Sandbox, redis_url: str, sizes: Sizes) -> dict[str, Any]:
    """A 1% poll ÷ bare paging at the large size; the poll's peak memory at both sizes."""
    report: dict[str, Any] = {"customers": sizes.detect_large, "small": sizes.detect_small}
    events_ok = True
    peaks: dict[int, int] = {}
    polls: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    for customers in (sizes.detect_small, sizes.detect_large):
        with Installation(sandbox, redis_url, customers_flow(TARGET)) as installation:
            installation.seed_erp(customers)
            primed = installation.detect("prime")
            if primed["changed"] != customers:
                raise BenchError(f"the priming poll found {primed['changed']} of {customers}")
            editor = ErpEditor(installation.erp(), customers)
            rounds = 1 if customers == sizes.detect_small else sizes.detect_rounds
            for round_ in range(rounds):
                changed = edit_share(editor, customers, round_)
                if customers == sizes.detect_large:
                    pages.append(installation.detect("page"))
                poll = installation.detect("poll")
                poll["edited"] = changed
                events_ok &= (
                    poll["events"] == changed
                    and poll["changed"] == changed
                    and poll["deleted"] == 0
                    and poll["deliveries"] == changed
                )
                peaks[customers] = max(peaks.get(customers, 0), poll["peak_rss_kb"])
                if customers == sizes.detect_large:
                    polls.append(poll)
    best_poll = min(polls, key=lambda p: p["seconds"])
    best_page = min(pages, key=lambda p: p["seconds"])
    # Each round pages, then polls, a moment apart: a neighbour's burst of CPU falls on
    # both, so the median of the per-round ratios is the figure (research notes §8).
    ratios = [poll["seconds"] / page["seconds"] for poll, page in zip(polls, pages, strict=True)]
    report.update(
        {
            "poll_seconds": best_poll["seconds"],
            "page_seconds": best_page["seconds"],
            "ratio": statistics.median(ratios),
            "round_ratios": [round(r, 3) for r in ratios],
            "poll_cpu_s": best_poll["cpu_s"],
            "page_cpu_s": best_page["cpu_s"],
            # CPU seconds are less disturbed by a busy machine than wall time: shown beside
            "cpu_ratio": min(p["cpu_s"] for p in polls) / min(p["cpu_s"] for p in pages),
            "changes_per_poll": [p["edited"] for p in polls],
            "events_per_poll": [p["events"] for p in polls],
            "events_equal_changes": events_ok,
            "peak_rss_mb_small": peaks[sizes.detect_small] / 1024,
            "peak_rss_mb_large": peaks[sizes.detect_large] / 1024,
            "memory_growth_mb": (peaks[sizes.detect_large] - peaks[sizes.detect_small]) / 1024,
            "peak_reset": all(p["peak_reset"] for p in polls),
            "polls": polls,
            "pages": pages,
        }
    )
    return report


# --- 5. latency --------------------------------------------------------------------------


def measure_latency(installation: Installation, sizes: Sizes) -> dict[str, Any]:
    """ERP edit → applied in every target, one edit at a time at a random moment."""
    customers = sizes.latency_customers
    installation.seed_erp(customers)
    service = ProducerService(installation.settings)
    rng = random.Random(9)
    latencies: list[float] = []
    per_target: dict[str, list[float]] = {t: [] for t in LATENCY_TARGETS}
    try:
        with producing(service, sizes.poll_interval_s):
            wait_for(
                lambda: all(
                    outcomes(installation, t) >= customers
                    and outcomes(installation, t) >= installation.counters(t).get("produced", 0)
                    for t in LATENCY_TARGETS
                ),
                timeout_s=600,
                what="the initial load before the latency edits",
            )
            editor = ErpEditor(installation.erp(), customers)
            for _ in range(sizes.latency_edits):
                time.sleep(rng.uniform(0, sizes.poll_interval_s))
                index = rng.randrange(customers)
                key = editor.records[index]["NoClient"]
                edited_at = editor.edit(index)
                arrived = _arrival(installation, key, edited_at, timeout_s=120)
                latencies.append(max(arrived.values()) - edited_at)
                for target, at in arrived.items():
                    per_target[target].append(at - edited_at)
    finally:
        service.close()
    return {
        "poll_interval_s": sizes.poll_interval_s,
        "edits": len(latencies),
        "targets": list(LATENCY_TARGETS),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "per_target_p50_s": {t: percentile(v, 50) for t, v in per_target.items()},
    }


def _arrival(
    installation: Installation, key: str, after: float, *, timeout_s: float
) -> dict[str, float]:
    """When each target's ledger recorded the record as applied after ``after``."""
    ledgers = {t: installation.keys.ledger(t, "customer", key) for t in LATENCY_TARGETS}
    deadline = time.monotonic() + timeout_s
    while True:
        with installation.redis.pipeline(transaction=False) as pipe:
            for ledger in ledgers.values():
                pipe.hget(ledger, "applied_at")
            values = pipe.execute()
        times = {t: float(v or 0) for t, v in zip(ledgers, values, strict=True)}
        if all(at >= after for at in times.values()):
            return times
        if time.monotonic() > deadline:
            raise BenchError(f"edit of {key} not in every target after {timeout_s:g} s: {times}")
        time.sleep(0.005)


# --- the run -----------------------------------------------------------------------------


SECTIONS = ("overhead", "initial_load", "rate_limited", "detection", "latency", "reconcile")
#: sections run only when named (``--only``): what a design choice costs, not a goal
CHOICES = ("batch_slots",)


@contextlib.contextmanager
def producer_logging(stream: IO[str], level: str | None = None) -> Iterator[None]:
    """The bench process's producer logs at ``level`` (None: the default) for the block.

    As ``erpsync produce`` configures it (JSON: ``stream`` is no terminal), except that its
    loggers are not cached, so that the level can change between rounds; back to the
    default afterwards.
    """
    configure_logging(level or DEFAULT_LOG_LEVEL, "json", stream=stream, cache_loggers=False)
    try:
        yield
    finally:
        if level is not None:
            configure_logging(DEFAULT_LOG_LEVEL, "json", stream=stream, cache_loggers=False)


def measure_bulk_loads(sandbox: Sandbox, url: str, sizes: Sizes, log: IO[str]) -> dict[str, Any]:
    """The bulk initial load at the default log level and at :data:`QUIET_LOG_LEVEL`.

    A bulk load lasts a few seconds, where a moment of the shared machine's noise weighs far
    more than in the single path's minute: each figure is the median of rounds, each from a
    fresh worker, the two levels alternating round by round; what logging costs is the
    median of the rounds' ratios (a round's two loads a few seconds apart meet much the
    same load of the machine).
    """
    rounds: dict[str | None, list[dict[str, Any]]] = {None: [], QUIET_LOG_LEVEL: []}
    for _ in range(sizes.rounds):
        for level, found in rounds.items():
            with (
                producer_logging(log, level),
                Installation(sandbox, url, customers_flow(TARGET), log_level=level) as installation,
            ):
                installation.start_worker(f"--queues={TARGET}")
                found.append(measure_load(installation, sizes.initial_load, bulk=True))

    def median(found: list[dict[str, Any]]) -> dict[str, Any]:
        middle = sorted(found, key=lambda r: float(r["seconds"]))[len(found) // 2]
        return {**middle, "rounds_seconds": [round(float(r["seconds"]), 3) for r in found]}

    ratios = [
        float(default["seconds"]) / float(quiet["seconds"])
        for default, quiet in zip(rounds[None], rounds[QUIET_LOG_LEVEL], strict=True)
    ]
    return {
        "bulk": {**median(rounds[None]), "round_ratios_to_quiet": [round(r, 3) for r in ratios]},
        "bulk_quiet": median(rounds[QUIET_LOG_LEVEL]),
    }


def run(
    sizes: Sizes, redis_url: str | None, sections: tuple[str, ...] = SECTIONS
) -> dict[str, Any]:
    """Every figure (or those of ``sections``), in one run, on one Redis and one sandbox."""
    log_path = Path(tempfile.mkdtemp(prefix="erpsync-bench-")) / "producer.log"
    with log_path.open("a", encoding="utf-8") as log, producer_logging(log):
        report = _run(sizes, redis_url, sections, log)
    report["producer_log"] = str(log_path)
    return report


def _run(
    sizes: Sizes, redis_url: str | None, sections: tuple[str, ...], log: IO[str]
) -> dict[str, Any]:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    report: dict[str, Any] = {
        "machine": machine_info(),
        "settings": asdict(sizes),
        "log_level": DEFAULT_LOG_LEVEL,
        "bulk_available": bulk_available(),
    }

    def timed(name: str) -> Callable[[], None]:
        began = time.perf_counter()
        return lambda: timings.__setitem__(name, time.perf_counter() - began)

    with redis_server(redis_url) as url, sandbox_process() as sandbox:
        if "overhead" in sections or "initial_load" in sections:
            with Installation(sandbox, url, customers_flow(TARGET)) as installation:
                installation.start_worker(f"--queues={TARGET}")
                report["worker"] = installation.settings.worker.model_dump(
                    include={"pool", "concurrency", "prefetch_multiplier"}
                )
                if "overhead" in sections:
                    done = timed("overhead")
                    report["overhead"] = measure_overhead(installation, sizes)
                    done()
                if "initial_load" in sections:
                    done = timed("initial_load")
                    report["initial_load"] = {
                        "single": measure_load(installation, sizes.initial_load, bulk=False)
                    }
                    done()
        if "initial_load" in sections and report["bulk_available"]:
            done = timed("initial_load_bulk")
            report["initial_load"].update(measure_bulk_loads(sandbox, url, sizes, log))
            done()

        if "rate_limited" in sections:
            done = timed("rate_limited")
            limited = {TARGET: {"rate_limit_per_s": float(sizes.rate_limit_per_s)}}
            from_poll: dict[str, Any] | None = None
            with Installation(
                sandbox, url, customers_flow(TARGET), systems=limited
            ) as installation:
                installation.start_worker(f"--queues={TARGET}")
                report["rate_limited"] = {"single": measure_rate_limited(installation, sizes)}
                if report["bulk_available"]:
                    from_poll = measure_load(
                        installation,
                        sizes.rate_limited_bulk_records,
                        bulk=True,
                        faults=limit_faults(sizes),
                    )
            if from_poll is not None:
                with Installation(
                    sandbox, url, customers_flow(TARGET), systems=limited
                ) as installation:
                    report["rate_limited"]["bulk"] = measure_rate_limited_bulk(
                        installation, sizes, from_poll
                    )
            done()

        if "detection" in sections:
            done = timed("detection")
            report["detection"] = measure_detection(sandbox, url, sizes)
            done()

        if "reconcile" in sections:
            done = timed("reconcile")
            report["reconcile"] = measure_reconcile(sandbox, url, ReconcileSizes.of(sizes.quick))
            done()

        if "batch_slots" in sections and report["bulk_available"]:
            from bench.slots import measure_batch_slots  # it builds on this module

            done = timed("batch_slots")
            report["batch_slots"] = measure_batch_slots(sandbox, url, sizes)
            done()

        if "latency" in sections:
            done = timed("latency")
            with Installation(sandbox, url, customers_flow(*LATENCY_TARGETS)) as installation:
                installation.start_worker()
                report["latency"] = measure_latency(installation, sizes)
            done()
    timings["total"] = time.perf_counter() - started
    report["timings_s"] = timings
    report["goals"] = evaluate(report)
    return report


# --- goals and output --------------------------------------------------------------------


def figures(report: dict[str, Any]) -> dict[str, float | bool | None]:
    """The figures issue 9 sets goals for (None: not measured in this run)."""
    found: dict[str, float | bool | None] = dict.fromkeys(GOALS)
    if "overhead" in report:
        found["overhead_ratio"] = report["overhead"]["ratio"]
    load = report.get("initial_load", {})
    if "single" in load and "bulk" in load:
        found["bulk_speedup"] = load["bulk"]["records_per_s"] / load["single"]["records_per_s"]
        found["bulk_requests_per_record"] = load["bulk"]["requests_per_record"]
    if "bulk" in load and "bulk_quiet" in load:
        found["bulk_default_log_cost"] = statistics.median(load["bulk"]["round_ratios_to_quiet"])
    for path, limited in report.get("rate_limited", {}).items():
        found[f"rate_limited_share_{path}"] = limited["share_of_limit"]
        found[f"rate_limited_429_share_{path}"] = limited["share_429"]
    if "detection" in report:
        found["detection_ratio"] = report["detection"]["ratio"]
        found["memory_growth_mb"] = report["detection"]["memory_growth_mb"]
        found["events_equal_changes"] = report["detection"]["events_equal_changes"]
    if "reconcile" in report:
        found["reconcile_ratio"] = report["reconcile"]["ratio"]
        found["reconcile_memory_growth_mb"] = report["reconcile"]["memory_growth_mb"]
    return found


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with its figure and whether it holds (None: not measured)."""
    rows = []
    for name, value in figures(report).items():
        op, bound = GOALS[name]
        holds: bool | None = None
        if isinstance(value, bool):
            holds = value
        elif value is not None:
            holds = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        goal = "exactly" if op == "==" else f"{op} {bound:g}"
        rows.append({"figure": name, "value": value, "goal": goal, "holds": holds})
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{rounded(value, digits):,}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) + " s"


def _mark(holds: bool | None) -> str:
    return {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]n/a[/]"}[holds]


def print_report(report: dict[str, Any], console: Console) -> None:
    """The report as one table of figures, each next to its goal."""
    machine, sizes = report["machine"], report["settings"]
    worker = report.get("worker")
    console.print(
        f"[bold]erpsync pipeline benchmark[/bold]: {machine['cores']} cores "
        f"({machine['cpu_model']}), load average {machine['load_average_1m_at_start']} at "
        f"start, Python {machine['python']}{', --quick' if sizes['quick'] else ''}"
        + (
            f"; worker {worker['pool']} × {worker['concurrency']}, prefetch "
            f"×{worker['prefetch_multiplier']}"
            if worker
            else ""
        )
        + f"; log level {report['log_level']} (the default) unless stated"
    )
    goals = {row["figure"]: row for row in report["goals"]}
    table = Table(title_justify="left")
    for column in ("figure", "measured", "side by side", "goal", ""):
        table.add_column(
            column, justify="left" if column in ("figure", "side by side") else "right"
        )

    def goal_row(label: str, name: str, detail: str, digits: int = 3) -> None:
        row = goals[name]
        table.add_row(label, _fmt(row["value"], digits), detail, row["goal"], _mark(row["holds"]))

    if "overhead" in report:
        o = report["overhead"]
        goal_row(
            "pipeline overhead: sync.apply ÷ sync.noop",
            "overhead_ratio",
            f"{_fmt(o['apply_per_s'])} vs {_fmt(o['noop_per_s'])} msg/s (best rounds; "
            f"median of {len(o['round_ratios'])} round ratios)",
        )
    if "initial_load" in report:
        single = report["initial_load"]["single"]
        bulk = report["initial_load"].get("bulk")
        load = f"initial load of {single['customers']:,} customers"
        if bulk:
            goal_row(
                f"{load}: bulk ÷ single records/s",
                "bulk_speedup",
                f"{_fmt(bulk['records_per_s'])} vs {_fmt(single['records_per_s'])} records/s, "
                f"both at {bulk['log_level']}",
            )
            quiet = report["initial_load"].get("bulk_quiet")
            if quiet:
                goal_row(
                    f"  bulk load at {bulk['log_level']} ÷ at {quiet['log_level']} (seconds)",
                    "bulk_default_log_cost",
                    f"median of round ratios {bulk['round_ratios_to_quiet']}; "
                    f"{_seconds(bulk['rounds_seconds'])} vs {_seconds(quiet['rounds_seconds'])}"
                    f"; worker CPU {bulk['worker_cpu_ms_per_record']:.3f} vs "
                    f"{quiet['worker_cpu_ms_per_record']:.3f} ms/record",
                )
            goal_row(
                "  bulk HTTP requests per record",
                "bulk_requests_per_record",
                f"single: {_fmt(single['requests_per_record'])}",
            )
        else:
            table.add_row(
                f"{load}: single-record path",
                f"{_fmt(single['records_per_s'])}/s",
                f"{_fmt(single['requests_per_record'])} HTTP requests per record; "
                "bulk: not available",
                "",
                _mark(None),
            )
    if "rate_limited" in report:
        for path in ("single", "bulk"):
            limited = report["rate_limited"].get(path)
            if limited is None:
                table.add_row(f"  rate-limited {path} path", "—", f"{path}: not available", "", "")
                continue
            detail = (
                f"{_fmt(limited['records_per_s'])} records/s of "
                f"{_fmt(limited['allowed_records_per_s'])} allowed, {limited['seconds']:.1f} s"
            )
            polled = limited.get("from_poll")
            if polled:
                detail += (
                    f"; from the poll's start: {_fmt(polled['share_of_limit'])} "
                    f"({polled['seconds']:.1f} s, poll {polled['poll_seconds']:.1f} s)"
                )
            goal_row(
                f"limit {limited['limit_per_s']} req/s, {limited['latency_ms']} ms: share used "
                f"({path})",
                f"rate_limited_share_{path}",
                detail,
            )
            goal_row(
                f"  429 answers ({path})",
                f"rate_limited_429_share_{path}",
                f"{limited['answers_429']} of {limited['http_requests']} requests",
                digits=2,
            )
    if "detection" in report:
        d = report["detection"]
        goal_row(
            f"change detection, {d['customers']:,} customers, 1% changed: poll ÷ paging",
            "detection_ratio",
            f"median of {len(d['round_ratios'])} rounds; best {d['poll_seconds']:.2f} s vs "
            f"{d['page_seconds']:.2f} s; CPU {d['poll_cpu_s']:.2f} s vs {d['page_cpu_s']:.2f} s "
            f"(× {d['cpu_ratio']:.2f})",
        )
        goal_row(
            f"  poll peak memory growth {d['small']:,} → {d['customers']:,} (MB)",
            "memory_growth_mb",
            f"peak RSS {d['peak_rss_mb_small']:.0f} → {d['peak_rss_mb_large']:.0f} MB",
        )
        goal_row(
            "  events emitted = records changed",
            "events_equal_changes",
            f"{d['events_per_poll']} events for {d['changes_per_poll']} changes",
        )
    if "reconcile" in report:
        r = report["reconcile"]
        goal_row(
            f"reconcile, {r['customers']:,} customers, 3 targets: ÷ reading them all",
            "reconcile_ratio",
            f"median of {len(r['round_ratios'])} rounds; best {r['reconcile_seconds']:.1f} s "
            f"vs {r['page_seconds']:.1f} s (compare {r['reconcile_compare_seconds']:.1f} s)",
        )
        goal_row(
            f"  reconcile peak memory growth {r['small']:,} → {r['customers']:,} (MB)",
            "reconcile_memory_growth_mb",
            f"peak RSS {r['peak_rss_mb_small']:.0f} → {r['peak_rss_mb_large']:.0f} MB",
        )
    if "latency" in report:
        lat = report["latency"]
        table.add_row(
            "latency ERP edit → every target: p50 / p99 (s)",
            f"{lat['p50_s']:.2f} / {lat['p99_s']:.2f}",
            f"{lat['edits']} edits, producer polling every {lat['poll_interval_s']:g} s",
            "",
            "",
        )
    if "batch_slots" in report:
        b = report["batch_slots"]
        for slots, ratio in b["seconds_to_default"].items():
            m = b[slots]
            table.add_row(
                f"bulk drain, {b['customers']:,} customers, batch_cpu_slots = {slots}"
                + (" (no bound)" if slots == "0" else ""),
                f"{m['records_per_s']:.0f} rec/s",
                f"median of {b['rounds']}: {m['seconds']:.2f} s (÷ default {ratio:.3f}), "
                f"worker CPU {m['worker_cpu_ms_per_record']:.3f} ms/record, "
                f"dependency waits {m['dependency_waits']:.0f}",
                "",
                "",
            )
    console.print(table)
    timings = report["timings_s"]
    console.print(
        "timings: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``python -m bench``)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument(
        "--redis-url", default=None, help="a Redis to use (default: an embedded one)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {', '.join(SECTIONS)}; "
        f"only when named: {', '.join(CHOICES)})",
    )
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS) - set(CHOICES)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    report = run(Sizes.of(args.quick), args.redis_url, sections)
    if args.json:
        print_json(report)
    else:
        console = Console()
        print_report(report, console if console.is_terminal else Console(width=170))
    return 0


if __name__ == "__main__":
    sys.exit(main())
