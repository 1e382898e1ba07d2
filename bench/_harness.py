"""A whole erpsync installation for the pipeline benchmarks, and the probes that time it.

Real pieces only, as in the integration tests: the sandbox over HTTP on 127.0.0.1
(:class:`simulators.server.RunningSandbox`, in a child process of its own, so that its CPU
is counted apart and never competes with a producer for a GIL), one Redis for
every figure of a run (an embedded one unless ``--redis-url`` names one), real
``erpsync worker`` processes started here as subprocesses (ended here, by pid), and the
producer. Each installation gets a key prefix of its own, removed when it closes.

Rates are measured by **draining a pre-filled queue**: the messages are published to a
staging queue nobody consumes, then the staging list is renamed onto the worker's queue in
one Redis command, so the clock starts with the whole backlog in place and the publisher's
own CPU is outside the window. The window ends when the queue and kombu's unacked hash are
both empty (with ``acks_late`` a message leaves the unacked hash when its task has run).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis
import tomli_w
from celery import Celery

from adapters import make_client
from adapters.onlineerp import ErpCustomer, OnlineErpClient
from cli.embedded_redis import EmbeddedRedis
from erpsync.events import ChangeEvent, Delivery
from erpsync.settings import Settings, load_settings
from producers.onlineerp import customer_payload
from simulators.seed import generate, make_customer
from simulators.server import API_ROOTS, CREDENTIALS, RunningSandbox
from state.keys import Keys
from state.messages import TASK_APPLY, create_app
from state.publish import CHUNK, describe, send_delivery

ROOT = Path(__file__).resolve().parents[1]

#: the worker settings every figure shares (the project's defaults for pool, concurrency
#: and prefetch; quick recovery so that a lost message never stalls a run for minutes)
WORKER: dict[str, Any] = {
    "pool": "threads",
    "concurrency": 8,
    "prefetch_multiplier": 4,
    "visibility_timeout_s": 120.0,
    "unacked_restore_interval_s": 5.0,
    "transient_max_attempts": 20,
    "transient_base_s": 0.2,
    "transient_cap_s": 2.0,
    "dependency_max_waits": 60,
    "dependency_base_s": 0.2,
    "dependency_cap_s": 2.0,
    "circuit_failure_threshold": 50,
    "circuit_cooldown_s": 1.0,
    "circuit_cooldown_max_s": 2.0,
    "pump_interval_s": 0.05,
}


class BenchError(RuntimeError):
    """A benchmark could not measure what it promised (a worker died, a run timed out)."""


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """``url`` when given (it must answer), else an embedded Redis for the whole run."""
    if url:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        yield url
        return
    with EmbeddedRedis() as embedded:
        yield embedded.url


def erp_customer(index: int, *, name: str | None = None) -> ErpCustomer:
    """A seed-shaped ERP customer without a parent, keyed ``B<index>``."""
    import random

    raw = make_customer(random.Random(index), index, None)
    raw["NoClient"] = f"B{index:07d}"
    if name is not None:
        raw["NomClient"] = name
    return ErpCustomer.model_validate(raw)


def customer_deliveries(
    first: int, count: int, target: str, *, flow: str = "customers", version: int = 1
) -> list[Delivery]:
    """``count`` initial-load deliveries of distinct customers to ``target``.

    Each payload is what the OnlineERP producer makes of a seed customer (its own mapping
    code), so sinks validate and send exactly what a real load sends.
    """
    deliveries = []
    for index in range(first, first + count):
        customer = erp_customer(index)
        event = ChangeEvent.create(
            flow=flow,
            source="onlineerp",
            entity="customer",
            key=customer.number,
            operation="upsert",
            payload=customer_payload(customer, {}),
            source_version=version,
        )
        deliveries.append(Delivery(event=event, target=target))
    return deliveries


@dataclass(frozen=True)
class Endpoint:
    """Where one simulator of the sandbox process listens."""

    system: str
    url: str

    @property
    def api_url(self) -> str:
        """The base URL a client of the vendor API uses."""
        return self.url + API_ROOTS.get(self.system, "")


@dataclass
class Sandbox:
    """The sandbox served by a child process (its own GIL, its CPU counted apart)."""

    pid: int
    endpoints: dict[str, Endpoint]


def serve_sandbox() -> None:
    """Child process: serve the sandbox, print the URLs as one JSON line, stop at stdin EOF."""
    running = RunningSandbox().start()
    try:
        print(json.dumps({s: e.url for s, e in running.endpoints.items()}), flush=True)
        sys.stdin.read()
    finally:
        running.stop()


@contextlib.contextmanager
def sandbox_process() -> Iterator[Sandbox]:
    """Start the sandbox child process; it ends when this context closes its stdin."""
    child = subprocess.Popen(
        [sys.executable, "-c", "from bench._harness import serve_sandbox; serve_sandbox()"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout is not None else ""
        if not line:
            raise BenchError(f"the sandbox process exited early (code {child.wait()})")
        urls: dict[str, str] = json.loads(line)
        yield Sandbox(child.pid, {s: Endpoint(s, url) for s, url in urls.items()})
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by the workers, the sandbox, Redis, the machine; Redis calls."""

    wall_s: float
    workers_cpu_s: float
    sandbox_cpu_s: float
    redis_cpu_s: float
    machine_busy_s: float
    redis_calls: int


