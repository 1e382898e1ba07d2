"""Bulk paths: many deliveries of one target in one call, with every single-path guarantee.

Large loads (an initial load, a backfill, a mass edit) would cost one HTTP call per record;
Propeller's ``bulk/sourceId`` and HIPE's CSV import take hundreds at once. Batches are cut
where the deliveries are born: the producer (:mod:`producers.base`) sends the upserts of a
large poll for a bulk-capable target as ``sync.apply_batch`` messages, cut by
:func:`plan_batches` (parents before children, a family kept in one batch when it fits, at
most the target's batch size), so that a child's parent is already applied or earlier in
the same call, which both vendors apply in order. Cutting at the producer rather than
gathering single messages in the worker (celery-batches' way) keeps ``acks_late`` simple:
a batch is one message, acknowledged once its every delivery has an outcome or is parked.

:class:`BatchApplier` takes a batch through the pipeline's steps
(:mod:`delivery.pipeline.steps`, with the bulk call's own in :mod:`delivery.pipeline.bulk`),
the same as a single delivery's. A whole-call transient failure keeps the batch together
(rather than parking each delivery as a single one) because the usual cause is the target's
rate limit or a short outage: turning one refused bulk call into hundreds of single calls
would make both worse. Retries of individual records, dependency waits of one record and
replays use the single path. Outcomes are counted once per delivery
(:meth:`workers.state.State.record_outcome`), so a batch message delivered twice changes
nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from delivery.pipeline.bulk import Bulk
from delivery.pipeline.contract import BulkItemResult, BulkSink
from delivery.pipeline.hooks import Hooks, Tally
from erpsync.events import ChangeEvent, Delivery
from erpsync.settings import Settings
from workers.state import MANY, State

__all__ = [
    "BatchApplier",
    "BatchStore",
    "BulkItemResult",
    "BulkRoute",
    "BulkSink",
    "batch_member",
    "bulk_routes",
    "plan_batches",
    "split_for_bulk",
]

log = structlog.get_logger("erpsync.worker")

#: a Propeller poll with at most this many changes goes the single path, as HIPE's default
#: ``bulk_threshold``: everyday polls keep one PATCH per edit (what operators and the
#: issue-4 tests see); initial loads, backfills and mass edits go in bulk
PROPELLER_BULK_THRESHOLD = 500
#: rows per HIPE CSV import: one import must end well within the broker's visibility
#: timeout (the worker polls it to its end while holding the records' locks)
HIPE_IMPORT_MAX_ROWS = 1000
#: a bulk-capable sink's entity
BULK_ENTITIES = frozenset({"customer"})


# -- where batches are cut (producers) ---------------------------------------------------


@dataclass(frozen=True)
class BulkRoute:
    """How the producer batches one target's deliveries."""

    target: str
    batch_size: int
    #: a poll (or backfill) with fewer changes than this uses the single path
    min_records: int
    entities: frozenset[str] = BULK_ENTITIES
    #: whether an inactive record's upsert rides in bulk too (Propeller's lifecycle marker
    #: is a field of the bulk item; HIPE archives one record at a time)
    inactive: bool = False

    def carries(self, event: ChangeEvent) -> bool:
        """True when the bulk endpoint can apply this change (an upsert; an active one
        unless the target's bulk items carry the lifecycle too)."""
        return (
            event.entity in self.entities
            and event.operation == "upsert"
            and (self.inactive or bool(event.payload.get("active", True)))
        )


def bulk_routes(settings: Settings) -> dict[str, BulkRoute]:
    """The bulk-capable targets of these settings: Propeller bulk upserts, HIPE imports."""
    routes: dict[str, BulkRoute] = {}
    propeller = settings.systems.propeller
    if propeller is not None:
        routes["propeller"] = BulkRoute(
            "propeller", propeller.bulk_batch_size, PROPELLER_BULK_THRESHOLD + 1, inactive=True
        )
    hipe = settings.systems.hipe
    if hipe is not None:
        # "above bulk_threshold records": a poll of exactly the threshold stays single.
        routes["hipe"] = BulkRoute("hipe", HIPE_IMPORT_MAX_ROWS, hipe.bulk_threshold + 1)
    return routes


