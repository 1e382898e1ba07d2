"""Log lines: JSON with their context, filtered by level, never a secret, cheap to write."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from erpsync import redaction
from erpsync.logging import configure_logging
from erpsync.redaction import may_hold_secrets, redact, register_secrets
from tests.logs import captured_logs, log_lines

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Value-for-logging-tests"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with captured_logs("INFO") as buffer:
        yield buffer


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return log_lines(buffer.getvalue())


def test_a_line_is_json_with_its_bound_context_level_and_time(stream: io.StringIO) -> None:
    log = structlog.get_logger("erpsync.test")
    with structlog.contextvars.bound_contextvars(flow="customers", key="C0042", attempt=0):
        log.info("sync.applied", action="created", target_id="1042", by_status={429: 2})
    (line,) = lines(stream)
    timestamp = line.pop("timestamp")
    assert line == {
        "event": "sync.applied",
        "level": "info",
        "flow": "customers",
        "key": "C0042",
        "attempt": 0,
        "action": "created",
        "target_id": "1042",
        "by_status": {"429": 2},
    }
    assert timestamp.endswith("Z"), "ISO 8601 in UTC"


def test_lines_below_the_level_are_dropped_for_ours_and_libraries(stream: io.StringIO) -> None:
    log = structlog.get_logger("erpsync.test")
    log.debug("sync.applied", key="C1")
    log.info("sync.batch_done", size=1)
    logging.getLogger("celery.test").debug("a library's debug line")
    logging.getLogger("celery.test").info("a library's info line, rendered alike")
    logging.getLogger("httpx").info("httpx and httpcore log from WARNING up")
    found = [(line["event"], line["level"]) for line in lines(stream)]
    assert found == [
        ("sync.batch_done", "info"),
        ("a library's info line, rendered alike", "info"),
    ]


def test_no_secret_reaches_a_line_in_any_value(stream: io.StringIO) -> None:
    register_secrets([SECRET])
    log = structlog.get_logger("erpsync.test")
    log.warning(
        "adapter.request_failed",
        error=f"refused: {SECRET}",
        keys=["C1", f"key-{SECRET}", 3],
        header="Authorization: Bearer abcdef123456",
        body='{"client_secret": "hunter2-xyz"}',
        cause=RuntimeError(f"token={SECRET}x"),
        unicode_text="clé Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    )
    logging.getLogger("celery.test").warning("password=%s", "pw-in-a-library-line")
    text = stream.getvalue()
    for leaked in (SECRET, "abcdef123456", "hunter2-xyz", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                   "pw-in-a-library-line"):  # fmt: skip
        assert leaked not in text
    first, second = lines(stream)
    assert first["error"] == "refused: ***"
    assert first["keys"] == ["C1", "key-***", 3]
    assert first["header"] == "Authorization: Bearer ***"
    assert first["body"] == '{"client_secret": "***"}'
    assert first["cause"] == "token=***"
    assert first["unicode_text"] == "clé Basic ***"
    assert second["event"] == "password=***"


def test_every_redaction_pattern_has_a_word_of_the_fast_screen() -> None:
    # The screen skips the patterns for ASCII text without any of its words: a pattern
    # matching without one of them would let its secret through.
    for pattern, _ in redaction._PATTERNS:
        assert any(word in pattern.pattern.lower() for word in redaction._WORDS), pattern
    samples = [
        "Authorization: bearer abc.def-123456",
        "BASIC dXNlcjpwYXNzd29yZA==",
        '{"Access_Token":"t0k3n-value"}',
        '{"clesecrete": "v"}',
        "refresh_token=r3fr3sh&x=1",
        "X-Access-Token: abcdef",
    ]
    for sample in samples:
        assert may_hold_secrets(sample), sample
        assert redact(sample) != sample, sample
    assert not may_hold_secrets("sync.applied\x00created\x00C0042\x00customers")


def test_loggers_are_cached_on_first_use_by_default() -> None:
    # structlog's performance advice: a cached logger is assembled once, so a later
    # configuration does not reach it (a process configures once, at start-up).
    script = (
        "import io, structlog\n"
        "from erpsync.logging import configure_logging\n"
        "first = io.StringIO()\n"
        "configure_logging('INFO', 'json', stream=first)\n"
        "log = structlog.get_logger('x')\n"
        "log.info('one')\n"
        "configure_logging('ERROR', 'json', stream=io.StringIO())\n"
        "log.info('two')\n"
        "print(first.getvalue())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert [json.loads(line)["event"] for line in out.splitlines() if line] == ["one", "two"]


def test_a_cached_logger_follows_stderr_when_a_swapped_stream_is_closed() -> None:
    # A CLI run in-process (typer's CliRunner) swaps sys.stderr for a buffer it closes
    # afterwards; a logger cached during the run must not write to the closed buffer.
    script = (
        "import io, sys, structlog\n"
        "from erpsync.logging import configure_logging\n"
        "real, swapped = sys.stderr, io.StringIO()\n"
        "sys.stderr = swapped\n"
        "configure_logging('INFO', 'json')\n"
        "log = structlog.get_logger('x')\n"
        "log.info('during')\n"
        "sys.stderr = real\n"
        "print(swapped.getvalue(), end='')\n"
        "swapped.close()\n"
        "log.info('after')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert [json.loads(line)["event"] for line in done.stdout.splitlines()] == ["during"]
    assert [json.loads(line)["event"] for line in done.stderr.splitlines()] == ["after"]


def test_uncached_loggers_follow_a_new_level(stream: io.StringIO) -> None:
    log = structlog.get_logger("erpsync.test")
    log.info("one")
    configure_logging("WARNING", "json", stream=stream, cache_loggers=False)
    log.info("two")
    log.warning("three")
    assert [line["event"] for line in lines(stream)] == ["one", "three"]
