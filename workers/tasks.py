"""The Celery tasks: thin, JSON arguments; the policy lives in the engine."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis
import structlog
from celery import signals
from celery.exceptions import Reject
from celery.worker.worker import WorkController
from pydantic import TypeAdapter, ValidationError

from delivery.batch import BatchApplier
from erpsync.events import Delivery
from erpsync.logging import configure_logging
from state.batches import BatchStore
from state.broker import Unacked, tag_of
from state.leases import TAGS, Heartbeat, LeaseLostError, still_held
from state.messages import TASK_APPLY, TASK_APPLY_BATCH, TASK_NOOP
from state.pump import Pump
from state.store import State
from workers.app import app
from workers.metrics import WorkerMetrics, start_worker_metrics
from workers.runtime import Runtime, flush_trace, get_runtime, reset_runtime

log = structlog.get_logger("erpsync.worker")
_pump: Pump | None = None
_metrics: WorkerMetrics | None = None
_heartbeat: Heartbeat | None = None
#: the latest starts of messages given back that are kept (Keys.restarted)
RESTARTS_KEPT = 100_000


def _taken_over(task: Any, runtime: Runtime) -> bool:
    """As a task starts: True when its message was reclaimed meanwhile (this worker lost
    its lease: cut off or stalled; another worker runs it now), so it must not run it.
    A message given back that starts again is noted (the chaos run's recovery times)."""
    request = task.request
    try:
        if _heartbeat is not None and not still_held(_heartbeat.unacked, str(request.id)):
            log.warning("lease.message_taken_over", task_id=request.id)
            return True
        if (request.delivery_info or {}).get("redelivered"):
            with runtime.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(runtime.keys.restarted(), f"{request.id} {time.time():.3f}")
                pipe.ltrim(runtime.keys.restarted(), -RESTARTS_KEPT, -1)
                pipe.expire(runtime.keys.restarted(), 86400)
                pipe.execute()
    except redis.RedisError as exc:
        # Cannot tell whether it is still ours: give the message back rather than guess (a
        # failed task would be acknowledged, its delivery left to the pump's long lease).
        log.warning("sync.state_unavailable", error=str(exc))
        raise Reject(str(exc), requeue=True) from exc
    return False


@app.task(
    name=TASK_APPLY, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def apply_delivery(self: Any, delivery: dict[str, Any]) -> str:
    """Apply one delivery (one change for one target) and record its outcome."""
    runtime = get_runtime()
    if _taken_over(self, runtime):
        return "taken_over"
    try:
        parsed = Delivery.model_validate(delivery)
    except ValidationError as exc:
        # Not ours to apply and not replayable: count it and say so loudly.
        runtime.state.incr("malformed", "messages")
        log.error("sync.malformed_message", errors=exc.error_count())  # noqa: TRY400 (no trace needed)
        return "malformed"
    try:
        return runtime.engine.process(parsed)
    except LeaseLostError as exc:
        # Another worker may hold it now: back to the queue unless it was reclaimed.
        log.warning("lease.lost_delivery", error=str(exc))
        raise Reject(str(exc), requeue=True) from exc
    except redis.RedisError as exc:
        # The state store is unreachable: give the message back rather than guess.
        log.warning("sync.state_unavailable", error=str(exc))
        raise Reject(str(exc), requeue=True) from exc


@app.task(
    name=TASK_APPLY_BATCH,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def apply_batch(self: Any, batch: str | list[dict[str, Any]]) -> dict[str, int]:
    """Apply deliveries of one target through its bulk endpoint (see delivery.batch).

    ``batch`` is a stored batch's reference (producers, the pump) or the deliveries.
    """
    runtime = get_runtime()
    if _taken_over(self, runtime):
        return {"taken_over": 1}
    store = BatchStore(runtime.state)
    # Reading a batch is its own work too (see delivery.pipeline.scheduling.CpuSlots).
    with runtime.engine.cpu_slots.held():
        raw = store.get_json(batch) if isinstance(batch, str) else batch
        if raw is None:
            return {"done_before": 1}  # a redelivery of a batch already taken to its end
        parsed = _deliveries(raw, runtime.state)
        try:
            # Its deliveries' leases run from now (see state.pump), as a single one's does.
            runtime.state.touch(((d.target, d.delivery_id) for d in parsed), now=time.time())
            counts = BatchApplier(runtime.engine).process(parsed)
        except LeaseLostError as exc:
            log.warning("lease.lost_batch", error=str(exc))
            raise Reject(str(exc), requeue=True) from exc
        except redis.RedisError as exc:
            # Outcomes are counted once per delivery, so the whole batch can come back.
            log.warning("sync.state_unavailable", error=str(exc))
            raise Reject(str(exc), requeue=True) from exc
    if isinstance(batch, str):
        store.done(batch)
    return counts


#: a stored batch, parsed from its JSON in one go
_BATCH: TypeAdapter[list[Delivery]] = TypeAdapter(list[Delivery])


def _deliveries(raw: str | bytes | list[dict[str, Any]], state: State) -> list[Delivery]:
    """A batch's deliveries; a malformed one is counted, logged and left out."""
    if not isinstance(raw, list):
        try:
            return _BATCH.validate_json(raw)
        except ValidationError:
            raw = json.loads(raw)  # one is malformed: which, below
    parsed: list[Delivery] = []
    for item in cast(list[Any], raw):
        try:
            parsed.append(Delivery.model_validate(item))
        except ValidationError as exc:
            state.incr("malformed", "messages")
            log.error("sync.malformed_message", errors=exc.error_count())  # noqa: TRY400
    return parsed


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
    settings = runtime.settings
    _pump = Pump(
        app,
        runtime.state,
        interval_s=settings.worker.pump_interval_s,
        targets=sorted({t for flow in settings.flows.values() for t in flow.targets}),
        lease_s=settings.worker.delivery_lease_s,
        # a pump re-publishes what it claimed within milliseconds: a claim a lease old is a
        # dead or cut-off pump's (see state.leases)
        recover_every_s=settings.worker.lease_s / 3,
        claims_lease_s=settings.worker.lease_s,
    ).start()
    hostname = getattr(sender, "hostname", None) or "worker"
    runtime.redis.hset(runtime.keys.workers(), hostname, f"{time.time():.3f}")
    log.info(
        "worker.ready",
        queues=sorted(q.name for q in app.amqp.queues.consume_from.values())
        if app.amqp.queues.consume_from
        else [],
    )


@signals.task_received.connect
def _note_tag(request: Any = None, **_: Any) -> None:
    tag = tag_of(request)
    if tag is not None:
        TAGS[str(request.id)] = tag


@signals.worker_ready.connect
def _start_heartbeat(sender: WorkController | None = None, **_: Any) -> None:
    global _heartbeat
    if _heartbeat is not None:
        return
    runtime = get_runtime()
    hostname = getattr(sender, "hostname", None) or "worker"
    _heartbeat = Heartbeat(
        Unacked(app),
        runtime.state,
        worker=str(hostname),
        # Celery sends worker_ready from its consumer (which holds the messages)
        consumer=lambda: sender if hasattr(sender, "task_consumer") else None,
        lease_s=runtime.settings.worker.lease_s,
    ).start()  # renews until the process ends: a warm shutdown still finishes its tasks


@signals.worker_ready.connect
def _start_metrics(sender: WorkController | None = None, **_: Any) -> None:
    global _metrics
    runtime = get_runtime()
    port = runtime.settings.worker.metrics_port
    if port is None or _metrics is not None:
        return
    # Loopback unless configured: the endpoint has no authentication.
    address = runtime.settings.worker.metrics_address
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "") or ""
    try:
        _metrics = start_worker_metrics(runtime, port, address=address, prefork="prefork" in pool)
    except OSError as exc:
        # Deliveries matter more than their metrics: say so loudly and keep consuming.
        log.error("worker.metrics_unavailable", address=address, port=port, error=str(exc))  # noqa: TRY400


@signals.worker_shutting_down.connect
def _stop_metrics(**_: Any) -> None:
    global _metrics
    if _metrics is not None:
        _metrics.stop()
        _metrics = None


@signals.worker_shutting_down.connect
def _stop_pump(sender: Any = None, **_: Any) -> None:
    if _pump is not None:
        _pump.stop()
        runtime = get_runtime()
        runtime.redis.hdel(runtime.keys.workers(), str(sender or "worker"))


@signals.worker_shutdown.connect
@signals.worker_process_shutdown.connect
def _flush_trace(**_: Any) -> None:
    flush_trace()