def plan_batches(deliveries: Sequence[Delivery], size: int) -> list[list[Delivery]]:
    """Cut one target's deliveries into batches of at most ``size``, parents first.

    A *family* is a record and its descendants among ``deliveries``. Families are placed
    in the order of their first member; inside one, parents come before children (then
    source order); a family goes into the first batch with room for all of it (so batches
    end full: as few calls as the load allows), else starts a new one, and a family larger
    than ``size`` spans consecutive new batches. So a child's parent, when it is in this
    load, is earlier in the same batch, or (only for a family too big for one batch) in an
    earlier batch.
    """
    if size < 1:
        raise ValueError("a batch holds at least one delivery")
    by_key = {d.event.key: d for d in deliveries}
    position = {d.event.key: i for i, d in enumerate(deliveries)}

    def chain(key: str) -> list[str]:
        """``key`` and its ancestors in this load, nearest first (a cycle stops it)."""
        found = [key]
        parent = by_key[key].event.parent_key
        while parent is not None and parent in by_key and parent not in found:
            found.append(parent)
            parent = by_key[parent].event.parent_key
        return found

    families: dict[str, list[tuple[int, int, Delivery]]] = {}
    order: list[str] = []
    for d in deliveries:
        ancestry = chain(d.event.key)
        root = ancestry[-1]
        if root not in families:
            families[root] = []
            order.append(root)
        families[root].append((len(ancestry), position[d.event.key], d))
    batches: list[list[Delivery]] = []
    for root in order:
        members = [d for _, _, d in sorted(families[root], key=lambda m: (m[0], m[1]))]
        if len(members) <= size:
            # First fit: the first batch with room for the whole family, else a new one.
            # Batches end full (a call's worth), not cut short where a family did not fit.
            room = next((b for b in batches if len(b) + len(members) <= size), None)
            if room is None:
                room = []
                batches.append(room)
            room.extend(members)
            continue
        for start in range(0, len(members), size):
            batches.append(members[start : start + size])
    return batches


def split_for_bulk(
    deliveries: Sequence[Delivery], routes: Mapping[str, BulkRoute], volume: int
) -> tuple[list[Delivery], list[list[Delivery]]]:
    """(single deliveries, batches) for deliveries of a poll that found ``volume`` changes."""
    singles: list[Delivery] = []
    bulk: dict[str, list[Delivery]] = {}
    for d in deliveries:
        route = routes.get(d.target)
        if route is not None and volume >= route.min_records and route.carries(d.event):
            bulk.setdefault(d.target, []).append(d)
        else:
            singles.append(d)
    batches = [
        batch
        for target, members in bulk.items()
        for batch in plan_batches(members, routes[target].batch_size)
    ]
    return singles, batches


# Forget a done batch: its content, and its records' entries in the pending index that
# still name it (a record may have moved on to a newer batch since). KEYS[1] the batch,
# KEYS[2] its index entry (JSON: the value, then the fields), KEYS[3] the index.
_DONE = """
local entry = redis.call('get', KEYS[2])
if entry then
  local list = cjson.decode(entry)
  for i = 2, #list, 1000 do
    local fields = {unpack(list, i, math.min(i + 999, #list))}
    local values = redis.call('hmget', KEYS[3], unpack(fields))
    local mine = {}
    for j = 1, #fields do
      if values[j] == list[1] then mine[#mine + 1] = fields[j] end
    end
    if #mine > 0 then redis.call('hdel', KEYS[3], unpack(mine)) end
  end
end
redis.call('del', KEYS[1], KEYS[2])
"""

