"""The pipeline's steps for a batch: what differs when one bulk call carries many records.

- **lock**: a replay, a forced repair, a second change of a key and an entity the sink does
  not take go the single path once the batch's locks are given back (they never ride in
  bulk);
- **parents**: a child whose parent is neither applied nor earlier in the call waits for
  it here while the parent is on its way (its record locked by another batch or delivery
  applying it now, or stored in a batch not yet started), woken as soon as a batch of this
  process lands (else every ``recheck_s``), at most ``parent_wait_s``; then (or when no
  parent is coming) the waiting children wait together (a dependency wait) and come back
  as one batch;
- **apply**: the sink maps each record (``bulk_item``; None: the single path, after the
  call), then ONE call; a call refused for the target's rate limit with a short
  ``Retry-After`` is made again in place (a few times);
- **record**: each per-record result goes to its own delivery (a child whose parent failed
  in the same call waits for it; a conflict goes the single path, which recovers it); a
  failure of the whole call is handled for all its deliveries at once by its class, except
  a refused request (nothing says which record is at fault): each takes the single path,
  so a bad record dead-letters alone and the rest arrive.

Waiting for a parent in the worker rather than in the delayed set matters for loads: the
producer cuts a large poll into batches flush by flush, so a child's parent is often in an
earlier batch that a concurrent worker thread is still applying. Parked, the child would
come back behind the whole backlog, and its batch would go out as a second, smaller call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import structlog
from pydantic import ValidationError

from delivery.pipeline.contract import (
    ApplyContext,
    ApplyResult,
    BulkItemResult,
    BulkSink,
    invalid_source_data,
    missing_parent,
)
from delivery.pipeline.hooks import calling
from delivery.pipeline.outcomes import bound
from delivery.pipeline.records import ManyRecords
from delivery.pipeline.steps import Elsewhere, Pipeline, Ready, Run, RunGroup
from erpsync.errors import (
    AuthError,
    ConflictError,
    DependencyError,
    ErrorClass,
    SyncError,
    TransientError,
)
from erpsync.events import Delivery
from state.leases import LeaseLostError
from state.store import LedgerEntry

if TYPE_CHECKING:
    from delivery.engine import Engine

log = structlog.get_logger("erpsync.worker")

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
#: a bulk call answered 429 with at most this ``Retry-After`` is retried in place, seconds
RETRY_HERE_MAX_S = 2.0
#: how many times in a row, at most (then the batch is parked as any transient failure)
RETRIES_HERE = 3


@dataclass
class BulkRun(Run):
    """A batch's run: what its steps found so far."""

    carried: set[tuple[str, str]] = field(default_factory=set)
    items: list[Ready] = field(default_factory=list)
    #: where the batch's time went, for its log line
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def bulk_sink(self) -> BulkSink:
        return cast(BulkSink, self.sink)


