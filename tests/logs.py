"""What a process logs, captured as the product configures it, for tests to read."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from erpsync.logging import configure_logging


@contextmanager
def captured_logs(level: str = "INFO") -> Iterator[io.StringIO]:
    """Logging configured into a buffer, as a worker configures it, then put back.

    Loggers are not cached, so that a test may change the level and later tests may
    configure logging again.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging(level, "json", stream=buffer, cache_loggers=False)
    try:
        yield buffer
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(root_level)


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a log (a worker's log also holds Celery's few plain lines)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
