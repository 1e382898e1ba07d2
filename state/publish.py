"""Put deliveries on their target's queue (producers, the pump, DLQ replay).

Messages go out in pipelined chunks (kombu's publish batch: one Redis round trip per
:data:`CHUNK` messages, not one per message), each chunk counted as produced in one round
trip just before it is sent, so a crash mid-publish leaves at most a chunk counted and
unsent, as it left one delivery before (the producer's snapshot has not moved: the next
poll sends those changes again). Each message names its delivery in a few words
(``argsrepr``, what Flower and the task events show as the arguments) rather than the
whole payload: Celery would otherwise render a 1,000-character ``repr`` of every delivery,
which costs more CPU than the rest of publishing it.

With a :class:`~state.store.State`, each delivery is also recorded as *pending* before it
is sent (in the same round trip as its count), and every message carries the time it was
sent (header :data:`SENT_AT`): the pump sends a pending delivery again when it made no
progress for a lease and every message sent after it has left its queue (the broker lost
it; see :mod:`state.pump`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar, cast

from celery import Celery

from erpsync.events import Delivery
from state.batches import BatchStore
from state.messages import TASK_APPLY, TASK_APPLY_BATCH, queue_for
from state.store import State, pending_id

#: messages per pipelined chunk
CHUNK = 200
#: message header: when the message was sent (epoch seconds), read back by the pump
SENT_AT = "erpsync_sent_at"
#: the clock of :data:`SENT_AT` and of the pending records (tests move it)
clock: Callable[[], float] = time.time

T = TypeVar("T")


def _chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def describe(payload: Mapping[str, Any]) -> str:
    """A delivery (as sent) in a few words: flow, record, version, target and attempt."""
    event = payload.get("event")
    target = payload.get("target", "?")
    if not isinstance(event, Mapping):
        return f"delivery to {target}"
    return (
        f"{event.get('flow', '?')}: {event.get('source', '?')} {event.get('entity', '?')} "
        f"{event.get('key', '?')} {event.get('operation', '?')} "
        f"v{event.get('source_version', '?')} → {target}, attempt {payload.get('attempt', 0)}"
    )


def describe_batch(size: int, first: Mapping[str, Any] | None) -> str:
    """A batch of deliveries in a few words: its size, target and first record."""
    if not size or first is None:
        return "empty batch"
    return f"batch of {size}, first: {describe(first)}"


def send_delivery(
    app: Celery, payload: dict[str, Any], *, producer: Any, queue: str | None = None
) -> None:
    """Send one delivery (as JSON) as a ``sync.apply`` message to its target's queue."""
    app.send_task(
        TASK_APPLY,
        args=[payload],
        queue=queue or queue_for(str(payload["target"])),
        producer=producer,
        argsrepr=describe(payload),
        headers={SENT_AT: clock()},
    )


def send_batch(
    app: Celery,
    target: str,
    batch: str | list[dict[str, Any]],
    *,
    producer: Any,
    argsrepr: str | None = None,
) -> None:
    """Send one ``sync.apply_batch`` message: a stored batch's reference, or deliveries."""
    if argsrepr is None:
        argsrepr = (
            f"stored batch {batch} → {target}"
            if isinstance(batch, str)
            else describe_batch(len(batch), batch[0] if batch else None)
        )
    app.send_task(
        TASK_APPLY_BATCH,
        args=[batch],
        queue=queue_for(target),
        producer=producer,
        argsrepr=argsrepr,
        headers={SENT_AT: clock()},
    )


def _encode(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _mark(
    state: State | None,
    deliveries: Sequence[Delivery],
    payloads: Sequence[dict[str, Any]],
    *,
    count: bool = True,
) -> None:
    """Count the deliveries as produced (once each) and record them as pending."""
    if state is not None:
        if count:
            state.mark_produced_many((d.target, d.delivery_id, d.event.flow) for d in deliveries)
        pairs = zip(deliveries, payloads, strict=True)
        state.register(((d.target, d.delivery_id, _encode(p)) for d, p in pairs), now=clock())


def publish(
    app: Celery,
    deliveries: Iterable[Delivery],
    *,
    state: State | None = None,
    count: bool = True,
) -> int:
    """Send each delivery to ``sync.<target>`` over one connection; returns how many.

    With ``state``, each delivery is recorded as pending and, unless ``count`` is False
    (a dead letter's replay: it was counted when first produced), counted as produced, once.
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        for chunk in _chunks(deliveries):
            payloads = [delivery.model_dump(mode="json") for delivery in chunk]
            _mark(state, chunk, payloads, count=count)
            with producer.batch(max_size=CHUNK):
                for payload in payloads:
                    send_delivery(app, payload, producer=producer)
            sent += len(chunk)
    return sent


def publish_batches(app: Celery, batches: Iterable[Sequence[Delivery]], *, state: State) -> int:
    """Send each batch (deliveries of one target) as one ``sync.apply_batch`` message.

    The deliveries are stored in Redis and the message carries the batch's reference
    (:class:`state.batches.BatchStore`: a small message, as narrow a loss window in kombu
    as a single delivery's); each is counted as produced, once. Returns how many
    deliveries were sent.
    """
    store = BatchStore(state)
    sent = 0
    with app.producer_or_acquire() as producer:
        for batch in batches:
            if not batch:
                continue
            target = batch[0].target
            if any(d.target != target for d in batch):
                raise ValueError("a batch holds deliveries of one target")
            first = batch[0].model_dump(mode="json")
            # Stored, counted and recorded as pending in one call before it is sent.
            send_batch(
                app,
                target,
                store.put_sent(target, batch, now=clock()),
                producer=producer,
                argsrepr=describe_batch(len(batch), first),
            )
            sent += len(batch)
    return sent


def _pending_again(state: State, chunk: Sequence[dict[str, Any]]) -> None:
    """Parked deliveries going back to their queue are pending from now (see the pump)."""
    now = clock()
    singles: list[tuple[str, str, str]] = []
    in_batches: list[tuple[str, str]] = []
    for payload in chunk:
        ref = payload.get("batch")
        if isinstance(ref, str):
            stored = BatchStore(state).get(ref) or []
            in_batches += [ids for ids in map(pending_id, stored) if ids is not None]
        elif (ids := pending_id(payload)) is not None:
            singles.append((ids[0], ids[1], _encode(payload)))
    state.register(singles, now=now)
    state.touch(in_batches, now=now)


def publish_raw(
    app: Celery, payloads: Iterable[dict[str, object]], *, state: State | None = None
) -> int:
    """Re-publish parked deliveries as they were stored (already validated when parked).

    A parked batch (``{"target", "batch": <reference>}``, see
    :func:`state.batches.batch_member`) goes back as one ``sync.apply_batch`` message.
    With ``state``, each single delivery is recorded as pending (seen moving now) before
    it is sent, and each pending delivery of a batch is marked seen moving now. Returns how
    many messages were sent.
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        for chunk in _chunks(payloads):
            if state is not None:
                _pending_again(state, chunk)
            with producer.batch(max_size=CHUNK):
                for payload in chunk:
                    if "batch" in payload:
                        batch = cast(str | list[dict[str, Any]], payload["batch"])
                        send_batch(app, str(payload["target"]), batch, producer=producer)
                    else:
                        send_delivery(app, payload, producer=producer)
            sent += len(chunk)
    return sent
