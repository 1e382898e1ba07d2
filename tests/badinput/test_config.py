"""Issue #8, item 3: a configuration file with mistakes lists every one of them, and nothing starts.

``erpsync worker``, ``erpsync produce --once`` and ``erpsync doctor`` are run as a user
runs them (subprocesses in a session of their own). Each must exit with status 2 and list
every problem of the file at once (not the first one, not one kind only), print no secret,
leave no process behind, write nothing to Redis and call no system.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.stack import REPO

COMMANDS = (("worker",), ("produce", "--once"), ("doctor",))
SECRETS = ("sekret-in-the-file-42", "token-in-the-file-42")


class Listener:
    """A TCP port on 127.0.0.1 that counts connections (a system erpsync must not call)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


def bad_config(redis_url: str, prefix: str, port: int) -> str:
    """A flow file with ten mistakes of every kind, and valid secrets that must not leak."""
    return f"""
redis_url = "{redis_url}"
key_prefix = "{prefix}"
redis_uri = "redis://127.0.0.1:6379/0"
log_level = "LOUD"

[systems.onlineerp]
base_url = "http://127.0.0.1:{port}/api"
licence_code = "LIC"

[systems.propeller]
base_url = "http://propeller.example.com"
client_id = "id"
client_secret = "{SECRETS[0]}"

[systems.hipe]
base_url = "http://127.0.0.1:{port}"
access_token = "{SECRETS[1]}"
page_size = 5000

[worker]
concurrency = 0

[flows.customers]
source = "onlineerp"
entity = "customer"
targets = ["propeller", "hipe", "atollon"]

[flows.customers.mapping.hipe.custom_fields]
segment = "nonexistent.path"

[flows.products]
source = "onlineerp"
entity = "widget"
targets = ["shopify"]
"""


#: each mistake of the file, as the problem list names it
EXPECTED = (
    "redis_uri",
    "log_level",
    "systems.onlineerp.secret",
    "systems.propeller.base_url",
    "systems.hipe.page_size",
    "worker.concurrency",
    "flows.products.targets",
    "flows.products.entity",
    "flows.customers.mapping.hipe.custom_fields.segment",
    "flows.customers.targets: system 'atollon' is not configured",
)


def run_cli(args: tuple[str, ...], config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``erpsync <args>`` in a session of its own; check it left no process behind."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ERPSYNC_")}
    environment.update(ERPSYNC_CONFIG=str(config), COLUMNS="500", **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing of its session is still running
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_mistake_is_listed_and_nothing_starts(
    args: tuple[str, ...], tmp_path: Path, redis_url: str, listener: Listener
) -> None:
    prefix = f"cfg{uuid.uuid4().hex[:10]}"
    config = tmp_path / "erpsync.toml"
    config.write_text(bad_config(redis_url, prefix, listener.port), encoding="utf-8")

    result = run_cli(args, config)

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    missing = [problem for problem in EXPECTED if problem not in output]
    assert not missing, f"not listed: {missing}\n{output}"
    assert f"{len(EXPECTED)} configuration problems" in output, output
    assert not any(secret in output for secret in SECRETS), output
    assert "Traceback" not in output
    assert listener.connections == 0, "no system was called"
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{prefix}*")) == [], "nothing written, no queue"
    finally:
        client.close()


def test_a_mistake_in_the_environment_is_listed_with_those_of_the_file(
    tmp_path: Path, redis_url: str, listener: Listener
) -> None:
    config = tmp_path / "erpsync.toml"
    config.write_text(bad_config(redis_url, "cfgenv", listener.port), encoding="utf-8")
    result = run_cli(("produce", "--once"), config, ERPSYNC_DLQ__MAX_ENTRIES="lots")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "dlq.max_entries" in output
    assert all(problem in output for problem in EXPECTED), output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[systems.hipe\nbase_url = 1", "not valid TOML"),
        (None, "no such configuration file"),
    ],
    ids=["not toml", "no file"],
)
def test_a_file_that_cannot_be_read_is_one_clear_problem(
    content: str | None, expected: str, tmp_path: Path
) -> None:
    config = tmp_path / "erpsync.toml"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    for args in COMMANDS:
        result = run_cli(args, config)
        output = result.stdout + result.stderr
        assert result.returncode == 2, (args, output)
        assert expected in output, (args, output)
        assert "Traceback" not in output
