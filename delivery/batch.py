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
(:meth:`state.store.State.record_outcome`), so a batch message delivered twice changes
nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from delivery.pipeline.bulk import Bulk
from delivery.pipeline.contract import BulkItemResult, BulkSink
from delivery.pipeline.hooks import Hooks, Tally
from erpsync.events import ChangeEvent, Delivery
from erpsync.settings import Settings
from state.batches import BatchStore, batch_member

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
        # batch parked longer than the lease is not taken for lost (see state.pump).
        engine.state.touch(((d.target, d.delivery_id) for d in deliveries), now=due_at)
