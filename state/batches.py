"""Batches kept in Redis (the bulk path's ``sync.apply_batch`` messages carry a reference).

Written by producers (:func:`state.publish.publish_batches`) and the bulk path when it parks
a batch; read and forgotten by the workers (:mod:`delivery.batch`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from erpsync.events import Delivery
from state.scripts import lua
from state.store import State

# A batch about to be sent, in one call (the producer's bulk path): stored, indexed, each
# delivery counted as produced once (_OUTCOME's rule) and recorded as pending, seen moving
# now. KEYS: the batch, its index entry, the pending index, the target's counters, pending
# set and pending payloads, then per delivery its produced marker. ARGV[1] the TTL (s),
# ARGV[2] now, ARGV[3] the index entry (JSON: the index value, then the fields), ARGV[4]
# JSON: per delivery [delivery id, flow counter field or ''], then per delivery its JSON
# (the batch stored is their JSON array). Returns how many were counted now. (Packing
# tens of thousands of arguments cost the producer more CPU than reading the source.)
_PUT_SENT = lua("many", "batches_put_sent")


# Forget a done batch: its content, and its records' entries in the pending index that
# still name it (a record may have moved on to a newer batch since). KEYS[1] the batch,
# KEYS[2] its index entry (JSON: the value, then the fields), KEYS[3] the index.
_DONE = lua("batches_done")


#: how the pending index marks a batch parked in the delayed set (not on a queue)
PARKED = "parked"


class BatchStore:
    """Batches kept in Redis; messages and the delayed set carry only their reference.

    A batch of hundreds of deliveries is hundreds of kilobytes. kombu's Redis transport pops
    a message and only then records it as unacknowledged, so a worker killed in between
    loses it, and the bigger the message, the wider that window. With a reference the
    window is as narrow as for a single delivery. The content stays until its batch is done
    (every delivery has an outcome or is parked elsewhere), at most ``ttl_s``.

    A *pending index* names, for each record of a stored batch, the batch that carries it
    (until that batch is done), so that a batch whose children's parents are not in the
    target yet can tell a parent on its way from one that is not coming.
    """

    def __init__(self, state: State) -> None:
        self.redis = state.redis
        self.keys = state.keys
        self.prefix = state.keys.prefix
        self.ttl_s = state.outcome_ttl_s
        self._done = self.redis.register_script(_DONE)
        self._put_sent = self.redis.register_script(_PUT_SENT)

    def key(self, ref: str) -> str:
        """String: one batch's deliveries (JSON)."""
        return self.keys.batch(ref)

    def index_key(self) -> str:
        """Hash: (target, entity, key) of a record in a stored batch -> that batch's ref
        (followed by `` parked`` for a batch parked in the delayed set)."""
        return self.keys.bulk_pending()

    def fields_key(self, ref: str) -> str:
        """String: one stored batch's index value, then its fields (JSON), to forget them."""
        return self.keys.bulk_pending_fields(ref)

    @staticmethod
    def field(target: str, entity: str, key: str) -> str:
        """A record's field in the pending index."""
        return f"{target}|{entity}|{key}"

    def put(self, deliveries: Sequence[Delivery], *, parked: bool = False) -> str:
        """Store a batch (``parked``: for the delayed set); returns its reference."""
        return self.put_payloads([d.model_dump(mode="json") for d in deliveries], parked=parked)

    def put_payloads(self, payloads: Sequence[dict[str, Any]], *, parked: bool = False) -> str:
        """Store a batch of deliveries already dumped as JSON; returns its reference."""
        ref = uuid.uuid4().hex
        value = f"{ref} {PARKED}" if parked else ref
        fields = [
            self.field(str(p["target"]), str(p["event"]["entity"]), str(p["event"]["key"]))
            for p in payloads
        ]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key(ref), json.dumps(payloads, separators=(",", ":")), ex=self.ttl_s)
            if fields:
                pipe.set(self.fields_key(ref), json.dumps([value, *fields]), ex=self.ttl_s)
                pipe.hset(self.index_key(), mapping=dict.fromkeys(fields, value))
                pipe.expire(self.index_key(), self.ttl_s)
            pipe.execute()
        return ref

    def put_sent(self, target: str, deliveries: Sequence[Delivery], *, now: float) -> str:
        """Store a batch of ``target`` about to be sent; returns its reference.

        In the same call, each delivery is counted as produced (once, as
        :meth:`State.mark_produced_many` counts it) and recorded as pending, seen moving
        ``now`` (as :meth:`State.register` records it): a producer's bulk batch costs one
        round trip and one JSON argument, whatever its size.
        """
        ref = uuid.uuid4().hex
        fields = [self.field(target, d.event.entity, d.event.key) for d in deliveries]
        items = [
            [d.delivery_id, f"{d.event.flow}.produced" if d.event.flow else ""] for d in deliveries
        ]
        keys = [
            self.key(ref),
            self.fields_key(ref),
            self.index_key(),
            self.keys.counters(target),
            self.keys.pending(target),
            self.keys.pending_payload(target),
            *(self.keys.produced_marker(target, d.delivery_id) for d in deliveries),
        ]
        args: list[str | float] = [
            self.ttl_s,
            repr(now),
            json.dumps([ref, *fields], ensure_ascii=False),
            json.dumps(items, ensure_ascii=False, separators=(",", ":")),
            *(d.model_dump_json() for d in deliveries),
        ]
        self._put_sent(keys=keys, args=args)
        return ref

    def get(self, ref: str) -> list[dict[str, Any]] | None:
        """The batch's deliveries as stored, or None once it is done."""
        raw = self.get_json(ref)
        if raw is None:
            return None
        loaded: list[dict[str, Any]] = json.loads(raw)
        return loaded

    def get_json(self, ref: str) -> str | bytes | None:
        """The batch's deliveries as stored (a JSON array), or None once it is done."""
        raw: str | bytes | None = self.redis.get(self.key(ref))
        return raw

    def pending(self, records: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Per (target, entity, key): True while a batch on a queue carries it.

        A batch parked in the delayed set (a retry, a wait) does not count: it is not
        coming soon.
        """
        if not records:
            return []
        raw = self.redis.hmget(self.index_key(), [self.field(*r) for r in records])
        values = [v.decode() if isinstance(v, bytes) else v for v in raw]
        refs = [None if v is None or v.endswith(f" {PARKED}") else v for v in values]
        named = sorted({ref for ref in refs if ref is not None})
        if not named:
            return [False] * len(records)
        with self.redis.pipeline(transaction=False) as pipe:
            for ref in named:
                pipe.exists(self.key(ref))
            stored = {ref for ref, found in zip(named, pipe.execute(), strict=True) if found}
        return [ref in stored for ref in refs]

    def done(self, ref: str) -> None:
        """Forget a batch whose every delivery has an outcome or is parked on its own."""
        self._done(keys=[self.key(ref), self.fields_key(ref), self.index_key()])


def batch_member(target: str, ref: str) -> dict[str, Any]:
    """A stored batch as parked in the delayed set (re-published as one message)."""
    return {"target": target, "batch": ref}
