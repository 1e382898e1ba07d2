"""Shared helpers for the benchmarks: load runs, CPU accounting, percentiles, output.

Every benchmark reports ratios measured side by side in one run (research notes,
peers-performance.md §3–4): absolute rates depend on the machine and on whatever else runs
on it, so each figure comes with its yardstick, measured the same way a moment apart, and
with the CPU each side used, which says which side was the limit.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis

ClientT = TypeVar("ClientT")

#: a process using at least this share of one core is taken as CPU-bound
SATURATED_CORE_SHARE = 0.85


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cores() -> int:
    """CPUs this process may run on (the affinity mask when the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What the figures were measured on; the load average says how busy it already was."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cores": cores(),
        "logical_cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(terse=True),
        "python": sys.version.split()[0],
        "load_average_1m_at_start": round(load[0], 2),
    }


def _machine_busy_s() -> float | None:
    """CPU seconds spent busy by the whole machine so far (Linux ``/proc/stat``), else None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSample:
    """CPU counters at one instant: wall clock, this process, the server process, machine."""

    wall_s: float
    client_cpu_s: float
    server_cpu_s: float | None
    machine_busy_s: float | None


@dataclass
class CpuUse:
    """Cores used over an interval by the client (this process), the server and the rest."""

    wall_s: float
    client: float
    server: float | None
    others: float | None

    @staticmethod
    def between(start: CpuSample, end: CpuSample) -> CpuUse:
        """The average number of cores each side kept busy between two samples."""
        wall = max(end.wall_s - start.wall_s, 1e-9)
        client = (end.client_cpu_s - start.client_cpu_s) / wall
        server = None
        if end.server_cpu_s is not None and start.server_cpu_s is not None:
            server = (end.server_cpu_s - start.server_cpu_s) / wall
        others = None
        if end.machine_busy_s is not None and start.machine_busy_s is not None:
            machine = (end.machine_busy_s - start.machine_busy_s) / wall
            # /proc/stat ticks are coarse: a short interval may show slightly negative rest
            others = max(0.0, machine - client - (server or 0.0))
        return CpuUse(wall, client, server, others)

    def limit(self, clients: int, machine_cores: int) -> str:
        """Which side held the rate back, as far as CPU use can tell."""
        client_bound = self.client >= SATURATED_CORE_SHARE
        server_bound = self.server is not None and self.server >= SATURATED_CORE_SHARE
        busy = self.client + (self.server or 0.0) + (self.others or 0.0)
        if client_bound and server_bound:
            return "both CPUs"
        if client_bound:
            return "client CPU"
        if server_bound:
            return "server CPU"
        if busy >= SATURATED_CORE_SHARE * machine_cores:
            return "machine CPU (shared)"
        if clients == 1:
            # One request at a time: the sides take turns; say which takes most of each turn.
            shares = self.client + (self.server or 0.0)
            client_part = self.client / shares if shares > 0 else 0.0
            return f"round trip ({client_part:.0%} client)"
        return "neither (latency)"

    def as_dict(self) -> dict[str, float | None]:
        """Cores used, rounded for output."""
        return {
            "client_cores": round(self.client, 3),
            "server_cores": None if self.server is None else round(self.server, 3),
            "other_cores": None if self.others is None else round(self.others, 3),
        }


class CpuMeter:
    """Samples CPU counters; the server's come from a callable (it is another process)."""

    def __init__(self, server_cpu_s: Callable[[], float] | None = None) -> None:
        self._server_cpu_s = server_cpu_s

    def sample(self) -> CpuSample:
        """Counters now (the server is asked first, so its request is outside the window)."""
        server = self._server_cpu_s() if self._server_cpu_s is not None else None
        return CpuSample(time.perf_counter(), time.process_time(), server, _machine_busy_s())


@dataclass
class LoadResult:
    """What a fixed-duration load run achieved."""

    clients: int
    requests: int
    errors: int
    elapsed_s: float
    latencies_s: list[float] = field(repr=False)
    cpu: CpuUse
    first_error: str | None = None

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def server_s_per_request(self) -> float | None:
        """Server CPU seconds per request: its cost whatever held the rate back."""
        if self.cpu.server is None or not self.requests:
            return None
        return self.cpu.server * self.cpu.wall_s / self.requests

    @property
    def server_capacity(self) -> float | None:
        """Requests per second the server could answer with one core fully busy.

        The server runs one event loop, so one core is its ceiling; when the client is the
        limit (the usual case on loopback with httpx), this is the figure that says how far
        the server is from being the bottleneck.
        """
        cost = self.server_s_per_request
        return 1 / cost if cost else None

    def latency_ms(self, q: float) -> float:
        """The ``q``-th percentile latency in milliseconds."""
        return percentile(self.latencies_s, q) * 1000 if self.latencies_s else math.nan


