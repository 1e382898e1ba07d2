"""Put deliveries on their target's queue (producers, the pump, DLQ replay)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from celery import Celery

from erpsync.events import Delivery
from workers.app import TASK_APPLY, TASK_APPLY_BATCH, queue_for
from workers.state import State


def publish(
    app: Celery,
    deliveries: Iterable[Delivery],
    *,
    state: State | None = None,
) -> int:
    """Send each delivery to ``sync.<target>`` over one connection; returns how many.

    With ``state`` (producers), each delivery is counted as produced, once.
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        for delivery in deliveries:
            if state is not None:
                state.mark_produced(delivery.target, delivery.delivery_id, flow=delivery.event.flow)
            app.send_task(
                TASK_APPLY,
                args=[delivery.model_dump(mode="json")],
                queue=queue_for(delivery.target),
                producer=producer,
            )
            sent += 1
    return sent


def publish_batches(
    app: Celery,
    batches: Iterable[Sequence[Delivery]],
    *,
    state: State | None = None,
) -> int:
    """Send each batch (deliveries of one target) as one ``sync.apply_batch`` message.

    With ``state`` (producers), each delivery is counted as produced, once. Returns how
    many deliveries were sent.
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        for batch in batches:
            if not batch:
                continue
            target = batch[0].target
            if any(d.target != target for d in batch):
                raise ValueError("a batch holds deliveries of one target")
            if state is not None:
                for delivery in batch:
                    state.mark_produced(target, delivery.delivery_id, flow=delivery.event.flow)
            app.send_task(
                TASK_APPLY_BATCH,
                args=[[d.model_dump(mode="json") for d in batch]],
                queue=queue_for(target),
                producer=producer,
            )
            sent += len(batch)
    return sent


def publish_raw(app: Celery, payloads: Iterable[dict[str, object]]) -> int:
    """Re-publish parked deliveries as they were stored (already validated when parked).

    A parked batch (``{"target", "batch": [...]}``, see :func:`workers.batch.batch_member`)
    goes back as one ``sync.apply_batch`` message. Returns how many messages were sent.
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        for payload in payloads:
            target = str(payload["target"])
            if "batch" in payload:
                app.send_task(
                    TASK_APPLY_BATCH,
                    args=[payload["batch"]],
                    queue=queue_for(target),
                    producer=producer,
                )
            else:
                app.send_task(
                    TASK_APPLY, args=[payload], queue=queue_for(target), producer=producer
                )
            sent += 1
    return sent
