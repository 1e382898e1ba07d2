"""structlog set-up: JSON when not on a terminal, bound context, secrets redacted.

Every line carries the context bound with :mod:`structlog.contextvars` (flow, target,
entity, key, event id, attempt inside a task) and a stable dotted event name
(``sync.applied``, ``producer.poll_finished``). A last processor passes every string value
through :func:`erpsync.redaction.redact`, so that a secret cannot reach a log line even by
mistake.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from erpsync.redaction import redact


def _redact_values(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[name] = redact(value)
        elif isinstance(value, BaseException):
            event_dict[name] = redact(str(value))
    return event_dict


def configure_logging(
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    stream: Any = None,
) -> None:
    """Configure structlog (and the standard library's root logger) once per process."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_values,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.getLevelName(level))
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
