"""The Celery tasks: thin, JSON arguments; the policy lives in the engine."""

from __future__ import annotations

import time
from typing import Any

import redis
import structlog
from celery import signals
from celery.exceptions import Reject
from celery.worker.worker import WorkController
from pydantic import ValidationError

from erpsync.events import Delivery
from erpsync.logging import configure_logging
from workers.app import TASK_APPLY, TASK_NOOP, app
from workers.pump import Pump
from workers.runtime import get_runtime, reset_runtime

log = structlog.get_logger("erpsync.worker")
_pump: Pump | None = None


@app.task(
    name=TASK_APPLY, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def apply_delivery(self: Any, delivery: dict[str, Any]) -> str:
    """Apply one delivery (one change for one target) and record its outcome."""
    runtime = get_runtime()
    try:
        parsed = Delivery.model_validate(delivery)
    except ValidationError as exc:
        # Not ours to apply and not replayable: count it and say so loudly.
        runtime.state.incr("malformed", "messages")
        log.error("sync.malformed_message", errors=exc.error_count())  # noqa: TRY400 (no trace needed)
        return "malformed"
    try:
        return runtime.engine.process(parsed)
    except redis.RedisError as exc:
        # The state store is unreachable: give the message back rather than guess.
        log.warning("sync.state_unavailable", error=str(exc))
        raise Reject(str(exc), requeue=True) from exc


@app.task(name=TASK_NOOP, ignore_result=True, acks_late=True)
def noop(payload: Any = None) -> None:
    """Does nothing: the benchmark's measure of Celery's own cost per task."""


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    reset_runtime()


@signals.worker_ready.connect
def _start_pump(sender: WorkController | None = None, **_: Any) -> None:
    global _pump
    runtime = get_runtime()
    configure_logging(runtime.settings.log_level, runtime.settings.log_format)
    _pump = Pump(app, runtime.state, interval_s=runtime.settings.worker.pump_interval_s).start()
    hostname = getattr(sender, "hostname", None) or "worker"
    runtime.redis.hset(runtime.keys.workers(), hostname, f"{time.time():.3f}")
    log.info(
        "worker.ready",
        queues=sorted(q.name for q in app.amqp.queues.consume_from.values())
        if app.amqp.queues.consume_from
        else [],
    )


@signals.worker_shutting_down.connect
def _stop_pump(sender: Any = None, **_: Any) -> None:
    if _pump is not None:
        _pump.stop()
        runtime = get_runtime()
        runtime.redis.hdel(runtime.keys.workers(), str(sender or "worker"))
