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

:class:`BatchApplier` takes a batch through the same decisions as
:meth:`workers.engine.Engine.process`, in this order:

1. circuit open or target paused       → the whole batch is parked (one probe admitted once);
2. a replay, a second change of a key  → the single path (replays never ride in bulk);
   record locked by another worker      → that delivery is parked alone (busy);
3. ledger newer / same fingerprint      → skipped, per delivery;
4. a change the bulk endpoint cannot
   carry (deletion, a deactivation the
   target cannot mark in bulk, a record
   the sink must handle itself)         → the single path, after the bulk call;
5. parent neither applied nor earlier
   in the batch                         → while the parent is on its way (its record
                                          locked by another batch or delivery applying it
                                          now, or stored in a batch not yet started), the
                                          batch waits for it in the worker, woken as soon
                                          as a batch of this process lands (else every
                                          :data:`PARENT_RECHECK_S`), at most
                                          :data:`PARENT_WAIT_S`; otherwise (or still
                                          missing then) the children wait (dependency):
                                          the waiting deliveries of a batch wait together
                                          and come back as one batch;
6. ONE bulk call for the rest; each per-record outcome goes to its own delivery:
   success                              → ledger + applied;
   failure                              → the single path's handling for that delivery
                                          alone (transient → retry, dependency → wait,
                                          permanent → dead letter; a conflict → the single
                                          path, which recovers it; a child whose parent
                                          failed in the same call waits for the parent);