@dataclass(frozen=True)
class Drain:
    """One timed drain of a pre-filled queue."""

    messages: int
    seconds: float
    workers_cpu_s: float
    sandbox_cpu_s: float
    redis_cpu_s: float
    machine_busy_s: float
    redis_calls: int

    @property
    def per_s(self) -> float:
        """Messages taken to their end per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        """The drain's figures per message, for the JSON report."""
        n = max(1, self.messages)
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.per_s, 1),
            "worker_cpu_us_per_message": round(self.workers_cpu_s / n * 1e6, 1),
            "sandbox_cpu_us_per_message": round(self.sandbox_cpu_s / n * 1e6, 1),
            "redis_cpu_us_per_message": round(self.redis_cpu_s / n * 1e6, 1),
            "redis_commands_per_message": round(self.redis_calls / n, 2),
            "machine_cores_busy": round(self.machine_busy_s / max(self.seconds, 1e-9), 2),
        }


def _process_cpu_s(pid: int) -> float:
    """utime + stime of a process and its reaped children, from ``/proc`` (0 when gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14..17
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(value) for value in handle.read().split()]
    except OSError:
        return []


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``; 0 where unknown)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            ticks = [int(value) for value in handle.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its live descendants (prefork children too)."""
    total = _process_cpu_s(pid)
    for child in _children(pid):
        total += process_tree_cpu_s(child)
    return total