# A batch about to be sent, in one call (the producer's bulk path): stored, indexed, each
# delivery counted as produced once (_OUTCOME's rule) and recorded as pending, seen moving
# now. KEYS: the batch, its index entry, the pending index, the target's counters, pending
# set and pending payloads, then per delivery its produced marker. ARGV[1] the TTL (s),
# ARGV[2] now, ARGV[3] the index entry (JSON: the index value, then the fields), ARGV[4]
# JSON: per delivery [delivery id, flow counter field or ''], then per delivery its JSON
# (the batch stored is their JSON array). Returns how many were counted now. (Packing
# tens of thousands of arguments cost the producer more CPU than reading the source.)
_PUT_SENT = (
    MANY
    + """
local ttl = tonumber(ARGV[1])
local items = cjson.decode(ARGV[4])
local texts, payloads, seen = {}, {}, {}
for i = 1, #items do
  texts[i] = ARGV[4 + i]
  payloads[2 * i - 1], payloads[2 * i] = items[i][1], texts[i]
  seen[2 * i - 1], seen[2 * i] = ARGV[2], items[i][1]
end
redis.call('set', KEYS[1], '[' .. table.concat(texts, ',') .. ']', 'EX', ttl)
local entry = cjson.decode(ARGV[3])
if #entry > 1 then
  redis.call('set', KEYS[2], ARGV[3], 'EX', ttl)
  local index = {}
  for i = 2, #entry do index[#index + 1], index[#index + 2] = entry[i], entry[1] end
  many('hset', KEYS[3], index)
  redis.call('expire', KEYS[3], ttl)
end
local bumps, counted = {}, 0
for i, item in ipairs(items) do
  if redis.call('set', KEYS[6 + i], 'produced', 'NX', 'EX', ttl) then
    counted = counted + 1
    bumps['produced'] = (bumps['produced'] or 0) + 1
    if item[2] ~= '' then bumps[item[2]] = (bumps[item[2]] or 0) + 1 end
  end
end
if #items > 0 then
  many('hset', KEYS[6], payloads)
  many('zadd', KEYS[5], seen)
end
for field, amount in pairs(bumps) do redis.call('hincrby', KEYS[4], field, amount) end
return counted
"""
)

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
        return f"{self.prefix}:batch:{ref}"

    def index_key(self) -> str:
        """Hash: (target, entity, key) of a record in a stored batch -> that batch's ref
        (followed by `` parked`` for a batch parked in the delayed set)."""
        return f"{self.prefix}:bulk-pending"

    def fields_key(self, ref: str) -> str:
        """String: one stored batch's index value, then its fields (JSON), to forget them."""
        return f"{self.prefix}:bulk-pending:{ref}"

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


# -- how a batch is applied (workers) -----------------------------------------------------


class BatchApplier(Bulk):
    """Applies ``sync.apply_batch`` messages through a target's bulk endpoint (the
    pipeline's bulk steps, with this module's batch store)."""

    def process(self, deliveries: Sequence[Delivery]) -> dict[str, int]:
        """Take every delivery to its outcome or park it; returns counts per result."""
        counts: Counter[str] = Counter()
        by_target: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_target.setdefault(d.target, []).append(d)
        for target, group in by_target.items():
            counts.update(self._process_target(target, group))
        return dict(counts)

    def _process_target(self, target: str, group: list[Delivery]) -> Counter[str]:
        engine = self.engine
        sink = engine.sinks().get(target)
        if not isinstance(sink, BulkSink):
            counts: Counter[str] = Counter()
            with engine.cpu_slots.released():  # the single path's calls are waits
                for d in group:  # no bulk endpoint: each delivery goes its single path
                    counts[engine.process(d)] += 1
            return counts
        tally = Tally()
        with Hooks.listening(tally):
            run = self.run_batch(target, sink, group)
            if not run.admitted:
                return tally  # parked whole: its line is sync.batch_parked_circuit
            order = {id(d): i for i, d in enumerate(group)}
            tally.single = True
            with engine.cpu_slots.released():  # the single path's calls are waits
                for d in sorted(run.later, key=lambda d: order[id(d)]):  # in source order
                    engine.process(d)  # it logs its own line
        log.info(
            "sync.batch_done",
            target=target,
            size=len(group),
            duration_s=round(time.perf_counter() - run.started, 3),
            **{name: round(seconds, 3) for name, seconds in run.timings.items()},
            **tally,
            outcomes=tally.outcomes,
        )
        return tally

    def pending(self, records: Sequence[tuple[str, str, str]]) -> list[bool]:
        return BatchStore(self.engine.state).pending(records)

    def park_batch(self, deliveries: Sequence[Delivery], delay_s: float) -> None:
        engine = self.engine
        target = deliveries[0].target
        due_at = engine.clock() + delay_s
        ref = BatchStore(engine.state).put(deliveries, parked=True)
        engine.state.schedule(batch_member(target, ref), due_at)
        # Their leases run from when the batch is due, as a parked single delivery's do: a
        # batch parked longer than the lease is not taken for lost (see workers.pump).
        engine.state.touch(((d.target, d.delivery_id) for d in deliveries), now=due_at)
