"""A whole erpsync installation for the integration tests and the chaos run.

Real pieces only: the sandbox over HTTP on 127.0.0.1, a real Redis (a key prefix of its
own per pipeline), real ``erpsync worker`` processes started as subprocesses, and the
producer. Every process started here is ended here, by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import redis
import tomli_w

from cli.embedded_redis import die_with_parent
from erpsync.settings import Settings, load_settings
from producers.base import PollResult
from producers.runner import ProducerService
from simulators.server import CREDENTIALS, RunningSandbox
from state.keys import Keys

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("propeller", "hipe", "atollon")

#: worker settings that make tests quick: short waits, fast recovery of lost messages
FAST_WORKER: dict[str, Any] = {
    "pool": "threads",
    "concurrency": 8,
    "visibility_timeout_s": 15.0,
    "unacked_restore_interval_s": 1.0,
    "delivery_lease_s": 20.0,
    "transient_max_attempts": 12,
    "transient_base_s": 0.2,
    "transient_cap_s": 2.0,
    "dependency_max_waits": 60,
    "dependency_base_s": 0.2,
    "dependency_cap_s": 2.0,
    "circuit_failure_threshold": 8,
    "circuit_cooldown_s": 1.0,
    "circuit_cooldown_max_s": 4.0,
    "pump_interval_s": 0.05,
    "lock_ttl_s": 15.0,
}


def test_redis_url() -> str:
    """The Redis the ``redis_url`` fixture provides (it sets the variable for the session)."""
    return os.environ["ERPSYNC_TEST_REDIS_URL"]


def sandbox_systems(sandbox: RunningSandbox) -> dict[str, Any]:
    systems: dict[str, Any] = {}
    for name, endpoint in sandbox.endpoints.items():
        systems[name] = {"base_url": endpoint.api_url, **CREDENTIALS[name]}
    return systems


def pipeline_config(
    sandbox: RunningSandbox,
    prefix: str,
    *,
    flows: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    systems: dict[str, Any] | None = None,
) -> dict[str, Any]:
    merged_systems = sandbox_systems(sandbox)
    for name, overrides in (systems or {}).items():
        merged_systems[name] = {**merged_systems[name], **overrides}
    return {
        "redis_url": test_redis_url(),
        "key_prefix": prefix,
        "log_level": "WARNING",
        "log_format": "json",
        "systems": merged_systems,
        "flows": flows
        or {
            "customers": {
                "source": "onlineerp",
                "entity": "customer",
                "targets": list(TARGETS),
                "mapping": {"hipe": {}, "propeller": {}, "atollon": {}},
            },
            "products": {"source": "onlineerp", "entity": "product", "targets": ["atollon"]},
        },
        "worker": {**FAST_WORKER, **(worker or {})},
    }


@dataclass
class Pipeline:
    """Sandbox + Redis + worker processes + producer, for one test."""

    sandbox: RunningSandbox
    directory: Path
    config: dict[str, Any]
    prefix: str = field(default_factory=lambda: f"it{uuid.uuid4().hex[:10]}")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)
    settings: Settings = field(init=False)
    redis: redis.Redis = field(init=False)
    keys: Keys = field(init=False)
    config_path: Path = field(init=False)
    _producer: ProducerService | None = None

    def __post_init__(self) -> None:
        self.config["key_prefix"] = self.prefix
        self.config_path = self.directory / "erpsync.toml"
        self.config_path.write_text(tomli_w.dumps(self.config), encoding="utf-8")
        self.settings = load_settings(self.config_path)
        self.redis = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        self.keys = Keys(self.prefix)

    # -- processes --------------------------------------------------------------------
    def env(self, config_path: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERPSYNC_")}
        env["ERPSYNC_CONFIG"] = str(config_path or self.config_path)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_worker(self, *args: str, config: Path | None = None) -> subprocess.Popen[bytes]:
        """Start an ``erpsync worker`` (``config``: a configuration file of its own)."""
        log = (self.directory / f"worker-{len(self.workers)}.log").open("wb")
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", *args],
            cwd=REPO,
            env=self.env(config),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.workers.append(process)
        return process

    def wait_workers(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.redis.hkeys(self.keys.workers())) >= count:
                return
            dead = [p for p in self.workers if p.poll() is not None and p.pid not in self.killed]
            if dead:
                raise AssertionError(f"a worker exited early:\n{self.worker_logs()}")
            time.sleep(0.1)
        raise AssertionError(f"{count} workers not ready in {timeout_s} s:\n{self.worker_logs()}")

    def kill_worker(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal a worker and its children (its process group)."""
        self.killed.add(process.pid)
        if process.poll() is None:
            os.killpg(process.pid, sig)
        process.wait(timeout=30)
        # A killed worker cannot unregister itself.
        self.redis.delete(self.keys.workers())

    def worker_logs(self, tail: int = 40) -> str:
        out = []
        for path in sorted(self.directory.glob("worker-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    # -- producing and converging ------------------------------------------------------
    @property
    def producer(self) -> ProducerService:
        if self._producer is None:
            self._producer = ProducerService(self.settings)
        return self._producer

    def produce(self) -> list[PollResult]:
        return self.producer.poll_once()

    def flow_counters(self, flow: str, target: str) -> dict[str, int]:
        """The counters of one flow at one target, without the ``<flow>.`` prefix."""
        prefix = f"{flow}."
        return {
            k[len(prefix) :]: v for k, v in self.counters(target).items() if k.startswith(prefix)
        }

    def counters(self, target: str) -> dict[str, int]:
        raw = self.redis.hgetall(self.keys.counters(target))
        return {str(k): int(v) for k, v in raw.items()}

    def settled(self, target: str) -> bool:
        c = self.counters(target)
        done = c.get("applied", 0) + c.get("skipped", 0) + c.get("dead_lettered", 0)
        return done >= c.get("produced", 0)

    def wait_converged(self, timeout_s: float = 120.0, targets: tuple[str, ...] = TARGETS) -> None:
        """Until every produced delivery has an outcome and nothing waits to be retried."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            delayed = self.redis.zcard(self.keys.delayed()) + self.redis.zcard(
                self.keys.delayed_claimed()
            )
            if delayed == 0 and all(self.settled(t) for t in targets):
                return
            time.sleep(0.2)
        state = {t: self.counters(t) for t in targets}
        raise AssertionError(
            f"not converged in {timeout_s} s: {state}, delayed="
            f"{self.redis.zcard(self.keys.delayed())}\n{self.worker_logs()}"
        )

    # -- the sandbox ------------------------------------------------------------------
    def control(self, system: str) -> httpx.Client:
        return httpx.Client(base_url=self.sandbox.endpoints[system].url, timeout=30)

    def records(self, system: str, entity: str) -> list[dict[str, Any]]:
        with self.control(system) as client:
            answer = client.get(f"/_sandbox/records/{entity}")
            answer.raise_for_status()
            data: list[dict[str, Any]] = answer.json()
            return data

    def stats(self, system: str) -> dict[str, Any]:
        with self.control(system) as client:
            data: dict[str, Any] = client.get("/_sandbox/stats").json()
            return data

    def faults(self, system: str, rules: list[dict[str, Any]] | None) -> None:
        with self.control(system) as client:
            if rules:
                client.post("/_sandbox/faults", json=rules).raise_for_status()
            else:
                client.delete("/_sandbox/faults").raise_for_status()

    def erp(self) -> httpx.Client:
        """A client of the ERP simulator's API (to make edits in the source)."""
        creds = CREDENTIALS["onlineerp"]
        return httpx.Client(
            base_url=self.sandbox.endpoints["onlineerp"].api_url,
            auth=(creds["licence_code"], creds["secret"]),
            headers={"COMPANY_ID": creds["company_id"]},
            timeout=30,
        )

    # -- teardown ---------------------------------------------------------------------
    def close(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for log in self.logs:
            log.close()
        if self._producer is not None:
            self._producer.close()
        for key in self._prefixed_keys():
            self.redis.delete(key)
        self.redis.close()

    def _prefixed_keys(self) -> Iterator[str]:
        yield from self.redis.scan_iter(match=f"{self.prefix}:*", count=1000)
