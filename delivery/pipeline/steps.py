"""The pipeline: the ordered steps that take a run (one delivery, or a batch of one
target's) to its outcomes. Both paths run them; a single delivery is a batch of one.

1. **open**    mark the deliveries in flight, read the target's circuit;
2. **admit**   circuit open or target paused → every delivery parked (one probe admitted);
3. **lock**    record locked by another worker → that delivery parked alone (busy);
4. **filter**  ledger newer than the event → skipped (stale); same fingerprint → skipped
               (unchanged) unless forced (a reconcile's repair); a replay of a superseded
               change → skipped (superseded);
5. **parents** parent neither in the target nor earlier in the same call → the delivery
               waits (a dependency wait; a batch first waits a moment in the worker for
               parents on their way, see :mod:`delivery.pipeline.bulk`);
6. **apply**   one call (``Sink.apply``) or one bulk call (``BulkSink.apply_bulk``);
7. **record**  each delivery's outcome: applied (ledger written), or its failure handled by
               class (:meth:`Outcomes.fail_together`);
8. **close**   locks and in-flight marks given back, the circuit's probe handed on.

Every outcome and wait is told to the hooks (:mod:`delivery.pipeline.hooks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import ValidationError

from delivery.pipeline.contract import (
    LOG_FIELDS,
    ApplyContext,
    Result,
    Sink,
    invalid_source_data,
    log_context,
    missing_parent,
)
from delivery.pipeline.hooks import Hooks, Middleware, RecordEvent, calling
from delivery.pipeline.records import ManyRecords, OneRecord
from erpsync.errors import PermanentError, SyncError
from erpsync.events import Delivery
from state.store import LedgerEntry

if TYPE_CHECKING:
    from delivery.engine import Engine

log = structlog.get_logger("erpsync.worker")

Records = OneRecord | ManyRecords
#: where a delivery went in the filter and parent steps, when not on to the call
Elsewhere = Literal["done", "waiting", "single"]


@dataclass
class Ready:
    """A locked delivery that passed the filter and parent steps."""

    delivery: Delivery
    ledger: LedgerEntry | None
    parent: LedgerEntry | None
    #: what the bulk call carries for it (bulk runs)
    payload: Any = None


@dataclass
class Run:
    """Deliveries of one target taken through the pipeline together."""

    target: str
    sink: Sink
    deliveries: list[Delivery]
    records: Records
    #: one bulk call (a batch); False: one call for one delivery
    bulk: bool = False
    #: for a bulk run: puts deliveries in the delayed set as one batch
    park_batch: Callable[[Sequence[Delivery], float], None] | None = None
    #: deliveries that take the single path once this run's locks are given back
    later: list[Delivery] = field(default_factory=list)
    #: False once the circuit parked the whole run (step 2)
    admitted: bool = True

    def park_all(self, deliveries: Sequence[Delivery], delay_s: float, engine: Engine) -> None:
        """Park deliveries of this run together: a batch as one batch, else each alone."""
        if self.park_batch is not None:
            self.park_batch(deliveries, delay_s)
        else:
            for delivery in deliveries:
                engine.park(delivery, delay_s)


@dataclass
class RunGroup:
    """A run as the group whose failures :meth:`Outcomes.fail_together` handles."""

    run: Run
    engine: Engine

    @property
    def target(self) -> str:
        return self.run.target

    @property
    def bulk(self) -> bool:
        return self.run.bulk

    def park_all(self, deliveries: Sequence[Delivery], delay_s: float) -> None:
        self.run.park_all(deliveries, delay_s, self.engine)


class _Outcome(Middleware):
    """The result of the one delivery of a single run."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.result: Result | None = None

    def on_record(self, event: RecordEvent) -> None:
        if event.final and event.delivery is self.delivery:
            self.result = event.result


