"""Issue #5, must hold: Flower on the test broker shows the sync tasks by name and state.

``erpsync flower`` runs as a subprocess on a free port of 127.0.0.1 with Basic auth,
against the pipeline's Redis and key prefix; a real worker runs the deliveries.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from bench.stack import REPO, TARGETS, Pipeline
from state.messages import TASK_APPLY, TASK_NOOP, create_app, queue_for

pytestmark = pytest.mark.integration

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float = 60.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the bound."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.3)


class Flower:
    """An ``erpsync flower`` subprocess (ended by pid, with its process group)."""

    def __init__(self, directory: Path, env: dict[str, str], *args: str) -> None:
        self.log_path = directory / f"flower-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "flower", *args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def flowers() -> Iterator[list[Flower]]:
    started: list[Flower] = []
    yield started
    for flower in started:
        flower.stop()


def seed(p: Pipeline, customers: int, products: int) -> None:
    with p.control("onlineerp") as client:
        client.post(
            "/_sandbox/seed", json={"customers": customers, "products": products}
        ).raise_for_status()


def started_flower(p: Pipeline, flowers: list[Flower]) -> tuple[Flower, httpx.Client, str, int]:
    """``erpsync flower`` with a fresh password, answering; the process, an API client with
    the password, the password and the port."""
    password = secrets.token_urlsafe(18)
    port = free_port()
    flower = Flower(
        p.directory,
        {**p.env(), "ERPSYNC_FLOWER_BASIC_AUTH": f"operator:{password}"},
        "--port",
        str(port),
    )
    flowers.append(flower)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("operator", password), timeout=30)

    def healthy() -> bool:
        if flower.process.poll() is not None:
            raise AssertionError(f"erpsync flower exited:\n{flower.output()}")
        try:
            return api.get("/healthcheck").status_code == 200
        except httpx.TransportError:
            return False

    wait_for("Flower answers", healthy)
    return flower, api, password, port


def probes_until_heard(p: Pipeline, api: httpx.Client) -> int:
    """Send probe tasks until Flower lists one; how many were sent (queued, unconsumed)."""
    publisher = create_app(p.settings)
    probes = 0

    def probe_seen() -> bool:
        nonlocal probes
        publisher.send_task(TASK_NOOP, queue=queue_for("default"))
        probes += 1
        return bool(api.get("/api/tasks", params={"taskname": TASK_NOOP}).json())

    wait_for("Flower hears task events", probe_seen)
    return probes


def test_flower_shows_the_sync_tasks_by_name_with_their_states(
    make_pipeline: Callable[..., Pipeline], flowers: list[Flower]
) -> None:
    p = make_pipeline()
    seed(p, customers=8, products=4)
    flower, api, password, port = started_flower(p, flowers)

    # Flower keeps only the events it hears: wait until its receiver is live, by sending a
    # probe task (its task-sent event) to a queue no worker consumes.
    probes = probes_until_heard(p, api)

    # Before any worker runs, Flower's broker view shows the backlog of every target's
    # queue: it reads the prefixed keys (global_keyprefix), not unprefixed ones.
    p.produce()
    produced = {t: p.counters(t)["produced"] for t in TARGETS}
    assert produced == {"propeller": 8, "hipe": 8, "atollon": 8 + 4}
    answer = api.get("/api/queues/length")
    assert answer.status_code == 200
    lengths = {q["name"]: q["messages"] for q in answer.json()["active_queues"]}
    assert lengths == {
        queue_for("default"): probes,
        **{queue_for(t): produced[t] for t in TARGETS},
    }

    p.start_worker()
    p.wait_workers(1)
    p.wait_converged()
    total = sum(produced.values())

    def all_succeeded() -> dict[str, Any] | None:
        tasks: dict[str, Any] = api.get("/api/tasks", params={"taskname": TASK_APPLY}).json()
        done = len(tasks) >= total and all(t["state"] == "SUCCESS" for t in tasks.values())
        return tasks if done else None

    tasks = wait_for("Flower shows every sync.apply task succeeded", all_succeeded)
    assert {t["name"] for t in tasks.values()} == {TASK_APPLY}
    assert {t["routing_key"] for t in tasks.values()} == {queue_for(t) for t in TARGETS}
    per_target = {
        t: sum(1 for task in tasks.values() if task["routing_key"] == queue_for(t)) for t in TARGETS
    }
    for target in TARGETS:
        # Every delivery ran (a child waiting for its parent runs again: more tasks).
        assert per_target[target] >= produced[target], per_target
    succeeded = api.get("/api/tasks", params={"taskname": TASK_APPLY, "state": "SUCCESS"})
    assert set(succeeded.json()) == set(tasks)
    assert api.get("/api/tasks", params={"taskname": TASK_APPLY, "state": "FAILURE"}).json() == {}

    # Authentication: no credentials, or wrong ones, are refused.
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/api/tasks", timeout=30).status_code == 401
    assert httpx.get(f"{base}/api/tasks", auth=("operator", "wrong"), timeout=30).status_code == 401
    assert httpx.get(f"{base}/tasks", timeout=30).status_code == 401
    # Read-only by default: revoking a delivery would drop a change without an outcome.
    some_task = next(iter(tasks))
    assert api.post(f"/api/task/revoke/{some_task}").status_code == 403
    api.close()

    flower.stop()
    assert password not in flower.output()
    assert password not in p.worker_logs(tail=100_000)


def bare_env() -> dict[str, str]:
    """The environment without any erpsync setting (defaults only, no flow file)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ERPSYNC_", "FLOWER_"))}


def test_refuses_a_non_loopback_address_without_authentication(
    tmp_path: Path, flowers: list[Flower]
) -> None:
    port = free_port()
    flower = Flower(tmp_path, bare_env(), "--address", "0.0.0.0", "--port", str(port))  # noqa: S104
    flowers.append(flower)
    assert flower.process.wait(timeout=60) == 2
    assert "without authentication" in flower.output()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "nothing listens"


def test_a_malformed_credential_is_refused_without_being_echoed(
    tmp_path: Path, flowers: list[Flower]
) -> None:
    env = {**bare_env(), "ERPSYNC_FLOWER_BASIC_AUTH": "no-colon-S3cr3tValue"}
    flower = Flower(tmp_path, env, "--port", str(free_port()))
    flowers.append(flower)
    assert flower.process.wait(timeout=60) == 2
    assert "user:password" in flower.output()
    assert "S3cr3tValue" not in flower.output()
