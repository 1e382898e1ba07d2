"""Apply one delivery (one change for one target) with every guarantee DESIGN.md names.

Every delivery ends in exactly one of **applied**, **skipped** or **dead-lettered**, or is
parked in the delayed set to be tried again later (retry, dependency wait, busy record,
open circuit): nothing is dropped silently. The decision tree, in order:

1. circuit open or target paused  → park until the circuit lets a probe through;
2. record locked by another worker → park a moment (per-key serialisation);
3. ledger newer than the event      → skipped (stale: out-of-order delivery);
   ledger has this fingerprint      → skipped (already applied: duplicate delivery),
                                      unless the delivery is forced (a reconcile's repair);
   a replay of a superseded change  → skipped (a newer change of the record exists);
4. parent not yet in the target     → wait (dependency), dead-letter after the budget;
5. the sink applies the change      → applied, ledger updated;
   TransientError                   → retry with full-jitter backoff, then dead-letter;
   DependencyError                  → wait longer, then dead-letter;
   AuthError                        → open the circuit, park (no attempt burned);
   PermanentError / anything else   → dead-letter with the vendor code and hint.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog
from pydantic import ValidationError

from erpsync.errors import (
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    SyncError,
    TransientError,
)
from erpsync.events import ChangeEvent, Delivery
from workers.dlq import DeadLetterStore
from workers.leases import Leases
from workers.limits import Circuit
from workers.policy import RetryPolicy
from workers.state import LedgerEntry, State

log = structlog.get_logger("erpsync.worker")

Action = Literal["created", "updated", "archived", "deleted", "unarchived", "invoiced", "unchanged"]
Result = Literal["applied", "skipped", "dead_lettered", "parked"]


@dataclass(frozen=True)
class ApplyResult:
    """What a sink did for one event."""

    action: Action
    target_id: str | None = None
    deleted: bool = False
    extra: str | None = None
    #: more counters the outcome bumps, for the target and as ``<flow>.<name>`` (the billing
    #: saga's ``invoice_recorded``; the invoice states' ``invoice_paid``...)
    counts: tuple[str, ...] = ()


def _no_checkpoint(extra: str) -> None:
    """A context built outside the engine records no progress."""


def _no_doubt(window_s: float) -> AbstractContextManager[None]:
    """A context built outside the engine guards no create."""
    return nullcontext()


@dataclass(frozen=True)
class ApplyContext:
    """What a sink may know when applying an event."""

    ledger: LedgerEntry | None
    parent: LedgerEntry | None
    lookup: Callable[[str, str], LedgerEntry | None]  # (entity, key) -> ledger in this target
    #: Store a multi-step sink's progress in the ledger's ``extra`` before ``apply`` returns
    #: (the rest of the ledger is written only on success), so that a crash or a failure in a
    #: later step resumes after the steps already done: the billing saga's invoice number.
    checkpoint: Callable[[str], None] = _no_checkpoint
    #: Around a create the target cannot deduplicate (HIPE has no unique key), with how
    #: long its answer may take: raises a DependencyError (wait, look up again) while an
    #: earlier create of the record whose answer never came may still land (a worker
    #: killed or cut off mid-call), and LeaseLostError when the record's lock was lost.
    create_in_doubt: Callable[[float], AbstractContextManager[None]] = _no_doubt
    #: a reconcile's repair: the target drifted from what the ledger remembers, so a sink
    #: that skips writes the ledger vouches for (Propeller's marker, a detach) writes all
    forced: bool = False


class Sink(Protocol):
    """Applies canonical changes of some entities to one target system."""

    target: str

    def handles(self, entity: str) -> bool:
        """True when this sink applies ``entity``."""
        ...

    def needs_parent(self, event: ChangeEvent) -> bool:
        """True when the event's parent must be in the target first."""
        ...

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        """Apply the change; raise the adapters' classified errors on failure."""
        ...


class InvalidSourceDataError(PermanentError):
    """The source record cannot be mapped (a required field is missing or malformed)."""


def invalid_source_data(event: ChangeEvent, target: str, exc: ValidationError) -> SyncError:
    """The dead-letter reason for a record its sink could not map (field paths, no values)."""
    return InvalidSourceDataError(
        f"{event.entity} {event.key} cannot be mapped to {target}: "
        f"{exc.error_count()} invalid field(s)",
        system=event.source,
        operation="map",
        vendor_code="invalid-source-data",
        hint="fix the record in the source system (the next change flows on), or "
        "edit the dead letter's payload and replay",
        response_excerpt="; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )[:500],
    )