class Pipeline:
    """Runs the steps for an engine's runs (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- the single path: a batch of one --------------------------------------------------
    def one(self, delivery: Delivery) -> Result:
        """Take one delivery to its outcome; returns its result."""
        engine = self.engine
        structlog.contextvars.bind_contextvars(**log_context(delivery))
        try:
            event, target = delivery.event, delivery.target
            sink = engine.sinks().get(target)
            if sink is None or not sink.handles(event.entity):
                error = PermanentError(
                    f"no sink applies {event.entity} to {target}",
                    system=target,
                    operation="route",
                    hint="the flow names a target that is not configured for this entity",
                )
                return engine.dead_letter(delivery, error)
            records = OneRecord(engine.state, delivery, engine.policy.lock_ttl_s)
            outcome = _Outcome(delivery)
            with Hooks.listening(outcome):
                self.run(Run(target, sink, [delivery], records))
            if outcome.result is None:  # every step ends in an outcome or raises
                raise RuntimeError(f"delivery {delivery.delivery_id} ended without an outcome")
            return outcome.result
        finally:
            structlog.contextvars.unbind_contextvars(*LOG_FIELDS)

    # -- the steps ------------------------------------------------------------------------
    def run(self, run: Run) -> None:
        """Steps 1 to 8 for a run (a bulk run: see :class:`delivery.pipeline.bulk.Bulk`)."""
        engine, records = self.engine, run.records
        records.open(engine.clock())
        probe: float | None = None
        try:
            wait, probe = self.admit(run.target, records.circuit_state)
            if wait > 0:
                self.park_circuit(run, wait)
                return
            leased = engine.holding(
                records.held, [(run.target, d.delivery_id) for d in run.deliveries]
            )
            with self.working(run), leased:
                self.locked(run, self.lock(run, self.candidates(run)))
        finally:
            records.close()
            if probe is not None:  # the run was the half-open circuit's probe
                engine.circuit.end_probe(run.target, probe, now=engine.clock())
            self.closed(run)

    def working(self, run: Run) -> AbstractContextManager[None]:
        """Around the run's own work (a bulk run: its CPU slot)."""
        return nullcontext()

    def closed(self, run: Run) -> None:
        """After the run gave its records back."""

    def admit(self, target: str, circuit_state: str | None) -> tuple[float, float | None]:
        """Step 2: (seconds to wait, 0: go; the probe's lease when this run is the probe)."""
        if circuit_state in (None, "closed"):
            return 0.0, None
        engine = self.engine
        return engine.circuit.admit_lease(target, now=engine.clock())

    def park_circuit(self, run: Run, wait: float) -> None:
        """Step 2's park: every delivery waits for the circuit, with a little jitter."""
        engine, deliveries = self.engine, run.deliveries
        run.admitted = False
        engine.state.incr(run.target, "parked_circuit", len(deliveries))
        run.park_all(deliveries, wait + engine.rng.uniform(0, min(5.0, wait / 4 + 0.5)), engine)
        if run.bulk:
            log.info("sync.batch_parked_circuit", target=run.target, count=len(deliveries),
                     wait_s=round(wait, 2), keys=[d.event.key for d in deliveries])  # fmt: skip
        else:
            log.debug("sync.parked_circuit", wait_s=round(wait, 2))
        for delivery in deliveries:
            engine.notify("parked_circuit", delivery, wait_s=wait)

    def candidates(self, run: Run) -> list[Delivery]:
        """The deliveries the run locks (a bulk run sends some down the single path)."""
        return run.deliveries

    def lock(self, run: Run, candidates: list[Delivery]) -> list[Delivery]:
        """Step 3: the deliveries whose records are locked now; the others are parked alone
        (busy), to be tried again in a moment."""
        engine = self.engine
        locked: list[Delivery] = []
        for delivery, taken in zip(candidates, run.records.lock(candidates), strict=True):
            if taken:
                locked.append(delivery)
                continue
            engine.state.incr(run.target, "parked_busy")
            engine.park(delivery, engine.policy.busy_delay_s * (1 + engine.rng.random()))
            engine.notify("parked_busy", delivery)
        return locked

    def locked(self, run: Run, locked: list[Delivery]) -> None:
        """Steps 4 to 7 for the single path's one delivery."""
        for delivery in locked:
            event = delivery.event
            ready = self.triage(run, delivery, run.records.ledger(event.entity, event.key), set())
            if ready == "waiting":
                self.engine.fail(delivery, missing_parent(event, run.target))
            elif isinstance(ready, Ready):
                self.apply_one(run, ready)

    def triage(
        self,
        run: Run,
        delivery: Delivery,
        ledger: LedgerEntry | None,
        carried: set[tuple[str, str]],
    ) -> Ready | Elsewhere:
        """Steps 4 and 5 for one locked delivery: skipped ("done"), "waiting" for its
        parent, or ready. ``carried``: records earlier in the same bulk call."""
        engine, event = self.engine, delivery.event
        why = skip_reason(delivery, ledger)
        if why is None and delivery.replay_of is not None:
            latest = engine.state.latest(event.source, event.entity, event.key)
            if latest is not None and latest > event.source_version:
                why = "superseded"
        if why is not None:
            engine.skip(delivery, why, bulk=run.bulk)
            return "done"
        parent = None
        record = event.parent_record
        if record is not None and record[1] and run.sink.needs_parent(event):
            parent = run.records.ledger(*record)
            if parent is None and record not in carried:
                return "waiting"
        return Ready(delivery, ledger, parent)

    def apply_one(self, run: Run, ready: Ready) -> None:
        """Steps 6 and 7 for one delivery: the sink's call, and its outcome."""
        engine, delivery = self.engine, ready.delivery
        event, target = delivery.event, run.target
        context = self.context(run, ready)
        engine.forget_before_write([(delivery, ready.ledger)])
        try:
            with calling(engine.hooks, run.deliveries, bulk=False):
                result = run.sink.apply(event, context)
        except SyncError as error:
            engine.guard()
            engine.fail(delivery, error)
            return
        except ValidationError as exc:
            engine.guard()
            engine.dead_letter(delivery, invalid_source_data(event, target, exc))
            return
        engine.guard()
        # The circuit's success, the ledger, the outcome, then the lock's release and the
        # in-flight mark's removal: one round trip (in this order on the server).
        records = run.records
        with engine.state.pipeline() as pipe:
            engine.circuit.success(target, client=pipe)
            engine.queue_applied(pipe, delivery, result, ready.ledger)
            if isinstance(records, OneRecord):
                records.end_on(pipe)
            pipe.execute()
        engine.after_applied(delivery, result)

    def context(self, run: Run, ready: Ready) -> ApplyContext:
        """What the sink may know when applying one delivery on its own."""
        engine, delivery = self.engine, ready.delivery
        event, target = delivery.event, run.target
        state = engine.state

        def lookup(entity: str, key: str) -> LedgerEntry | None:
            return state.ledger_get(target, entity, key)

        def checkpoint(extra: str) -> None:
            engine.records.checkpoint(target, event.entity, event.key, extra)

        lock_key = state.keys.record_lock(target, event.entity, event.key)
        token = run.records.held.get(lock_key)

        def create_in_doubt(window_s: float) -> AbstractContextManager[None]:
            if engine.leases is None or token is None:
                return nullcontext()
            marker = state.keys.create_in_doubt(target, event.entity, event.key)
            return engine.leases.create_in_doubt(lock_key, marker, token, window_s)

        return ApplyContext(
            ledger=ready.ledger,
            parent=ready.parent,
            lookup=lookup,
            checkpoint=checkpoint,
            create_in_doubt=create_in_doubt,
            forced=delivery.force,
            claim=lambda entity, target_id: state.claim_target_id(
                target, entity, target_id, event.key
            ),
        )


def skip_reason(delivery: Delivery, ledger: LedgerEntry | None) -> str | None:
    """Why the ledger makes this delivery needless, if it does: "stale" (the target has a
    newer version: an out-of-order delivery) or "unchanged" (it has this content: a
    duplicate), unless the delivery is forced (a reconcile's repair)."""
    event = delivery.event
    if ledger is None:
        return None
    if ledger.source_version > event.source_version:
        return "stale"
    if ledger.fingerprint == event.fingerprint and not delivery.force:
        return "unchanged"
    return None