@dataclass
class Installation:
    """Sandbox + Redis + erpsync worker processes + a publisher, under one key prefix."""

    sandbox: Sandbox
    redis_url: str
    flows: dict[str, Any]
    worker: dict[str, Any] = field(default_factory=dict)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the workers' log level; None: the product's default (what users run)
    log_level: str | None = None
    #: other top-level settings (``trace_max_events`` …)
    extra: dict[str, Any] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="erpsync-bench-")))
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    settings: Settings = field(init=False)
    keys: Keys = field(init=False)
    redis: redis.Redis = field(init=False)
    _app: Celery | None = None
    _logs: list[Any] = field(default_factory=list)
    _closing: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        systems: dict[str, Any] = {}
        for name, endpoint in self.sandbox.endpoints.items():
            systems[name] = {
                "base_url": endpoint.api_url,
                **CREDENTIALS[name],
                **self.systems.get(name, {}),
            }
        config: dict[str, Any] = {
            "redis_url": self.redis_url,
            "key_prefix": self.prefix,
            "systems": systems,
            "flows": self.flows,
            "worker": {**WORKER, **self.worker},
        }
        if self.log_level is not None:
            config["log_level"] = self.log_level
        config.update(self.extra)
        self.config_path = self.directory / "erpsync.toml"
        self.config_path.write_text(tomli_w.dumps(config), encoding="utf-8")
        self.settings = load_settings(self.config_path)
        self.keys = Keys(self.prefix)
        self.redis = redis.Redis.from_url(self.redis_url, decode_responses=True)

    # -- processes --------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment of a worker: this installation's config file and nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERPSYNC_")}
        env["ERPSYNC_CONFIG"] = str(self.config_path)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_worker(self, *args: str, timeout_s: float = 90.0) -> subprocess.Popen[bytes]:
        """Start ``erpsync worker`` and wait until it consumes."""
        log = (self.directory / f"worker-{len(self.workers)}.log").open("wb")
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.redis.hlen(self.keys.workers()) >= len(self.workers):
                return process
            if process.poll() is not None:
                raise BenchError(f"a worker exited early:\n{self.worker_logs()}")
            time.sleep(0.1)
        raise BenchError(f"a worker was not ready in {timeout_s:g} s:\n{self.worker_logs()}")

    def worker_logs(self, tail: int = 30) -> str:
        """The last lines of every worker's log, for error messages."""
        out = []
        for path in sorted(self.directory.glob("worker-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop_workers(self) -> None:
        """End every worker this installation started (its process group, by pid)."""
        for process in self.workers:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.workers.clear()
        self.redis.delete(self.keys.workers())

    # -- publishing and draining -------------------------------------------------------
    @property
    def app(self) -> Celery:
        """A publisher configured like the producers' (its own Celery app)."""
        if self._app is None:
            self._app = create_app(self.settings)
        return self._app

    def queue_key(self, queue: str) -> str:
        """The Redis list kombu keeps a queue in (under the global key prefix)."""
        return self.keys.queue(queue)

    def unacked_key(self) -> str:
        """kombu's hash of delivered, not yet acknowledged messages."""
        return self.keys.unacked()

    def sample(self) -> CpuSnapshot:
        """CPU used so far by the workers and Redis, and Redis's command count."""
        info = self.redis.info("cpu")
        stats = self.redis.info("commandstats")
        calls = sum(int(v["calls"]) for v in stats.values() if isinstance(v, dict))
        return CpuSnapshot(
            wall_s=time.perf_counter(),
            workers_cpu_s=sum(process_tree_cpu_s(p.pid) for p in self.workers),
            sandbox_cpu_s=process_tree_cpu_s(self.sandbox.pid),
            redis_cpu_s=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            machine_busy_s=machine_busy_s(),
            redis_calls=calls,
        )

    def stage(self, task: str, payloads: Iterable[dict[str, Any]]) -> tuple[str, int]:
        """Publish deliveries to a fresh staging queue nobody consumes; returns (key, count).

        ``sync.apply`` messages are sent as :mod:`state.publish` sends them; any other
        task gets the same arguments and headers, so only the task differs.
        """
        staging = f"bench.staging.{uuid.uuid4().hex[:8]}"
        count = 0
        with self.app.producer_or_acquire() as producer, producer.batch(max_size=CHUNK):
            for payload in payloads:
                if task == TASK_APPLY:
                    send_delivery(self.app, payload, producer=producer, queue=staging)
                else:
                    self.app.send_task(
                        task,
                        args=[payload],
                        queue=staging,
                        producer=producer,
                        argsrepr=describe(payload),
                    )
                count += 1
        key = self.queue_key(staging)
        if self.redis.llen(key) != count:
            raise BenchError(f"staging queue holds {self.redis.llen(key)} of {count} messages")
        return key, count

    def drain(
        self,
        staged: tuple[str, int],
        queue: str,
        *,
        timeout_s: float,
        done: Callable[[], bool] | None = None,
    ) -> Drain:
        """Move a staged backlog onto ``queue`` at once and time until it is worked off.

        ``done`` (optional) must also hold at the end: the outcomes every message must
        have reached (the drain's end is then the first instant both hold).
        """
        key, count = staged
        target_key = self.queue_key(queue)
        if self.redis.llen(target_key):
            raise BenchError(f"{queue} is not empty before a timed drain")
        before = self.sample()
        self.redis.rename(key, target_key)
        deadline = time.monotonic() + timeout_s
        unacked = self.unacked_key()
        while True:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.llen(target_key)
                pipe.hlen(unacked)
                waiting, reserved = pipe.execute()
            if not waiting and not reserved and (done is None or done()):
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{queue}: {waiting} waiting and {reserved} reserved after {timeout_s:g} s"
                    f"\n{self.worker_logs()}"
                )
            if any(p.poll() is not None for p in self.workers):
                raise BenchError(f"a worker died during a drain:\n{self.worker_logs()}")
            time.sleep(0.004)
        after = self.sample()
        return Drain(
            messages=count,
            seconds=after.wall_s - before.wall_s,
            workers_cpu_s=after.workers_cpu_s - before.workers_cpu_s,
            sandbox_cpu_s=after.sandbox_cpu_s - before.sandbox_cpu_s,
            redis_cpu_s=after.redis_cpu_s - before.redis_cpu_s,
            machine_busy_s=after.machine_busy_s - before.machine_busy_s,
            redis_calls=after.redis_calls - before.redis_calls,
        )

    def counters(self, target: str) -> dict[str, int]:
        """The engine's counters of a target."""
        raw = self.redis.hgetall(self.keys.counters(target))
        return {str(k): int(v) for k, v in raw.items()}

    # -- the sandbox ------------------------------------------------------------------
    def control(self, system: str) -> httpx.Client:
        """A client of a simulator's ``/_sandbox`` surface."""
        return httpx.Client(base_url=self.sandbox.endpoints[system].url, timeout=60)

    def sandbox_stats(self, system: str) -> dict[str, Any]:
        """Request counts of a simulator since its stats were last cleared."""
        with self.control(system) as client:
            data: dict[str, Any] = client.get("/_sandbox/stats").json()
            return data

    def clear_sandbox_stats(self, *systems: str) -> None:
        """Zero the request counts of the given simulators."""
        for system in systems:
            with self.control(system) as client:
                client.delete("/_sandbox/stats").raise_for_status()

    def faults(self, system: str, rules: Sequence[dict[str, Any]] | None) -> None:
        """Replace (or clear, with None) a simulator's fault rules."""
        with self.control(system) as client:
            if rules:
                client.post("/_sandbox/faults", json=list(rules)).raise_for_status()
            else:
                client.delete("/_sandbox/faults").raise_for_status()

    def detect(self, mode: str, target: str = "propeller") -> dict[str, Any]:
        """One change-detection measurement in a fresh process (see :mod:`bench._detect`)."""
        finished = subprocess.run(
            [sys.executable, "-m", "bench._detect", mode, "--config", str(self.config_path),
             "--target", target],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )  # fmt: skip
        if finished.returncode != 0:
            raise BenchError(f"bench._detect {mode} failed:\n{finished.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
        return result

    def erp(self) -> OnlineErpClient:
        """The ERP's API, as the adapter reads and writes it (for edits in the source)."""
        erp = self.settings.systems.onlineerp
        if erp is None:
            raise BenchError("no onlineerp system configured")
        http = make_client(erp)
        self._closing.append(http.close)
        return OnlineErpClient(http, erp)

    def seed_erp(self, customers: int) -> None:
        """Empty the sandbox's ERP and seed it with ``customers`` (hierarchy included)."""
        with self.control("onlineerp") as client:
            client.post("/_sandbox/reset").raise_for_status()
            client.post(
                "/_sandbox/seed", json={"customers": customers, "products": 0, "activities": 0}
            ).raise_for_status()

    # -- teardown ---------------------------------------------------------------------
    def close(self) -> None:
        """Stop the workers, close the publisher and remove every key of this prefix."""
        self.stop_workers()
        for close in self._closing:
            close()
        for log in self._logs:
            log.close()
        if self._app is not None:
            self._app.close()
        for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            self.redis.delete(key)
        self.redis.close()

    def __enter__(self) -> Installation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ErpEditor:
    """Edits seeded ERP customers through the ERP's API, each edit a new telephone number.

    It knows the seed records (the same generator the sandbox seeded from), so each edit is
    one ``PUT`` of the whole record, as an ERP user saving a form would make it.
    """

    def __init__(self, client: OnlineErpClient, customers: int) -> None:
        self.client = client
        self.records = generate(customers, products=0, activities=0).customers
        self.edits = 0

    def edit(self, index: int) -> float:
        """Change customer ``index``; returns the time (epoch seconds) the ERP answered."""
        self.edits += 1
        record = dict(self.records[index])
        record["Telephone"] = f"+1 438 {self.edits // 10000:03d} {self.edits % 10000:04d}"
        self.records[index] = record
        self.client.update_customer(ErpCustomer.model_validate(record))
        return time.time()


def as_json(deliveries: Iterable[Delivery]) -> Iterator[dict[str, Any]]:
    """Each delivery as the JSON a message carries."""
    for delivery in deliveries:
        yield delivery.model_dump(mode="json")


def customers_flow(*targets: str) -> dict[str, Any]:
    """The ``customers`` flow from the ERP to ``targets``."""
    return {
        "customers": {
            "source": "onlineerp",
            "entity": "customer",
            "targets": list(targets),
            "mapping": {t: {} for t in targets},
        }
    }