def log_context(delivery: Delivery) -> dict[str, Any]:
    """The context every log line about a delivery carries."""
    event = delivery.event
    return {
        "flow": event.flow,
        "target": delivery.target,
        "entity": event.entity,
        "key": event.key,
        "event_id": event.event_id,
        "attempt": delivery.attempt,
    }


def outcome_line(event: str, delivery: Delivery, *, bulk: bool, **fields: Any) -> None:
    """The line of an applied or skipped delivery.

    On the single path at ``INFO``, with the delivery's bound context. A record of a bulk
    call is named with its outcome on its batch's line (``sync.batch_done``, at ``INFO``), so
    its own line is ``DEBUG``, its context given rather than bound (binding costs more than
    recording the outcome), and not even built when ``DEBUG`` is filtered out. Failures are
    not outcome lines: each keeps its own line on both paths.
    """
    if not bulk:
        log.info(event, **fields)
    elif log.is_enabled_for(logging.DEBUG):
        log.debug(event, **fields, **log_context(delivery))


def missing_parent(event: ChangeEvent, target: str) -> DependencyError:
    """The wait reason of a record whose parent is not in the target yet."""
    return DependencyError(
        f"parent {event.parent_key} of {event.key} is not in {target} yet",
        system=target,
        operation="check parent",
        vendor_code="parent-not-synced",
        hint=f"waits for {event.parent_key} to arrive in {target}; if it never "
        "does, sync or fix the parent, then replay",
    )


def _applied_counters(flow: str, result: ApplyResult) -> tuple[str, ...]:
    """The counters bumped with an "applied" outcome, besides "applied"."""
    counts = (*result.counts, *(f"{flow}.{name}" for name in result.counts))
    return (f"action_{result.action}", f"{flow}.applied", f"{flow}.action_{result.action}", *counts)


@dataclass
class _Held:
    """The record lock one delivery holds, and whether it was already given back."""

    token: str | None
    ended: bool = False


