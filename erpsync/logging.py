"""structlog set-up: JSON when not on a terminal, bound context, secrets redacted.

Every line carries the context bound with :mod:`structlog.contextvars` (flow, target,
entity, key, event id, attempt inside a task) and a stable dotted event name
(``sync.applied``, ``producer.poll_finished``). A processor passes every string value
through :func:`erpsync.redaction.redact`, so that a secret cannot reach a log line even by
mistake.

Configured for speed as structlog's "performance" page advises, because a worker at the
default ``INFO`` writes a line for every record of the single-record path: loggers cached
on first use, levels filtered by the bound logger's class (a filtered call is a bare
``return None``), the values of a line screened for secrets in one pass (each value is
redacted on its own only when the screen finds something), and JSON rendered by orjson (ten
times the standard library's speed on these lines) written straight to the stream by
structlog's ``WriteLogger`` (the stream may be a terminal, a file or a test's buffer, so the
text is decoded once rather than the stream be required binary). The standard library's
loggers (Celery, httpx...) go through the same processors and renderer, via
:class:`structlog.stdlib.ProcessorFormatter`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import orjson
import structlog

from erpsync.redaction import may_hold_secrets, redact

#: joins a line's string values for one screening (no word character: see redaction)
_SEPARATOR = "\x00"


def _redact_values(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every string value, and every string in a list value (a batch's keys), redacted."""
    texts: list[str] = []
    for name, value in event_dict.items():
        if isinstance(value, BaseException):
            event_dict[name] = value = str(value)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list | tuple):
            texts.extend(v for v in value if isinstance(v, str))
    if texts and may_hold_secrets(_SEPARATOR.join(texts)):
        for name, value in event_dict.items():
            if isinstance(value, str):
                event_dict[name] = redact(value)
            elif isinstance(value, list | tuple):
                event_dict[name] = [redact(v) if isinstance(v, str) else v for v in value]
    return event_dict


def _dumps(value: Any, **kw: Any) -> str:
    """JSON text of a log line (keys that are not strings, as in a count by status, allowed)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, **kw).decode()


class _CurrentStderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was configured.

    Something may swap ``sys.stderr`` for a while (a CLI run in-process by a test harness,
    a capture) and close its stand-in afterwards: loggers cached on first use would keep
    writing to the closed stand-in. Like the standard library's ``logging.lastResort``,
    this follows the swap.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


#: one instance, so that structlog keeps one lock for it
_STDERR = _CurrentStderr()


def configure_logging(
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    stream: Any = None,
    cache_loggers: bool = True,
) -> None:
    """Configure structlog (and the standard library's root logger) once per process.

    ``cache_loggers=False`` lets a later call change the level of loggers already used
    (tests, the benchmark's own process): a cached logger keeps the configuration it was
    built with.
    """
    stream = stream or _STDERR
    as_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    # Redaction first: the level and the time stamp added after it hold no secret.
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.format_exc_info,
        _redact_values,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=cache_loggers,
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
