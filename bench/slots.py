"""What bounding a worker's batches costs: ``worker.batch_cpu_slots`` side by side.

A worker process's batches do their own work (reading, locking and mapping records,
recording outcomes) under one interpreter lock; ``batch_cpu_slots`` bounds how many do it
at once (a semaphore given up while a batch waits: its bulk call, parents on their way).
Each round drains the producer's bulk batches of an initial load of N customers, staged
before the worker starts (so the figure is the worker's, not the poll's), once per setting
in turn; each setting's figure is the median of its rounds: seconds, records/s, the
worker's CPU per record, dependency waits (a child parked behind its parent's batch).
Run: ``uv run python -m bench --only batch_slots``.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench._harness import Installation, Sandbox, customers_flow
from bench.pipeline import TARGET, Sizes, outcomes, stage_bulk_load
from state.messages import queue_for

#: the settings compared: the default first
SLOTS: tuple[int, ...] = (2, 0, 1)


def measure_batch_slots(
    sandbox: Sandbox, url: str, sizes: Sizes, slots: tuple[int, ...] = SLOTS
) -> dict[str, Any]:
    """Per setting of ``batch_cpu_slots`` (0: no bound): the staged bulk load's drain."""
    rounds: dict[int, list[dict[str, float]]] = {n: [] for n in slots}
    customers = sizes.initial_load
    for _ in range(sizes.rounds):
        for n in slots:
            with Installation(
                sandbox, url, customers_flow(TARGET), worker={"batch_cpu_slots": n}
            ) as installation:
                rounds[n].append(drain_bulk_load(installation, customers))
    found: dict[str, Any] = {"customers": customers, "rounds": sizes.rounds}
    for n, measured in rounds.items():
        found[str(n)] = {
            "seconds": statistics.median(m["seconds"] for m in measured),
            "records_per_s": statistics.median(m["records_per_s"] for m in measured),
            "worker_cpu_ms_per_record": statistics.median(
                m["worker_cpu_ms_per_record"] for m in measured
            ),
            "dependency_waits": max(m["dependency_waits"] for m in measured),
            "rounds_seconds": [round(m["seconds"], 3) for m in measured],
        }
    default = found[str(slots[0])]["seconds"]
    found["seconds_to_default"] = {
        str(n): round(found[str(n)]["seconds"] / default, 3) for n in slots
    }
    return found


def drain_bulk_load(installation: Installation, customers: int) -> dict[str, float]:
    """The producer's batches of ``customers`` staged, then drained by a fresh worker."""
    staged, deliveries = stage_bulk_load(installation, customers)
    installation.start_worker(f"--queues={TARGET}")
    expected = outcomes(installation, TARGET) + deliveries
    drain = installation.drain(
        staged,
        queue_for(TARGET),
        timeout_s=600,
        done=lambda: (
            outcomes(installation, TARGET) >= expected
            and installation.redis.zcard(installation.keys.delayed()) == 0
        ),
    )
    counters = installation.counters(TARGET)
    return {
        "seconds": drain.seconds,
        "records_per_s": customers / drain.seconds,
        "worker_cpu_ms_per_record": drain.workers_cpu_s / customers * 1e3,
        "dependency_waits": float(counters.get("dependency_waits", 0)),
    }