@dataclass
class Engine:
    """Takes deliveries to their outcome; one per worker process (thread-safe)."""

    state: State
    circuit: Circuit
    dlq: DeadLetterStore
    sinks: Callable[[], Mapping[str, Sink]]  # per thread: sinks hold HTTP clients
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    #: called as (what, delivery, details) for every outcome, retry, wait and park, e.g.
    #: ("applied", d, {"action": "created"}); metrics and tests observe the engine here
    observers: list[Callable[[str, Delivery, dict[str, Any]], None]] = field(default_factory=list)
    #: the record locks' leases, renewed while a delivery runs, and the fencing checks
    #: before every write (workers.leases); None: locks live their TTL, nothing is checked
    leases: Leases | None = None

    def notify(self, what: str, delivery: Delivery, **details: Any) -> None:
        """Tell the observers (metrics, tests); an observer's failure is only logged."""
        for observer in self.observers:
            try:
                observer(what, delivery, details)
            except Exception as exc:  # noqa: BLE001 (an observer must never break a delivery)
                log.warning("sync.observer_failed", error=str(exc))

    def process(self, delivery: Delivery) -> Result:
        """Apply one delivery; returns its result. Never raises for vendor failures."""
        structlog.contextvars.bind_contextvars(**log_context(delivery))
        try:
            return self._process(delivery)
        finally:
            structlog.contextvars.unbind_contextvars(
                "flow", "target", "entity", "key", "event_id", "attempt"
            )

    def _process(self, delivery: Delivery) -> Result:
        event, target = delivery.event, delivery.target
        sink = self.sinks().get(target)
        if sink is None or not sink.handles(event.entity):
            error = PermanentError(
                f"no sink applies {event.entity} to {target}",
                system=target,
                operation="route",
                hint="the flow names a target that is not configured for this entity",
            )
            return self.dead_letter(delivery, error)

        # One round trip marks the delivery in flight, reads the circuit, takes the record's
        # lock and reads its ledger; the common outcome gives them back in one more (see
        # _applied_single). Every other way out ends them in the finally below.
        lock_key = self.state.keys.record_lock(target, event.entity, event.key)
        started = self.state.start(
            target,
            event.entity,
            event.key,
            delivery.delivery_id,
            now=self.clock(),
            lock_ttl_s=self.policy.lock_ttl_s,
        )
        held = _Held(started.token)
        probe: float | None = None
        try:
            if started.circuit_state not in (None, "closed"):
                wait, probe = self.circuit.admit_lease(target, now=self.clock())
                if wait > 0:
                    self.state.incr(target, "parked_circuit")
                    self.park(delivery, wait + self.rng.uniform(0, min(5.0, wait / 4 + 0.5)))
                    log.debug("sync.parked_circuit", wait_s=round(wait, 2))
                    self.notify("parked_circuit", delivery, wait_s=wait)
                    return "parked"
            ledger = started.ledger
            if held.token is None:
                held.token = self.state.take_over(lock_key, started.holder, self.policy.lock_ttl_s)
                if held.token is None:
                    self.state.incr(target, "parked_busy")
                    self.park(delivery, self.policy.busy_delay_s * (1 + self.rng.random()))
                    return "parked"
                ledger = self.state.ledger_get(target, event.entity, event.key)
            with self.holding({lock_key: held.token}, [(target, delivery.delivery_id)]):
                return self._apply_locked(delivery, sink, ledger, lock_key, held)
        finally:
            if not held.ended:
                self.state.end(target, delivery.delivery_id, lock_key, held.token)
            if probe is not None:
                self.circuit.end_probe(target, probe, now=self.clock())

    def _apply_locked(
        self,
        delivery: Delivery,
        sink: Sink,
        ledger: LedgerEntry | None,
        lock_key: str,
        held: _Held,
    ) -> Result:
        event, target = delivery.event, delivery.target
        if ledger is not None and ledger.source_version > event.source_version:
            return self.skip(delivery, "stale")
        if ledger is not None and ledger.fingerprint == event.fingerprint and not delivery.force:
            return self.skip(delivery, "unchanged")
        if delivery.replay_of is not None:
            latest = self.state.latest(event.source, event.entity, event.key)
            if latest is not None and latest > event.source_version:
                return self.skip(delivery, "superseded")

        def lookup(entity: str, key: str) -> LedgerEntry | None:
            return self.state.ledger_get(target, entity, key)

        parent = None
        if event.parent_key and sink.needs_parent(event):
            parent = lookup(event.entity, event.parent_key)
            if parent is None:
                return self.fail(delivery, missing_parent(event, target))

        ledger_key = self.state.keys.ledger(target, event.entity, event.key)

        def checkpoint(extra: str) -> None:
            self.state.redis.hset(ledger_key, "extra", extra)

        def create_in_doubt(window_s: float) -> AbstractContextManager[None]:
            if self.leases is None or held.token is None:
                return nullcontext()
            marker = self.state.keys.create_in_doubt(target, event.entity, event.key)
            return self.leases.create_in_doubt(lock_key, marker, held.token, window_s)

        context = ApplyContext(
            ledger=ledger,
            parent=parent,
            lookup=lookup,
            checkpoint=checkpoint,
            create_in_doubt=create_in_doubt,
            forced=delivery.force,
        )
        self.forget_before_write([(delivery, ledger)])
        try:
            result = sink.apply(event, context)
        except SyncError as error:
            self.guard()
            return self.fail(delivery, error)
        except ValidationError as exc:
            self.guard()
            return self.dead_letter(delivery, invalid_source_data(event, target, exc))
        self.guard()
        return self._applied_single(delivery, result, ledger, lock_key, held)

    def _applied_single(
        self,
        delivery: Delivery,
        result: ApplyResult,
        previous: LedgerEntry | None,
        lock_key: str,
        held: _Held,
    ) -> Result:
        """:meth:`applied`, with the circuit's success before and the lock's release and the
        in-flight mark's removal after, in one round trip (in this order on the server)."""
        with self.state.redis.pipeline(transaction=False) as pipe:
            self.circuit.success(delivery.target, client=pipe)
            self._record_applied(pipe, delivery, result, previous)
            self.state.end(delivery.target, delivery.delivery_id, lock_key, held.token, client=pipe)
            pipe.execute()
        held.ended = True
        return self._after_applied(delivery, result)

    def holding(
        self, locks: Mapping[str, str], deliveries: Sequence[tuple[str, str]]
    ) -> AbstractContextManager[object]:
        """Work under ``locks`` (see :meth:`workers.leases.Leases.holding`)."""
        if self.leases is None:
            return nullcontext()
        return self.leases.holding(locks, deliveries)

    def guard(self) -> None:
        """Before recording an outcome: raises LeaseLostError when this thread's record
        locks were lost (another worker may have taken the delivery over)."""
        if self.leases is not None:
            self.leases.guard()

    # -- outcomes (also used by workers.batch, which applies many deliveries at once) -----
    def applied(
        self, delivery: Delivery, result: ApplyResult, previous: LedgerEntry | None
    ) -> Result:
        """Record a successful application: ledger, counters once, replay resolved, log.

        The caller holds the record's lock and has told the circuit of the success.
        """
        with self.state.redis.pipeline(transaction=False) as pipe:
            self._record_applied(pipe, delivery, result, previous)
            pipe.execute()
        return self._after_applied(delivery, result)

    def applied_many(
        self, done: Sequence[tuple[Delivery, ApplyResult, LedgerEntry | None]]
    ) -> list[Result]:
        """:meth:`applied` for many deliveries (a bulk call's successes), one round trip.

        The caller holds every record's lock and has told the circuit of the success.
        """
        by_target: dict[str, list[tuple[str, str, str, LedgerEntry, tuple[str, ...]]]] = {}
        for delivery, result, previous in done:
            event = delivery.event
            by_target.setdefault(delivery.target, []).append(
                (
                    delivery.delivery_id,
                    event.entity,
                    event.key,
                    self._applied_entry(delivery, result, previous),
                    _applied_counters(event.flow, result),
                )
            )
        for target, applied in by_target.items():
            self.state.record_applied_many(target, applied)
        return [self._after_applied(delivery, result, bulk=True) for delivery, result, _ in done]

    def _record_applied(
        self, pipe: Any, delivery: Delivery, result: ApplyResult, previous: LedgerEntry | None
    ) -> None:
        """Queue the ledger write and the outcome count of an applied delivery."""
        event, target = delivery.event, delivery.target
        entry = self._applied_entry(delivery, result, previous)
        self.state.ledger_put(target, event.entity, event.key, entry, client=pipe)
        also = _applied_counters(event.flow, result)
        self.state.queue_outcome(pipe, target, delivery.delivery_id, "applied", also=also)

    def _applied_entry(
        self, delivery: Delivery, result: ApplyResult, previous: LedgerEntry | None
    ) -> LedgerEntry:
        """The ledger of an applied delivery."""
        event = delivery.event
        return LedgerEntry(
            fingerprint=event.fingerprint,
            source_version=event.source_version,
            target_id=result.target_id or (previous.target_id if previous else None),
            deleted=result.deleted,
            applied_at=self.clock(),
            extra=result.extra,
        )

    def _after_applied(
        self, delivery: Delivery, result: ApplyResult, *, bulk: bool = False
    ) -> Result:
        """What follows a recorded application: the replay resolved, the log, observers.

        ``bulk``: a record of a bulk call (see :func:`outcome_line`).
        """
        if delivery.replay_of is not None:
            self.dlq.resolved(delivery.replay_of, "applied")
        outcome_line(
            "sync.applied", delivery, bulk=bulk, action=result.action, target_id=result.target_id
        )
        self.notify("applied", delivery, action=result.action)
        return "applied"

    def skip(self, delivery: Delivery, why: str, *, bulk: bool = False) -> Result:
        """Count the delivery as skipped (stale, unchanged, superseded).

        ``bulk``: a record of a bulk call (see :func:`outcome_line`).
        """
        target, flow = delivery.target, delivery.event.flow
        if why == "unchanged":
            self._advance_version(delivery)
        self.state.record_outcome(
            target,
            delivery.delivery_id,
            "skipped",
            also=(f"skipped_{why}", f"{flow}.skipped", f"{flow}.skipped_{why}"),
        )
        if delivery.replay_of is not None:
            self.dlq.resolved(delivery.replay_of, f"skipped: {why}")
        outcome_line("sync.skipped", delivery, bulk=bulk, reason=why)
        self.notify("skipped", delivery, reason=why)
        return "skipped"

    def _advance_version(self, delivery: Delivery) -> None:
        """A record came back to the content already applied: remember its newer version.

        Without this, an older change still on its way (a retry, a redelivery) would pass
        the stale check against the ledger's older version and overwrite the newer state
        (A applied, B retrying, A again skipped as unchanged, then B applied over it).
        The caller holds the record's lock.
        """
        event = delivery.event
        ledger_key = self.state.keys.ledger(delivery.target, event.entity, event.key)
        current = self.state.redis.hget(ledger_key, "source_version")
        if current is not None and int(current) < event.source_version:
            self.state.redis.hset(ledger_key, "source_version", str(event.source_version))

    def forget_before_write(self, items: Sequence[tuple[Delivery, LedgerEntry | None]]) -> None:
        """The target may change now: its ledger stops vouching for the content it names.

        A worker killed during the call (SIGKILL, out of memory, a lost host) records
        nothing afterwards: if the target took the write, the ledger would still name the
        content before it, and a later change back to that content would be skipped as
        unchanged while the target keeps this one. So the fingerprint is cleared before the
        call (version and target id kept; a success writes the new one), in one round trip
        for a bulk call's records. The caller holds the records' locks.
        """
        unsure = [
            delivery
            for delivery, ledger in items
            if ledger is not None
            and ledger.fingerprint
            and ledger.fingerprint != delivery.event.fingerprint
        ]
        if not unsure:
            return
        with self.state.redis.pipeline(transaction=False) as pipe:
            for delivery in unsure:
                event = delivery.event
                pipe.hset(
                    self.state.keys.ledger(delivery.target, event.entity, event.key),
                    "fingerprint",
                    "",
                )
            pipe.execute()

    def _forget_fingerprint(self, delivery: Delivery) -> None:
        """After a failed attempt the ledger no longer knows what the target holds.

        A sink may have written before failing (a timeout after the write, the second call
        of several): the target can hold this change while the ledger still names the one
        before. Clearing the fingerprint (version and target id kept) makes the next change
        carrying the ledger's old content be applied instead of skipped as unchanged.
        The caller holds the record's lock.
        """
        event = delivery.event
        ledger_key = self.state.keys.ledger(delivery.target, event.entity, event.key)
        current = self.state.redis.hget(ledger_key, "fingerprint")
        if current is not None and current != event.fingerprint:
            self.state.redis.hset(ledger_key, "fingerprint", "")

    def fail(self, delivery: Delivery, error: SyncError) -> Result:
        """Handle a failure: retry, wait for a dependency, open the circuit, or dead-letter."""
        target = delivery.target
        self._forget_fingerprint(delivery)
        now = self.clock()
        delivery.first_failure_at = delivery.first_failure_at or datetime.fromtimestamp(now, UTC)
        delivery.last_error = error.to_dict()
        if isinstance(error, AuthError) or error.error_class is ErrorClass.AUTH:
            opened = self.circuit.failure(target, str(error), immediate=True, now=now)
            self.state.incr(target, "auth_failures")
            wait = max(1.0, self.circuit.status(target).until - now)
            self.park(delivery, wait + self.rng.uniform(0, 1))
            log.warning("sync.circuit_opened" if opened else "sync.auth_failed", error=str(error))
            self.notify("circuit_opened" if opened else "auth_failed", delivery, code=error.code)
            return "parked"
        if isinstance(error, TransientError) or error.error_class is ErrorClass.TRANSIENT:
            delivery.attempt += 1
            self.circuit.failure(target, str(error), now=now)
            if delivery.attempt >= self.policy.transient_max_attempts:
                return self.dead_letter(delivery, error)
            delay = self.policy.transient_delay(delivery.attempt, error.retry_after_s, self.rng)
            self.state.incr(target, "retries")
            self.park(delivery, delay)
            log.info("sync.retry_scheduled", delay_s=round(delay, 2), error=str(error))
            self.notify("retry", delivery, code=error.code, delay_s=delay)
            return "parked"
        if isinstance(error, DependencyError) or error.error_class is ErrorClass.DEPENDENCY:
            delivery.dependency_waits += 1
            if delivery.dependency_waits > self.policy.dependency_max_waits:
                return self.dead_letter(delivery, error)
            delay = self.policy.dependency_delay(delivery.dependency_waits - 1, self.rng)
            self.state.incr(target, "dependency_waits")
            self.park(delivery, delay)
            log.info("sync.waiting_dependency", delay_s=round(delay, 2), error=str(error))
            self.notify("dependency_wait", delivery, code=error.code, delay_s=delay)
            return "parked"
        return self.dead_letter(delivery, error)

    def dead_letter(self, delivery: Delivery, error: SyncError) -> Result:
        """Dead-letter the delivery with everything needed to replay it, and count it."""
        target = delivery.target
        now = self.clock()
        delivery.first_failure_at = delivery.first_failure_at or datetime.fromtimestamp(now, UTC)
        delivery.last_error = error.to_dict()
        entry_id = self.dlq.add(delivery, error, now=now)
        if delivery.replay_of is not None and delivery.replay_of != entry_id:
            # A replay with an edited payload failed again: its new entry replaces the old.
            self.dlq.remove(delivery.replay_of)
        flow = delivery.event.flow
        self.state.record_outcome(
            target, delivery.delivery_id, "dead_lettered", also=(f"{flow}.dead_lettered",)
        )
        log.warning(
            "sync.dead_lettered",
            dlq_id=entry_id,
            error_class=error.error_class.value,
            code=error.code,
            error=str(error),
        )
        self.notify("dead_lettered", delivery, code=error.code, dlq_id=entry_id)
        return "dead_lettered"

    def park(self, delivery: Delivery, delay_s: float) -> None:
        """Put the delivery in the delayed set; the pump re-queues it when due."""
        self.state.schedule(delivery.model_dump(mode="json"), self.clock() + delay_s)
