"""Put deliveries on their target's queue (producers, the pump, DLQ replay)."""

from __future__ import annotations

from collections.abc import Iterable

from celery import Celery

from erpsync.events import Delivery
from workers.app import TASK_APPLY, queue_for
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


def publish_raw(app: Celery, payloads: Iterable[dict[str, object]]) -> int:
    """Re-publish parked deliveries as they were stored (already validated when parked)."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for payload in payloads:
            target = str(payload["target"])
            app.send_task(TASK_APPLY, args=[payload], queue=queue_for(target), producer=producer)
            sent += 1
    return sent
