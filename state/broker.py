"""What erpsync knows of how kombu's Redis transport keeps delivered messages: one seam.

Written for kombu 5.7 (``tests/state/test_broker.py`` pins the version and checks the
layout against a real Redis). kombu records each message it hands to a consumer and that is
not acknowledged yet in two keys under the transport's global key prefix: the hash
``unacked`` (delivery tag -> ``[message, exchange, routing key]`` as JSON) and the sorted set
``unacked_index`` (delivery tag -> when it was handed over). Its own recovery,
``QoS.restore_visible``, puts back every message handed over more than
``visibility_timeout`` ago, whether its consumer still works on it or died an hour ago.

erpsync reads the index score as a **lease** instead (:mod:`state.leases`): a live worker
renews the score of every message it holds (prefetched or started) every few seconds
(:meth:`Unacked.renew`), and a message whose score is older than the lease was held by a
worker that died, was cut off from Redis or stalled: it goes back to the head of its queue
at once (:meth:`Unacked.reclaim`), under a **new delivery tag**. kombu keeps a message's tag
when it restores one, so the first holder's late acknowledgement (a worker cut off, then
back) would delete the second holder's record, and the message would be lost if that one
died too; with a new tag it deletes nothing.

Everything here touches kombu's internals (the channel's ``qos``, ``_do_restore_message``);
nothing else in erpsync should.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from typing import Any

import redis
from celery import Celery

from state.keys import Keys
from state.messages import TASK_APPLY, queue_for

#: the kombu release whose layout this module was written for (major.minor)
KOMBU_LAYOUT = "5.7"


#: kombu's Redis transport: priority separator and steps (a queue per step but 0)
KOMBU_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def queue_keys(keys: Keys, target: str) -> list[str]:
    """The Redis lists holding a target's queue (one per kombu priority step)."""
    base = keys.queue(queue_for(target))
    return [base if p == 0 else f"{base}{KOMBU_SEP}{p}" for p in KOMBU_PRIORITY_STEPS]


def unacked_key(keys: Keys) -> str:
    """kombu's hash of messages delivered to a worker and not yet acknowledged."""
    return keys.unacked()


def _is_delivery(value: Any) -> bool:
    return isinstance(value, dict) and "event" in value and "target" in value


def deliveries_of_message(raw: str | bytes) -> list[dict[str, Any]]:
    """The deliveries a kombu message carries: one for ``sync.apply``, several for a batch.

    A batch task (a name starting ``sync.apply``) carries a list of deliveries as its first
    argument; any other message carries none.
    """
    try:
        message = json.loads(raw)
        if not str(message.get("headers", {}).get("task", "")).startswith(TASK_APPLY):
            return []
        body: Any = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode(message.get("content-encoding") or "utf-8")
        decoded = json.loads(body) if isinstance(body, str | bytes) else body
        args = decoded[0] if isinstance(decoded, list) else decoded.get("args")
        first = args[0] if args else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
        return []
    if isinstance(first, dict) and _is_delivery(first):
        return [first]
    if isinstance(first, list):
        return [d for d in first if _is_delivery(d)]
    return []


def kombu_version() -> str:
    """The installed kombu's major.minor."""
    return ".".join(version("kombu").split(".")[:2])


class Unacked:
    """The broker's record of delivered, unacknowledged messages, read as leases.

    Opens a kombu connection of its own from ``app``'s configuration (its key prefix
    among them); use one per thread.
    """

    def __init__(self, app: Celery) -> None:
        self._connection = app.connection_for_write()
        self._channel: Any = None
        self._plain: redis.Redis | None = None

    @property
    def channel(self) -> Any:
        """The kombu Redis channel (its ``client`` prefixes the keys of kombu's commands)."""
        if self._channel is None:
            self._channel = self._connection.default_channel
        return self._channel

    @property
    def plain(self) -> redis.Redis:
        """A client to kombu's Redis that prefixes nothing (kombu's own client prefixes
        only the commands kombu uses), on a pool of its own: kombu's pool is capped
        (``max_connections``, 10 by default) and raises when a worker's threads, each
        checking its message as its task starts, ask for more at once."""
        if self._plain is None:
            kombu_pool = self.channel.client.connection_pool
            self._plain = redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=kombu_pool.connection_class,
                    **kombu_pool.connection_kwargs,
                )
            )
        return self._plain

    @property
    def index_key(self) -> str:
        """The sorted set delivery tag -> handed over (or renewed) at, prefix included."""
        return f"{self.channel.global_keyprefix}{self.channel.unacked_index_key}"

    def held(self, tags: Iterable[str]) -> dict[str, float]:
        """When each of ``tags`` was handed over or last renewed (missing: not held)."""
        tags = list(tags)
        if not tags:
            return {}
        scores = self.plain.zmscore(self.index_key, tags)
        return {t: float(s) for t, s in zip(tags, scores, strict=True) if s is not None}

    def renew(self, tags: Sequence[str], *, now: float) -> list[str]:
        """Renew the leases of ``tags`` (score ``now``); returns those no longer held
        (acknowledged meanwhile, or reclaimed: the holder must not run them)."""
        if not tags:
            return []
        with self.plain.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.zadd(self.index_key, {tag: now}, xx=True, ch=True)
            changed = pipe.execute()
        return [tag for tag, n in zip(tags, changed, strict=True) if not n]

    def expired(self, before: float, *, limit: int = 500) -> list[str]:
        """Tags whose lease was last renewed before ``before``, oldest first."""
        found = self.plain.zrangebyscore(self.index_key, "-inf", f"({before}", start=0, num=limit)
        return [t.decode() if isinstance(t, bytes) else str(t) for t in found]

    def reclaim(self, tag: str) -> str | None:
        """Put the message of ``tag`` back at the head of its queue under a new tag, in one
        transaction with forgetting it; returns its routing key (None: no longer held)."""
        channel = self.channel
        routed: list[str] = []

        def restore(pipe: Any) -> None:
            raw = pipe.hget(channel.unacked_key, tag)
            pipe.multi()
            pipe.zrem(channel.unacked_index_key, tag)
            pipe.hdel(channel.unacked_key, tag)
            if raw:
                message, exchange, routing_key = json.loads(raw)
                message["properties"]["delivery_tag"] = str(uuid.uuid4())
                channel._do_restore_message(message, exchange, routing_key, pipe, False)
                routed.append(str(routing_key))

        channel.client.transaction(restore, channel.unacked_key)
        return routed[0] if routed else None

    def close(self) -> None:
        if self._plain is not None:
            self._plain.connection_pool.disconnect()
        self._connection.release()


def held_by(consumer: Any) -> dict[str, str]:
    """Delivery tag -> task id of every message a Celery consumer holds unacknowledged
    (prefetched or started); empty while it has no channel (connecting)."""
    qos = getattr(getattr(getattr(consumer, "task_consumer", None), "channel", None), "qos", None)
    if qos is None:
        return {}
    for _ in range(5):  # the consumer's threads change the dict as we read it
        try:
            delivered = list(qos._delivered.items())
            dirty = set(qos._dirty)
        except RuntimeError:
            continue
        return {
            str(tag): str((getattr(message, "headers", None) or {}).get("id", ""))
            for tag, message in delivered
            if tag not in dirty
        }
    return {}


def tag_of(request: Any) -> str | None:
    """The delivery tag of a Celery request's message (``task_received``)."""
    message = getattr(request, "message", None)
    tag = getattr(message, "delivery_tag", None)
    return None if tag is None else str(tag)