7. the call as a whole failed:
   transient, a short Retry-After       → the call is made again in place once it is over
   (a 429 of the target's limit)          (a few times; attempts counted as below);
   transient                            → the batch is retried as a batch after backoff
                                          (each delivery's attempt counted; one whose
                                          budget is spent is dead-lettered alone);
   authentication                       → circuit opened, batch parked, no attempt burned;
   permanent (the request was refused)  → every delivery takes the single path, so a bad
                                          record dead-letters alone and the rest arrive.

Waiting for a parent in the worker rather than in the delayed set matters for loads: the
producer cuts a large poll into batches flush by flush, so a child's parent is often in an
earlier batch that a concurrent worker thread is still applying. Parked, the child would
come back behind the whole backlog, after a dependency delay, and its batch would go out
as a second, smaller call; waiting a moment keeps one call per batch, in order. Only a
parent that is on its way is waited for (one in a batch that is merely queued, for a
short grace: the time its worker takes to lock it; one parked in the delayed set, not at
all), so a parent that is not coming costs no wait, and a batch does not wait long for one
queued behind it.

A whole-call transient failure keeps the batch together (rather than parking each delivery
as a single one) because the usual cause is the target's rate limit or a short outage:
turning one refused bulk call into hundreds of single calls would make both worse.
Retries of individual records, dependency waits of one record and replays use the single
path. Outcomes are counted once per delivery (:meth:`workers.state.State.record_outcome`),
so a batch message delivered twice changes nothing.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import structlog
from pydantic import ValidationError
from redis.commands.core import Script

from erpsync.errors import (
    AuthError,
    ConflictError,
    DependencyError,
    ErrorClass,
    SyncError,
    TransientError,
)
from erpsync.events import ChangeEvent, Delivery
from erpsync.settings import Settings
from workers.engine import (
    ApplyContext,
    ApplyResult,
    Engine,
    Sink,
    invalid_source_data,
    log_context,
    missing_parent,
)
from workers.leases import LeaseLostError
from workers.state import MANY, LedgerEntry, State, _holder

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
#: how often the record locks of a long bulk call (an import) are extended, seconds
KEEPALIVE_EVERY_S = 1.0
#: the longest a batch waits in the worker for parents on their way, seconds; then its
#: children still waiting go to the delayed set (a dependency wait, as before)
PARENT_WAIT_S = 10.0
#: how often a waiting batch looks again when no batch of its own process has landed
#: (a parent applied by another worker process or by the single path), seconds
PARENT_RECHECK_S = 0.05
#: how long a parent stored in a batch on a queue, not locked yet, is waited for: a batch
#: taken just before this one (batches start in the order they were queued) needs a moment
#: to read, check and lock its records, more than a second on a busy host; seconds
PARENT_START_GRACE_S = 5.0
#: how many batches of one worker process work at once between their waits (see _Turns)
BATCH_TURNS = 2
#: a bulk call answered 429 with at most this ``Retry-After`` is retried in place, seconds
RETRY_HERE_MAX_S = 2.0
#: how many times in a row, at most (then the batch is parked as any transient failure)
RETRIES_HERE = 3

BulkItemResult = ApplyResult | SyncError | ValidationError


@runtime_checkable
class BulkSink(Sink, Protocol):
    """A sink whose target takes many records in one call (upsert by the source key)."""

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> Any | None:
        """What the bulk call carries for this change, or None: it takes the single path.

        Raises ``ValidationError`` (the record cannot be mapped) or ``SyncError`` (refused
        before any call), which dead-letter or retry this delivery alone.
        """
        ...

    def apply_bulk(
        self, items: Sequence[Any], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        """Send every item in one call, in order; one result per item, in the same order.

        Raises ``SyncError`` when the call as a whole failed (nothing is known per item).
        ``keepalive`` must be called at least every few seconds during a long call: it
        extends the records' locks.
        """
        ...


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

# Every hash of KEYS, each as HGETALL returns it (field, value, ...; empty when none).
_READ_LEDGERS = """
local found = {}
for i, key in ipairs(KEYS) do found[i] = redis.call('hgetall', key) end
return found
"""

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


class _Landings:
    """Batches of this worker process that applied records or ended.

    A batch waiting for parents sleeps on this instead of polling Redis in a tight loop: a
    parent applied by another thread of the process wakes it at once.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def count(self) -> int:
        """How many landings so far (what :meth:`wait` compares with)."""
        with self._changed:
            return self._count

    def landed(self) -> None:
        """A batch applied records or ended: every waiting batch looks again."""
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait(self, since: int, timeout_s: float) -> None:
        """Until a landing after ``since`` (a :meth:`count`), at most ``timeout_s``."""
        with self._changed:
            self._changed.wait_for(lambda: self._count != since, max(0.0, timeout_s))


#: this process's landings (worker threads share it)
LANDINGS = _Landings()


class _Turns:
    """Turns of this worker process's batches at their own work, ``size`` at once, in order.

    A batch's own work (reading and locking its records, mapping them, recording the
    call's outcomes) is CPU under one interpreter lock; its waits (the bulk call, the rate
    limit, parents on their way) are not. Eight worker threads each working a 200-record
    batch at once did the same work with 1.7 times the CPU of two (measured: 0.27 against
    0.16 ms a record, the threads' memory interleaved), and no sooner. So a batch works
    only in its turn and gives the turn up while it waits; turns go in the order the
    batches arrived, those coming back from a wait first (their records are locked and
    their children wait for them), so a parent's batch is never queued behind its
    children's. A batch never waits for another while it holds a turn.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._changed = threading.Condition()
        self._working = 0
        self._queue: list[tuple[int, int]] = []  # (0: coming back, 1: new), arrival
        self._arrivals = itertools.count()
        self._held = threading.local()

    def _take(self, rank: int) -> None:
        place = (rank, next(self._arrivals))
        with self._changed:
            heapq.heappush(self._queue, place)
            self._changed.wait_for(lambda: self._working < self.size and self._queue[0] == place)
            heapq.heappop(self._queue)
            self._working += 1
            self._changed.notify_all()
        self._held.value = True

    def _give_up(self) -> None:
        self._held.value = False
        with self._changed:
            self._working -= 1
            self._changed.notify_all()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """This thread's batch works (waiting for its turn first, unless it has it)."""
        if getattr(self._held, "value", False):
            yield
            return
        self._take(1)
        try:
            yield
        finally:
            self._give_up()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """The batch waits: its turn goes to the next meanwhile (none held: nothing)."""
        if not getattr(self._held, "value", False):
            yield
            return
        self._give_up()
        try:
            yield
        finally:
            self._take(0)


#: this process's turns (worker threads share them)
TURNS = _Turns(BATCH_TURNS)


@contextlib.contextmanager
def _bound(delivery: Delivery) -> Iterator[None]:
    """The log context of one delivery, as :meth:`Engine.process` binds it."""
    with structlog.contextvars.bound_contextvars(**log_context(delivery)):
        yield


class _Tally(Counter[str]):
    """A batch's results counted (the task's answer), and each record's outcome by its key.

    At ``INFO`` a batch logs one line, ``sync.batch_done``, whose ``outcomes`` name every
    record as ``"key:outcome"`` (``created``, ``updated``, ``skipped_unchanged``,
    ``parked_transient``, ``dead_lettered``, ``single``...), so that grepping a log for a key
    finds what became of it; a failure also has its own line, with the key and the reason.
    """

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[str] = []

    def note(self, delivery: Delivery, result: str, outcome: str | None = None) -> None:
        """One delivery's result; ``outcome`` says more than the result, if given."""
        self[result] += 1
        self.outcomes.append(f"{delivery.event.key}:{outcome or result}")

    def note_failed(self, delivery: Delivery, result: str, error: SyncError) -> None:
        """A failed delivery's result: dead-lettered, or parked for its error's class."""
        self.note(
            delivery, result, f"parked_{error.error_class.value}" if result == "parked" else None
        )

    def note_all(self, deliveries: Sequence[Delivery], result: str, outcome: str) -> None:
        """The same result for every delivery."""
        self[result] += len(deliveries)
        self.outcomes.extend(f"{d.event.key}:{outcome}" for d in deliveries)


@dataclass
class _Item:
    delivery: Delivery
    ledger: LedgerEntry | None
    payload: Any


@dataclass
class _Triaged:
    """A batch's admission so far: what the call carries, and where the rest went."""

    items: list[_Item]
    carried: set[tuple[str, str]]
    ledgers: dict[tuple[str, str], LedgerEntry]
    leaving: list[str]
    later: list[Delivery]
    lookup: Callable[[str, str], LedgerEntry | None] = field(repr=False, default=lambda e, k: None)


# Take a batch's record locks in one call. KEYS: the locks; ARGV[1] the TTL in ms, ARGV[2]
# the batch's token. Returns per lock "+" when taken, else "-" and its holder's token.
_TAKE_ALL = """
local answers = {}
for i = 1, #KEYS do
  if redis.call('set', KEYS[i], ARGV[2], 'NX', 'PX', ARGV[1]) then
    answers[i] = '+'
  else
    answers[i] = '-' .. (redis.call('get', KEYS[i]) or '')
  end
end
return answers
"""

# Give locks back in one call, each only if its token is still the one given (ARGV[i]).
_GIVE_ALL = """
local given = 0
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) == ARGV[i] then
    redis.call('del', KEYS[i])
    given = given + 1
  end
end
return given
"""


@dataclass
class _Locks:
    """The record locks of one batch, released together.

    They are taken and given back by one script call each (a batch's hundreds of locks as
    hundreds of commands cost the worker more CPU than the rest of its bookkeeping), under
    one token naming this process, as :meth:`State.acquire` names it: a lock left by a
    worker that died is taken over the same way.
    """

    engine: Engine
    held: dict[str, str] = field(default_factory=dict)  # lock key -> token
    last_extended: float = 0.0

    def take_all(self, lock_keys: list[str]) -> list[bool]:
        """Take these locks in one round trip; True where taken (False: another holder)."""
        if not lock_keys:
            return []
        state = self.engine.state
        ttl_s = self.engine.policy.lock_ttl_s
        token = _holder()
        take = state.redis.register_script(_TAKE_ALL)
        answers: list[str] = take(keys=lock_keys, args=[max(1, int(ttl_s * 1000)), token])
        taken: list[bool] = []
        for lock_key, answer in zip(lock_keys, answers, strict=True):
            mine: str | None = token
            if answer != "+":  # held: taken over only from a dead process of this host
                mine = state.take_over(lock_key, answer[1:] or None, ttl_s)
            if mine is not None:
                self.held[lock_key] = mine
            taken.append(mine is not None)
        return taken

    def release(self, lock_keys: list[str]) -> None:
        """Give these locks back in one round trip."""
        pairs = [(k, t) for k in lock_keys if (t := self.held.pop(k, None)) is not None]
        if pairs:
            give = self.engine.state.redis.register_script(_GIVE_ALL)
            give(keys=[k for k, _ in pairs], args=[t for _, t in pairs])

    def release_all(self) -> None:
        self.release(list(self.held))

    def keepalive(self) -> None:
        """Extend every held lock (a long import must not outlive its locks); with leases,
        they are renewed already: check they still are held (LeaseLostError)."""
        if self.engine.leases is not None:
            self.engine.guard()
            return
        now = time.monotonic()
        if now - self.last_extended < KEEPALIVE_EVERY_S or not self.held:
            return
        self.last_extended = now
        ttl_ms = int(self.engine.policy.lock_ttl_s * 1000)
        with self.engine.state.redis.pipeline(transaction=False) as pipe:
            for lock_key in self.held:
                pipe.pexpire(lock_key, ttl_ms)
            pipe.execute()


@dataclass
class BatchApplier:
    """Applies ``sync.apply_batch`` messages through a target's bulk endpoint."""

    engine: Engine
    #: how long, at most, a batch waits here for parents on their way (step 5)
    parent_wait_s: float = PARENT_WAIT_S
    #: how often a waiting batch looks again without a landing in this process
    recheck_s: float = PARENT_RECHECK_S
    #: how long a parent merely stored in a batch (not locked yet) is waited for
    start_grace_s: float = PARENT_START_GRACE_S

    def process(self, deliveries: Sequence[Delivery]) -> dict[str, int]:
        """Take every delivery to its outcome or park it; returns counts per result."""
        counts: Counter[str] = Counter()
        by_target: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_target.setdefault(d.target, []).append(d)
        for target, group in by_target.items():
            counts.update(self._process_target(target, group))
        return dict(counts)

    # -- the decision tree -----------------------------------------------------------
    def _process_target(self, target: str, group: list[Delivery]) -> _Tally:
        engine = self.engine
        counts = _Tally()
        sink = engine.sinks().get(target)
        if not isinstance(sink, BulkSink):
            with TURNS.waiting():  # the single path's calls are waits
                for d in group:  # no bulk endpoint: each delivery goes its single path
                    counts[engine.process(d)] += 1
            return counts
        started = time.perf_counter()
        wait, probe = engine.circuit.admit_lease(target, now=engine.clock())
        if wait > 0:
            engine.state.incr(target, "parked_circuit", len(group))
            self._park_batch(target, group, wait + engine.rng.uniform(0, min(5.0, wait / 4 + 0.5)))
            for d in group:
                engine.notify("parked_circuit", d, wait_s=wait)
            counts.note_all(group, "parked", "parked_circuit")
            log.info("sync.batch_parked_circuit", target=target, count=len(group),
                     wait_s=round(wait, 2), keys=[d.event.key for d in group])  # fmt: skip
            return counts

        inflight = engine.state.keys.inflight(target)
        now_text = f"{engine.clock():.3f}"
        engine.state.redis.hset(inflight, mapping={d.delivery_id: now_text for d in group})
        locks = _Locks(engine)
        later: list[Delivery] = []  # single path, once this batch's locks are released
        timings: dict[str, float] = {}  # where the batch's time went, for its log line
        leased = engine.holding(locks.held, [(target, d.delivery_id) for d in group])
        with TURNS.turn(), leased:  # the turn is held already when called by the task
            try:
                items = self._admit(target, sink, group, locks, later, counts, timings)
                timings["admitted_s"] = time.perf_counter() - started
                if items:
                    self._apply(target, sink, items, locks, counts, timings)
            finally:
                locks.release_all()
                engine.state.redis.hdel(inflight, *(d.delivery_id for d in group))
                if probe is not None:  # the batch was the half-open circuit's probe
                    engine.circuit.end_probe(target, probe, now=engine.clock())
                LANDINGS.landed()
        order = {id(d): i for i, d in enumerate(group)}
        with TURNS.waiting():  # the single path's calls are waits
            for d in sorted(later, key=lambda d: order[id(d)]):  # in source order
                result = engine.process(d)  # it logs its own line
                counts.note(d, result, f"single_{result}")
        log.info(
            "sync.batch_done",
            target=target,
            size=len(group),
            duration_s=round(time.perf_counter() - started, 3),
            **{name: round(seconds, 3) for name, seconds in timings.items()},
            **counts,
            outcomes=counts.outcomes,
        )
        return counts

    def _admit(
        self,
        target: str,
        sink: BulkSink,
        group: list[Delivery],
        locks: _Locks,
        later: list[Delivery],
        counts: _Tally,
        timings: dict[str, float],
    ) -> list[_Item]:
        """Locks, ledger skips, parent checks and mapping; returns what the call carries."""
        engine, state = self.engine, self.engine.state
        landings = LANDINGS.count()  # before any ledger is read: no landing goes unseen
        candidates: list[Delivery] = []
        seen: set[tuple[str, str]] = set()
        for d in group:
            event = d.event
            record = (event.entity, event.key)
            if d.replay_of is not None or record in seen or not sink.handles(event.entity):
                later.append(d)
                continue
            seen.add(record)
            candidates.append(d)
        lock_keys = [
            state.keys.record_lock(target, d.event.entity, d.event.key) for d in candidates
        ]
        locked: list[Delivery] = []
        for d, taken in zip(candidates, locks.take_all(lock_keys), strict=True):
            if taken:
                locked.append(d)
                continue
            state.incr(target, "parked_busy")
            engine.park(d, engine.policy.busy_delay_s * (1 + engine.rng.random()))
            counts.note(d, "parked", "parked_busy")

        wanted = {(d.event.entity, d.event.key) for d in locked}
        wanted |= {
            (d.event.entity, d.event.parent_key) for d in locked if d.event.parent_key is not None
        }
        ledgers = self._ledgers(target, sorted(wanted))

        def lookup(entity: str, key: str) -> LedgerEntry | None:
            return state.ledger_get(target, entity, key)

        items: list[_Item] = []
        carried: set[tuple[str, str]] = set()
        waiting: list[Delivery] = []
        leaving: list[str] = []
        for d in locked:
            event = d.event
            ledger = ledgers.get((event.entity, event.key))
            route = self._triage(target, sink, d, ledger, ledgers, carried, lookup, counts)
            if isinstance(route, _Item):
                items.append(route)
                carried.add((event.entity, event.key))
            elif route == "waiting":
                waiting.append(d)  # keeps its lock while it waits here
            else:
                leaving.append(state.keys.record_lock(target, event.entity, event.key))
                if route == "single":
                    later.append(d)
        if waiting:
            locks.release(leaving)  # what has ended here is not held through the wait
            leaving.clear()
            batch = _Triaged(items, carried, ledgers, leaving, later, lookup)
            began = time.perf_counter()
            waiting = self._await_parents(target, sink, group, waiting, batch, landings, counts)
            timings["parents_waited_s"] = time.perf_counter() - began
            leaving.extend(
                state.keys.record_lock(target, d.event.entity, d.event.key) for d in waiting
            )
        locks.release(leaving)  # only the records the call carries stay locked through it
        self._wait_for_parents(target, waiting, counts)
        return items

    def _await_parents(
        self,
        target: str,
        sink: BulkSink,
        group: list[Delivery],
        waiting: list[Delivery],
        batch: _Triaged,
        landings: int,
        counts: _Tally,
    ) -> list[Delivery]:
        """Children whose parents are on their way wait for them here, a while (step 5).

        Wakes when a batch of this process lands, else every ``recheck_s``, and reads the
        missing parents' ledgers again; a child whose parent arrived joins the call (after
        the rest, so after any parent it carries). Returns the children still waiting: no
        parent of theirs is on its way, or ``parent_wait_s`` is over.
        """
        began = time.monotonic()
        while waiting:
            elapsed = time.monotonic() - began
            if elapsed >= self.parent_wait_s:
                break
            if not self._on_their_way(target, group, waiting, grace=elapsed < self.start_grace_s):
                # A parent that was on its way when the ledgers were read may have landed
                # since (its ledger is written before its lock and its index entry go):
                # read once more before sending the rest to the delayed set.
                waiting = self._retriage(target, sink, waiting, batch, counts)
                break
            with TURNS.waiting():
                LANDINGS.wait(landings, min(self.recheck_s, self.parent_wait_s - elapsed))
            landings = LANDINGS.count()
            waiting = self._retriage(target, sink, waiting, batch, counts)
        return waiting

    def _retriage(
        self,
        target: str,
        sink: BulkSink,
        waiting: list[Delivery],
        batch: _Triaged,
        counts: _Tally,
    ) -> list[Delivery]:
        """Read the waiting children's parents' ledgers again and triage them once more;
        returns those still waiting."""
        state = self.engine.state
        parents = {(d.event.entity, d.event.parent_key or "") for d in waiting}
        batch.ledgers.update(self._ledgers(target, sorted(parents - batch.carried)))
        still: list[Delivery] = []
        for d in waiting:
            event = d.event
            ledger = batch.ledgers.get((event.entity, event.key))
            route = self._triage(
                target, sink, d, ledger, batch.ledgers, batch.carried, batch.lookup, counts
            )
            if isinstance(route, _Item):
                batch.items.append(route)
                batch.carried.add((event.entity, event.key))
            elif route == "waiting":
                still.append(d)
            else:
                batch.leaving.append(state.keys.record_lock(target, event.entity, event.key))
                if route == "single":
                    batch.later.append(d)
        return still

    def _on_their_way(
        self, target: str, group: list[Delivery], waiting: list[Delivery], *, grace: bool
    ) -> bool:
        """True when a parent some child waits for is being applied by another worker.

        That is: its record is locked by another batch (waiting for its own parents, or in
        its call) or by a single delivery; or, during the grace, a batch on a queue carries
        it (a batch taken a moment before this one, not locked yet). A parent among this
        batch's own waiting children is on its way when theirs are. A parent this batch
        ended otherwise (skipped, dead-lettered, sent down the single path) is not.
        """
        state = self.engine.state
        ours = {(d.event.entity, d.event.key) for d in group}
        outside = sorted(
            {
                (d.event.entity, d.event.parent_key)
                for d in waiting
                if d.event.parent_key is not None
                and (d.event.entity, d.event.parent_key) not in ours
            }
        )
        if not outside:
            return False
        with state.redis.pipeline(transaction=False) as pipe:
            for entity, key in outside:
                pipe.exists(state.keys.record_lock(target, entity, key))
            if any(pipe.execute()):
                return True
        if not grace:
            return False
        return any(BatchStore(state).pending([(target, e, k) for e, k in outside]))

    def _triage(
        self,
        target: str,
        sink: BulkSink,
        d: Delivery,
        ledger: LedgerEntry | None,
        ledgers: Mapping[tuple[str, str], LedgerEntry],
        carried: set[tuple[str, str]],
        lookup: Callable[[str, str], LedgerEntry | None],
        counts: _Tally,
    ) -> _Item | str:
        """The bulk item of a locked delivery, or where it went instead.

        "done" (skipped, dead-lettered or parked here), "waiting" (for its parent) or
        "single" (the sink wants the single path).
        """
        engine, event = self.engine, d.event
        # The delivery's log context is bound only where something is logged on a line of
        # its own (a failure; binding it costs as much as mapping the record): a skip is on
        # the batch's line.
        if ledger is not None and ledger.source_version > event.source_version:
            counts.note(d, engine.skip(d, "stale", bulk=True), "skipped_stale")
            return "done"
        if ledger is not None and ledger.fingerprint == event.fingerprint:
            counts.note(d, engine.skip(d, "unchanged", bulk=True), "skipped_unchanged")
            return "done"
        parent = None
        if event.parent_key and sink.needs_parent(event):
            parent = ledgers.get((event.entity, event.parent_key))
            if parent is None and (event.entity, event.parent_key) not in carried:
                return "waiting"
        context = ApplyContext(ledger=ledger, parent=parent, lookup=lookup)
        try:
            payload = sink.bulk_item(event, context)
        except ValidationError as exc:
            with _bound(d):
                counts.note(d, engine.dead_letter(d, invalid_source_data(event, target, exc)))
            return "done"
        except SyncError as error:
            with _bound(d):
                counts.note_failed(d, engine.fail(d, error), error)
            return "done"
        if payload is None:
            return "single"
        return _Item(d, ledger, payload)

    def _apply(
        self,
        target: str,
        sink: BulkSink,
        items: list[_Item],
        locks: _Locks,
        counts: _Tally,
        timings: dict[str, float],
    ) -> None:
        """The one bulk call, and each item's outcome to its own delivery."""
        engine = self.engine
        deliveries = [i.delivery for i in items]
        engine.forget_before_write([(i.delivery, i.ledger) for i in items])
        began = time.perf_counter()
        retried_here = 0
        try:
            with TURNS.waiting():  # the call, the rate limit and any Retry-After
                while True:
                    try:
                        results = sink.apply_bulk([i.payload for i in items], locks.keepalive)
                        break
                    except SyncError as error:
                        if not self._retry_here(target, deliveries, error, retried_here, locks):
                            raise
                        retried_here += 1
        except SyncError as error:
            engine.guard()
            self._whole_call_failed(target, deliveries, error, counts)
            return
        except LeaseLostError:
            raise  # another worker may hold these records now: write nothing more
        except Exception as exc:  # a bug must not lose the batch: retried, then DLQ
            log.exception("sync.batch_crashed", target=target)
            crashed = TransientError(
                f"{target} bulk call failed unexpectedly ({type(exc).__name__})",
                system=target,
                operation="bulk",
                vendor_code="bulk-crashed",
                hint="an erpsync bug; the worker log has the trace",
            )
            self._whole_call_failed(target, deliveries, crashed, counts)
            return
        finally:
            timings["call_s"] = time.perf_counter() - began  # the rate limit's wait included
        engine.guard()
        if len(results) != len(items):
            misaligned = TransientError(
                f"{target} bulk call answered {len(results)} results for {len(items)} items",
                system=target,
                operation="bulk",
                vendor_code="bulk-misaligned",
            )
            self._whole_call_failed(target, deliveries, misaligned, counts)
            return

        done = [
            (item.delivery, result, item.ledger)
            for item, result in zip(items, results, strict=True)
            if isinstance(result, ApplyResult)
        ]
        if done:
            engine.circuit.success(target)
            for (d, applied, _), outcome in zip(done, engine.applied_many(done), strict=True):
                counts.note(d, outcome, applied.action)
            LANDINGS.landed()  # children waiting in other batches of this process go now
            timings["recorded_s"] = time.perf_counter() - began - timings["call_s"]
        failed = {
            (item.delivery.event.entity, item.delivery.event.key)
            for item, result in zip(items, results, strict=True)
            if not isinstance(result, ApplyResult)
        }
        for item, result in zip(items, results, strict=True):
            if isinstance(result, ApplyResult):
                continue
            d = item.delivery
            event = d.event
            with _bound(d):
                if isinstance(result, ValidationError):
                    invalid = invalid_source_data(event, target, result)
                    counts.note(d, engine.dead_letter(d, invalid))
                elif event.parent_key is not None and (event.entity, event.parent_key) in failed:
                    # Its parent was refused in this very call: wait for the parent.
                    waits = missing_parent(event, target)
                    counts.note_failed(d, engine.fail(d, waits), waits)
                elif isinstance(result, ConflictError):
                    # The single path knows how to recover (create ↔ update).
                    engine.park(d, engine.policy.busy_delay_s * (1 + engine.rng.random()))
                    counts.note(d, "parked", "parked_conflict")
                    log.info("sync.bulk_conflict", code=result.code, error=str(result))
                else:
                    counts.note_failed(d, engine.fail(d, result), result)

    def _retry_here(
        self,
        target: str,
        deliveries: list[Delivery],
        error: SyncError,
        retried: int,
        locks: _Locks,
    ) -> bool:
        """Retry a rate-limited call in place once its ``Retry-After`` is over; True if so.

        Only a short wait (at most :data:`RETRY_HERE_MAX_S`, a few times): the batch keeps
        its place, its locks and its size, so the children waiting for its records keep
        waiting for it instead of each going to the delayed set (a batch parked after one
        429 sent its children down as dozens of small calls, each a request of the limit).
        The attempt is counted per delivery and the failure by the circuit, as for a parked
        retry; one that would spend a budget or open the circuit is parked as before.
        """
        engine = self.engine
        wait = error.retry_after_s
        if (
            retried >= RETRIES_HERE
            or not isinstance(error, TransientError)
            or wait is None
            or wait > RETRY_HERE_MAX_S
            or any(d.attempt + 1 >= engine.policy.transient_max_attempts for d in deliveries)
        ):
            return False
        circuit = engine.circuit.status(target)
        if circuit.state != "closed" or circuit.failures + 1 >= engine.circuit.failure_threshold:
            return False
        now = engine.clock()
        engine.circuit.failure(target, str(error), now=now)
        for d in deliveries:
            d.attempt += 1
            d.first_failure_at = d.first_failure_at or datetime.fromtimestamp(now, UTC)
            d.last_error = error.to_dict()
        engine.state.incr(target, "retries", len(deliveries))
        for d in deliveries:
            engine.notify("retry", d, code=error.code, delay_s=wait)
        log.info("sync.batch_retry_here", target=target, delay_s=wait, count=len(deliveries),
                 error=str(error), keys=[d.event.key for d in deliveries])  # fmt: skip
        time.sleep(wait)
        locks.keepalive()
        return True

    # -- parking -------------------------------------------------------------------------
    def _park_batch(self, target: str, deliveries: Sequence[Delivery], delay_s: float) -> None:
        engine = self.engine
        due_at = engine.clock() + delay_s
        ref = BatchStore(engine.state).put(deliveries, parked=True)
        engine.state.schedule(batch_member(target, ref), due_at)
        # Their leases run from when the batch is due, as a parked single delivery's do: a
        # batch parked longer than the lease is not taken for lost (see workers.pump).
        engine.state.touch(((d.target, d.delivery_id) for d in deliveries), now=due_at)

    def _wait_for_parents(self, target: str, waiting: list[Delivery], counts: _Tally) -> None:
        """Children whose parent is not in the target yet wait, and come back as one batch.

        Even a lone child waits as a batch: in a load it then still arrives in a bulk call
        (as many requests as a single create, and the single path stays for retries).
        """
        engine = self.engine
        if not waiting:
            return
        now = engine.clock()
        keep: list[Delivery] = []
        for d in waiting:
            error = missing_parent(d.event, target)
            d.first_failure_at = d.first_failure_at or datetime.fromtimestamp(now, UTC)
            d.last_error = error.to_dict()
            d.dependency_waits += 1
            with _bound(d):
                if d.dependency_waits > engine.policy.dependency_max_waits:
                    counts.note(d, engine.dead_letter(d, error))
                    continue
            keep.append(d)
        if not keep:
            return
        delay = engine.policy.dependency_delay(
            min(d.dependency_waits for d in keep) - 1, engine.rng
        )
        engine.state.incr(target, "dependency_waits", len(keep))
        self._park_batch(target, keep, delay)
        for d in keep:
            engine.notify("dependency_wait", d, code="parent-not-synced", delay_s=delay)
        counts.note_all(keep, "parked", "parked_dependency")
        log.info("sync.batch_waiting_parents", target=target, count=len(keep), delay_s=delay,
                 keys=[d.event.key for d in keep])  # fmt: skip

    def _whole_call_failed(
        self, target: str, deliveries: list[Delivery], error: SyncError, counts: _Tally
    ) -> None:
        engine = self.engine
        now = engine.clock()
        for d in deliveries:
            d.first_failure_at = d.first_failure_at or datetime.fromtimestamp(now, UTC)
            d.last_error = error.to_dict()
        kind = error.error_class
        if isinstance(error, AuthError) or kind is ErrorClass.AUTH:
            opened = engine.circuit.failure(target, str(error), immediate=True, now=now)
            engine.state.incr(target, "auth_failures")
            wait = max(1.0, engine.circuit.status(target).until - now)
            self._park_batch(target, deliveries, wait + engine.rng.uniform(0, 1))
            what = "circuit_opened" if opened else "auth_failed"
            for d in deliveries:
                engine.notify(what, d, code=error.code)
            counts.note_all(deliveries, "parked", "parked_auth")
            log.warning(f"sync.batch_{what}", target=target, error=str(error),
                        keys=[d.event.key for d in deliveries])  # fmt: skip
            return
        if isinstance(error, TransientError) or kind is ErrorClass.TRANSIENT:
            engine.circuit.failure(target, str(error), now=now)
            keep: list[Delivery] = []
            for d in deliveries:
                d.attempt += 1
                if d.attempt >= engine.policy.transient_max_attempts:
                    with _bound(d):
                        counts.note(d, engine.dead_letter(d, error))
                else:
                    keep.append(d)
            if not keep:
                return
            attempt = max(d.attempt for d in keep)
            delay = engine.policy.transient_delay(attempt, error.retry_after_s, engine.rng)
            engine.state.incr(target, "retries", len(keep))
            self._park_batch(target, keep, delay)
            for d in keep:
                engine.notify("retry", d, code=error.code, delay_s=delay)
            counts.note_all(keep, "parked", "parked_transient")
            log.info("sync.batch_retry_scheduled", target=target, delay_s=round(delay, 2),
                     count=len(keep), error=str(error),
                     keys=[d.event.key for d in keep])  # fmt: skip
            return
        if isinstance(error, DependencyError) or kind is ErrorClass.DEPENDENCY:
            for d in deliveries:
                with _bound(d):
                    counts.note_failed(d, engine.fail(d, error), error)
            return
        # The request itself was refused (a schema error, a payload too large...): nothing
        # says which record is at fault, so each takes the single path and a bad one
        # dead-letters alone while the rest arrive.
        for d in deliveries:
            engine.park(d, engine.rng.uniform(0, engine.policy.busy_delay_s))
        engine.state.incr(target, "bulk_refused")
        counts.note_all(deliveries, "parked", "parked_refused")
        log.warning("sync.batch_refused", target=target, count=len(deliveries), error=str(error),
                    keys=[d.event.key for d in deliveries])  # fmt: skip

    # -- state ---------------------------------------------------------------------------
    def _ledgers(
        self, target: str, records: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], LedgerEntry]:
        """The ledger entries of these records in one round trip."""
        state = self.engine.state
        if not records:
            return {}
        keys = [state.keys.ledger(target, entity, key) for entity, key in records]
        raw: list[list[str]] = self._read_ledgers(keys=keys)
        return {
            record: LedgerEntry.from_mapping(dict(zip(flat[::2], flat[1::2], strict=True)))
            for record, flat in zip(records, raw, strict=True)
            if flat
        }

    @functools.cached_property
    def _read_ledgers(self) -> Script:
        """Every ledger named as a key, each as HGETALL returns it (one command; a pipeline
        of one HGETALL a record cost more CPU to pack and parse than the records' mapping)."""
        return self.engine.state.redis.register_script(_READ_LEDGERS)