class Bulk(Pipeline):
    """The pipeline for batches (one bulk call per run)."""

    def __init__(
        self,
        engine: Engine,
        parent_wait_s: float = PARENT_WAIT_S,
        recheck_s: float = PARENT_RECHECK_S,
        start_grace_s: float = PARENT_START_GRACE_S,
    ) -> None:
        super().__init__(engine)
        self.parent_wait_s = parent_wait_s
        self.recheck_s = recheck_s
        self.start_grace_s = start_grace_s

    def pending(self, records: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Per (target, entity, key): True while a batch on a queue carries the record
        (none here: a batch store says, see ``delivery.batch.BatchApplier``)."""
        return [False] * len(records)

    def run_batch(self, target: str, sink: BulkSink, group: list[Delivery]) -> BulkRun:
        """Steps 1 to 8 for a batch of ``target``'s deliveries; returns the run (its
        ``later``: what goes the single path now)."""
        engine = self.engine
        records = ManyRecords(
            engine.state, target, group, engine.policy.lock_ttl_s, leased=engine.leases is not None
        )
        run = BulkRun(target, sink, list(group), records, bulk=True, park_batch=self.park_batch)
        self.run(run)
        return run

    def park_batch(self, deliveries: Sequence[Delivery], delay_s: float) -> None:
        """Put a batch's deliveries in the delayed set as one batch (each alone here)."""
        for delivery in deliveries:
            self.engine.park(delivery, delay_s)

    def working(self, run: Run) -> AbstractContextManager[None]:
        return self.engine.cpu_slots.held()

    def closed(self, run: Run) -> None:
        self.engine.landed.bump()

    def candidates(self, run: Run) -> list[Delivery]:
        """The deliveries the call may carry; the rest go the single path afterwards."""
        seen: set[tuple[str, str]] = set()
        found: list[Delivery] = []
        for d in run.deliveries:
            event = d.event
            record = (event.entity, event.key)
            if (
                d.replay_of is not None
                or d.force
                or record in seen
                or not run.sink.handles(event.entity)
            ):
                run.later.append(d)
                continue
            seen.add(record)
            found.append(d)
        return found

    # -- filter, parents and mapping ----------------------------------------------------
    def locked(self, run: Run, locked: list[Delivery]) -> None:
        """Steps 4 to 7 for a batch's locked deliveries."""
        if not isinstance(run, BulkRun):
            raise TypeError("a bulk pipeline runs batches (BulkRun)")
        records = cast(ManyRecords, run.records)
        since = self.engine.landed.count()  # before any ledger is read: no landing unseen
        wanted = {(d.event.entity, d.event.key) for d in locked}
        wanted |= {r for d in locked if (r := d.event.parent_record) is not None}
        records.read(sorted(wanted))
        waiting, leaving = self.sort(run, locked)
        if waiting:
            records.release(leaving)  # what has ended here is not held through the wait
            leaving = []
            began = time.perf_counter()
            waiting = self.await_parents(run, waiting, since, leaving)
            run.timings["parents_waited_s"] = time.perf_counter() - began
            leaving.extend(waiting)
        records.release(leaving)  # only the records the call carries stay locked through it
        if waiting:
            failures = [(d, missing_parent(d.event, run.target)) for d in waiting]
            self.engine.fail_together(RunGroup(run, self.engine), failures)
        run.timings["admitted_s"] = time.perf_counter() - run.started
        if run.items:
            self.call(run)

    def sort(
        self, run: BulkRun, deliveries: list[Delivery]
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Triage and map each delivery in order: (waiting for a parent, no longer carried).

        Those carried join ``run.items`` (a parent before its children); those for the
        single path join ``run.later``.
        """
        waiting: list[Delivery] = []
        leaving: list[Delivery] = []
        for d in deliveries:
            event = d.event
            ready = self.triage(run, d, run.records.ledger(event.entity, event.key), run.carried)
            if isinstance(ready, Ready):
                ready = self.mapped(run, ready)
            if isinstance(ready, Ready):
                run.items.append(ready)
                run.carried.add((event.entity, event.key))
            elif ready == "waiting":
                waiting.append(d)  # keeps its lock while it waits here
            else:
                leaving.append(d)
                if ready == "single":
                    run.later.append(d)
        return waiting, leaving

    def mapped(self, run: BulkRun, ready: Ready) -> Ready | Elsewhere:
        """What the call carries for a ready delivery: "single" (the sink wants the single
        path) or "done" (the record cannot be mapped: dead-lettered, or refused: failed)."""
        engine, d = self.engine, ready.delivery
        context = ApplyContext(ledger=ready.ledger, parent=ready.parent, lookup=self.lookup(run))
        try:
            ready.payload = run.bulk_sink.bulk_item(d.event, context)
        except ValidationError as exc:
            with bound(d):
                engine.dead_letter(d, invalid_source_data(d.event, run.target, exc))
            return "done"
        except SyncError as error:
            with bound(d):
                engine.fail(d, error)
            return "done"
        return "single" if ready.payload is None else ready

    def lookup(self, run: Run) -> Callable[[str, str], LedgerEntry | None]:
        state, target = self.engine.state, run.target
        return lambda entity, key: state.ledger_get(target, entity, key)

    # -- parents on their way -------------------------------------------------------------
    def await_parents(
        self, run: BulkRun, waiting: list[Delivery], since: int, leaving: list[Delivery]
    ) -> list[Delivery]:
        """Children whose parents are on their way wait for them here, a while.

        Wakes when a batch of this process lands, else every ``recheck_s``, and reads the
        missing parents' ledgers again; a child whose parent arrived joins the call (after
        the rest, so after any parent it carries). Returns the children still waiting: no
        parent of theirs is on its way, or ``parent_wait_s`` is over.
        """
        landed = self.engine.landed
        began = time.monotonic()
        while waiting:
            elapsed = time.monotonic() - began
            if elapsed >= self.parent_wait_s:
                break
            if not self._on_their_way(run, waiting, grace=elapsed < self.start_grace_s):
                # A parent that was on its way when the ledgers were read may have landed
                # since (its ledger is written before its lock and its index entry go):
                # read once more before sending the rest to the delayed set.
                return self.again(run, waiting, leaving)
            with self.engine.cpu_slots.released():
                landed.wait(since, min(self.recheck_s, self.parent_wait_s - elapsed))
            since = landed.count()
            waiting = self.again(run, waiting, leaving)
        return waiting

    def again(
        self, run: BulkRun, waiting: list[Delivery], leaving: list[Delivery]
    ) -> list[Delivery]:
        """Read the waiting children's parents' ledgers again and triage them once more;
        returns those still waiting."""
        parents = {r for d in waiting if (r := d.event.parent_record) is not None}
        cast(ManyRecords, run.records).read(sorted(parents - run.carried))
        still, gone = self.sort(run, waiting)
        leaving.extend(gone)
        return still

    def _on_their_way(self, run: BulkRun, waiting: list[Delivery], *, grace: bool) -> bool:
        """True when a parent some child waits for is being applied by another worker.

        That is: its record is locked by another batch (waiting for its own parents, or in
        its call) or by a single delivery; or, during the grace, a batch on a queue carries
        it (a batch taken a moment before this one, not locked yet). A parent among this
        batch's own waiting children is on its way when theirs are. A parent this batch
        ended otherwise (skipped, dead-lettered, sent down the single path) is not.
        """
        ours = {(d.event.entity, d.event.key) for d in run.deliveries}
        outside = sorted(
            {r for d in waiting if (r := d.event.parent_record) is not None and r not in ours}
        )
        if not outside:
            return False
        if self.engine.records.any_locked(run.target, outside):
            return True
        if not grace:
            return False
        return any(self.pending([(run.target, e, k) for e, k in outside]))

    # -- the call -----------------------------------------------------------------------
    def call(self, run: BulkRun) -> None:
        """The one bulk call, and each item's outcome to its own delivery."""
        engine, items = self.engine, run.items
        deliveries = [i.delivery for i in items]
        engine.forget_before_write([(i.delivery, i.ledger) for i in items])
        began = time.perf_counter()
        failed = True
        try:
            results = self.send(run, deliveries)
            failed = False
        except SyncError as error:
            engine.guard()
            self.call_failed(run, deliveries, error)
            return
        except LeaseLostError:
            raise  # another worker may hold these records now: write nothing more
        except Exception as exc:  # a bug must not lose the batch: retried, then DLQ
            log.exception("sync.batch_crashed", target=run.target)
            crashed = TransientError(
                f"{run.target} bulk call failed unexpectedly ({type(exc).__name__})",
                system=run.target,
                operation="bulk",
                vendor_code="bulk-crashed",
                hint="an erpsync bug; the worker log has the trace",
            )
            self.call_failed(run, deliveries, crashed)
            return
        finally:
            run.timings["call_s"] = time.perf_counter() - began  # the rate limit's wait included
            engine.hooks.after_call(run.target, deliveries, run.timings["call_s"], failed)
        engine.guard()
        if len(results) != len(items):
            misaligned = TransientError(
                f"{run.target} bulk call answered {len(results)} results for {len(items)} items",
                system=run.target,
                operation="bulk",
                vendor_code="bulk-misaligned",
            )
            self.call_failed(run, deliveries, misaligned)
            return
        self.record(run, results, began)

    def send(self, run: BulkRun, deliveries: list[Delivery]) -> list[BulkItemResult]:
        """The call, made again in place after a short ``Retry-After`` (see
        :meth:`retry_here`); its slot given up meanwhile (the call, the rate limit)."""
        engine, records = self.engine, cast(ManyRecords, run.records)

        def keepalive() -> None:
            if engine.leases is not None:
                engine.guard()
            else:
                records.keepalive()

        retried = 0
        with engine.cpu_slots.released(), calling(engine.hooks, deliveries, bulk=True):
            while True:
                try:
                    return run.bulk_sink.apply_bulk([i.payload for i in run.items], keepalive)
                except SyncError as error:
                    if not self.retry_here(run, deliveries, error, retried, keepalive):
                        raise
                    retried += 1

    def record(self, run: BulkRun, results: list[BulkItemResult], began: float) -> None:
        """Step 7: each item's result to its own delivery."""
        engine, target = self.engine, run.target
        pairs = list(zip(run.items, results, strict=True))
        done = [(i.delivery, r, i.ledger) for i, r in pairs if isinstance(r, ApplyResult)]
        if done:
            engine.circuit.success(target)
            engine.applied_many(done)
            engine.landed.bump()  # children waiting in other batches of this process go now
            run.timings["recorded_s"] = time.perf_counter() - began - run.timings["call_s"]
        failed = {
            (i.delivery.event.entity, i.delivery.event.key)
            for i, r in pairs
            if not isinstance(r, ApplyResult)
        }
        for item, result in pairs:
            if isinstance(result, ApplyResult):
                continue
            d = item.delivery
            event = d.event
            with bound(d):
                if isinstance(result, ValidationError):
                    engine.dead_letter(d, invalid_source_data(event, target, result))
                elif event.parent_record is not None and event.parent_record in failed:
                    # Its parent was refused in this very call: wait for the parent.
                    engine.fail(d, missing_parent(event, target))
                elif isinstance(result, ConflictError):
                    # The single path knows how to recover (create ↔ update).
                    engine.park(d, engine.policy.busy_delay_s * (1 + engine.rng.random()))
                    engine.notify("parked_conflict", d, code=result.code)
                    log.info("sync.bulk_conflict", code=result.code, error=str(result))
                else:
                    engine.fail(d, result)

    def retry_here(
        self,
        run: BulkRun,
        deliveries: list[Delivery],
        error: SyncError,
        retried: int,
        keepalive: Callable[[], None],
    ) -> bool:
        """Retry a rate-limited call in place once its ``Retry-After`` is over; True if so.

        Only a short wait (at most :data:`RETRY_HERE_MAX_S`, a few times): the batch keeps
        its place, its locks and its size, so the children waiting for its records keep
        waiting for it instead of each going to the delayed set (a batch parked after one
        429 sent its children down as dozens of small calls, each a request of the limit).
        The attempt is counted per delivery and the failure by the circuit, as for a parked
        retry; one that would spend a budget or open the circuit is parked as before.
        """
        engine, target = self.engine, run.target
        wait = error.retry_after_s
        if (
            retried >= RETRIES_HERE
            or not isinstance(error, TransientError)
            or wait is None
            or wait > RETRY_HERE_MAX_S
            or any(engine.policy.last_try(d, error) for d in deliveries)
        ):
            return False
        circuit = engine.circuit.status(target)
        if circuit.state != "closed" or circuit.failures + 1 >= engine.circuit.failure_threshold:
            return False
        now = engine.clock()
        engine.circuit.failure(target, str(error), now=now)
        for d in deliveries:
            engine.policy.count_transient(d, error)
            d.first_failure_at = d.first_failure_at or datetime.fromtimestamp(now, UTC)
            d.last_error = error.to_dict()
        engine.state.incr(target, "retries", len(deliveries))
        for d in deliveries:
            engine.notify("retry", d, final=False, code=error.code, delay_s=wait)
        log.info("sync.batch_retry_here", target=target, delay_s=wait, count=len(deliveries),
                 error=str(error), keys=[d.event.key for d in deliveries])  # fmt: skip
        time.sleep(wait)
        keepalive()
        return True

    def call_failed(self, run: BulkRun, deliveries: list[Delivery], error: SyncError) -> None:
        """The call as a whole failed: authentication and transient errors are handled for
        the batch at once; a dependency for each delivery alone; a refused request sends
        each down the single path."""
        engine = self.engine
        kind = error.error_class
        if (
            isinstance(error, AuthError | TransientError)
            or kind is ErrorClass.AUTH
            or kind is ErrorClass.TRANSIENT
        ):
            engine.fail_together(RunGroup(run, engine), [(d, error) for d in deliveries])
            return
        if isinstance(error, DependencyError) or kind is ErrorClass.DEPENDENCY:
            for d in deliveries:
                with bound(d):
                    engine.fail(d, error)
            return
        # The request itself was refused (a schema error, a payload too large...): nothing
        # says which record is at fault, so each takes the single path and a bad one
        # dead-letters alone while the rest arrive.
        now = engine.clock()
        for d in deliveries:
            d.first_failure_at = d.first_failure_at or datetime.fromtimestamp(now, UTC)
            d.last_error = error.to_dict()
            engine.park(d, engine.rng.uniform(0, engine.policy.busy_delay_s))
        engine.state.incr(run.target, "bulk_refused")
        for d in deliveries:
            engine.notify("parked_refused", d, code=error.code)
        log.warning("sync.batch_refused", target=run.target, count=len(deliveries),
                    error=str(error), keys=[d.event.key for d in deliveries])  # fmt: skip