@dataclass
class _Worker(Generic[ClientT]):
    client: ClientT
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None


def run_load(
    *,
    clients: int,
    duration_s: float,
    open_client: Callable[[int], ClientT],
    request: Callable[[ClientT, int, int], bool],
    close_client: Callable[[ClientT], None],
    meter: CpuMeter,
    warmup: int = 3,
) -> LoadResult:
    """Run ``clients`` threads, each with its own client, issuing requests for ``duration_s``.

    ``open_client(i)`` builds thread ``i``'s client outside the timed window (connections,
    tokens); ``request(client, i, n)`` issues the n-th request of thread ``i`` and returns
    whether the answer was the expected one. Every thread warms up, then all start together
    at a barrier and stop at the same deadline; CPU use is sampled over that window only.
    """
    workers: list[_Worker[ClientT]] = []
    failures: list[BaseException] = []
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    deadline = [0.0]
    finished = [0.0] * clients

    def body(index: int) -> None:
        worker = workers[index]
        try:
            for n in range(warmup):
                request(worker.client, index, -1 - n)
        except Exception as exc:  # noqa: BLE001 - reported once, by the caller
            failures.append(exc)
        ready.wait()
        go.wait()
        n = 0
        latencies = worker.latencies
        perf = time.perf_counter
        end = deadline[0]
        while True:
            started = perf()
            if started >= end:
                break
            try:
                ok = request(worker.client, index, n)
            except Exception as exc:  # noqa: BLE001 - a transport error is an error answer
                ok = False
                if worker.first_error is None:
                    worker.first_error = f"{type(exc).__name__}: {exc}"
            latencies.append(perf() - started)
            if not ok:
                worker.errors += 1
                if worker.first_error is None:
                    worker.first_error = "unexpected answer"
            n += 1
        finished[index] = perf()

    for index in range(clients):
        workers.append(_Worker(open_client(index)))
    threads = [
        threading.Thread(target=body, args=(i,), name=f"bench-client-{i}", daemon=True)
        for i in range(clients)
    ]
    try:
        for thread in threads:
            thread.start()
        ready.wait()
        if failures:
            go.set()
            raise RuntimeError(f"warm-up failed: {type(failures[0]).__name__}: {failures[0]}")
        start = meter.sample()
        deadline[0] = start.wall_s + duration_s
        go.set()
        for thread in threads:
            thread.join()
        end = meter.sample()
    finally:
        go.set()
        for thread in threads:
            thread.join(timeout=30)
        for worker in workers:
            close_client(worker.client)
    elapsed = max(finished) - start.wall_s
    latencies = [value for worker in workers for value in worker.latencies]
    return LoadResult(
        clients=clients,
        requests=len(latencies),
        errors=sum(worker.errors for worker in workers),
        elapsed_s=elapsed,
        latencies_s=latencies,
        cpu=CpuUse.between(start, end),
        first_error=next((w.first_error for w in workers if w.first_error), None),
    )


def best_of(results: Sequence[LoadResult]) -> LoadResult:
    """The round with the highest rate.

    On a shared machine a neighbour's burst of CPU can only slow a round down, so the best
    round is the least disturbed one (``timeit``'s reasoning for taking the minimum).
    """
    return max(results, key=lambda result: result.rate)


def ratio(value: float, yardstick: float) -> float:
    """``value / yardstick``, NaN when the yardstick is zero."""
    return value / yardstick if yardstick > 0 else math.nan


def rounded(value: float, digits: int = 3) -> float:
    """A figure for output: ``digits`` significant digits."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def print_json(report: dict[str, Any]) -> None:
    """The report as one JSON document on stdout."""
    print(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False, default=str))


def key_values(client: redis.Redis, key: str) -> tuple[str, list[Any]]:
    """A Redis key's type and everything it holds, whatever the type (a hash's field names
    and values; a stream's entries as JSON)."""
    kind = str(client.type(key))
    values: list[Any] = []
    if kind == "string":
        values = [client.get(key)]
    elif kind == "hash":
        fields = client.hgetall(key)
        values = [*fields.keys(), *fields.values()]
    elif kind == "list":
        values = list(client.lrange(key, 0, -1))
    elif kind == "set":
        values = list(client.smembers(key))
    elif kind == "zset":
        values = list(client.zrange(key, 0, -1))
    elif kind == "stream":
        values = [json.dumps(entry) for entry in client.xrange(key) or []]
    return kind, values
