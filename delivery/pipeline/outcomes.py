"""How a delivery's outcome is recorded, written once for both paths.

Every delivery ends **applied**, **skipped** or **dead-lettered**, or is **parked** in the
delayed set to be tried again (retry, dependency wait, busy record, open circuit). A failure
is handled by its class (:meth:`Outcomes.fail_together`), for one delivery or for every
delivery of a bulk call at once: authentication opens the circuit, a transient error is
retried with backoff until its budget is spent, a missing dependency waits, anything else
is dead-lettered. Each outcome is told to the hooks (:mod:`delivery.pipeline.hooks`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from delivery.pipeline.contract import ApplyResult, Result, log_context
from delivery.pipeline.hooks import Hooks, RecordEvent
from delivery.policy import RetryPolicy
from erpsync.errors import AuthError, DependencyError, ErrorClass, SyncError, TransientError
from erpsync.events import Delivery
from state.dlq import DeadLetterStore
from state.leases import Leases
from state.limits import Circuit
from state.records import Records
from state.store import LedgerEntry, State

log = structlog.get_logger("erpsync.worker")


class Group(Protocol):
    """Deliveries of one target whose failure is handled together: one delivery, or a bulk
    call's."""

    @property
    def target(self) -> str:
        """The deliveries' target."""
        ...

    @property
    def bulk(self) -> bool:
        """A bulk call's deliveries: parked as one batch, logged on batch lines."""
        ...

    def park_all(self, deliveries: Sequence[Delivery], delay_s: float) -> None:
        """Put the deliveries in the delayed set, due in ``delay_s``."""
        ...


@contextmanager
def bound(delivery: Delivery) -> Iterator[None]:
    """The log context of one delivery, as the single path binds it."""
    with structlog.contextvars.bound_contextvars(**log_context(delivery)):
        yield


def applied_counters(flow: str, result: ApplyResult) -> tuple[str, ...]:
    """The counters bumped with an "applied" outcome, besides "applied"."""
    counts = (*result.counts, *(f"{flow}.{name}" for name in result.counts))
    return (f"action_{result.action}", f"{flow}.applied", f"{flow}.action_{result.action}", *counts)


class Outcomes:
    """The recording of outcomes, over a worker's state (the engine's half that both paths
    share)."""

    state: State
    #: the ledger fields cleared or advanced around a write
    records: Records
    circuit: Circuit
    dlq: DeadLetterStore
    policy: RetryPolicy
    rng: random.Random
    clock: Callable[[], float]
    leases: Leases | None
    hooks: Hooks

    def notify(
        self,
        what: str,
        delivery: Delivery,
        *,
        final: bool = True,
        bulk: bool = False,
        **details: Any,
    ) -> None:
        """Tell the hooks what happened to one record (see :class:`RecordEvent`)."""
        self.hooks.record(RecordEvent(what, delivery, details, final=final, bulk=bulk))

    def park(self, delivery: Delivery, delay_s: float) -> None:
        """Put the delivery in the delayed set; the pump re-queues it when due."""
        self.state.schedule(delivery.model_dump(mode="json"), self.clock() + delay_s)

    def holding(
        self, locks: Mapping[str, str], deliveries: Sequence[tuple[str, str]]
    ) -> AbstractContextManager[object]:
        """Work under ``locks`` (see :meth:`state.leases.Leases.holding`)."""
        if self.leases is None:
            return nullcontext()
        return self.leases.holding(locks, deliveries)

    def guard(self) -> None:
        """Before recording an outcome: raises LeaseLostError when this thread's record
        locks were lost (another worker may have taken the delivery over)."""
        if self.leases is not None:
            self.leases.guard()

    # -- applied --------------------------------------------------------------------------
    def applied_many(
        self, done: Sequence[tuple[Delivery, ApplyResult, LedgerEntry | None]]
    ) -> list[Result]:
        """Record a bulk call's successes (ledgers, counters once, replays resolved, hooks
        told), one round trip; the single path queues :meth:`queue_applied` with its lock's
        release instead.

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
                    applied_counters(event.flow, result),
                )
            )
        for target, applied in by_target.items():
            self.state.record_applied_many(target, applied)
        return [self.after_applied(delivery, result, bulk=True) for delivery, result, _ in done]

    def queue_applied(
        self, pipe: Any, delivery: Delivery, result: ApplyResult, previous: LedgerEntry | None
    ) -> None:
        """Queue the ledger write and the outcome count of an applied delivery."""
        event, target = delivery.event, delivery.target
        entry = self._applied_entry(delivery, result, previous)
        self.state.ledger_put(target, event.entity, event.key, entry, client=pipe)
        also = applied_counters(event.flow, result)
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

    def after_applied(
        self, delivery: Delivery, result: ApplyResult, *, bulk: bool = False
    ) -> Result:
        """What follows a recorded application: the replay resolved, the hooks told.

        ``bulk``: a record of a bulk call (its line is its batch's).
        """
        if delivery.replay_of is not None:
            self.dlq.resolved(delivery.replay_of, "applied")
        self.notify(
            "applied", delivery, bulk=bulk, action=result.action, target_id=result.target_id
        )
        return "applied"

    # -- skipped --------------------------------------------------------------------------
    def skip(self, delivery: Delivery, why: str, *, bulk: bool = False) -> Result:
        """Count the delivery as skipped (stale, unchanged, superseded).

        ``bulk``: a record of a bulk call (its line is its batch's).
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
        self.notify("skipped", delivery, bulk=bulk, reason=why)
        return "skipped"

    def _advance_version(self, delivery: Delivery) -> None:
        """A record came back to the content already applied: remember its newer version.

        Without this, an older change still on its way (a retry, a redelivery) would pass
        the stale check against the ledger's older version and overwrite the newer state
        (A applied, B retrying, A again skipped as unchanged, then B applied over it).
        The caller holds the record's lock.
        """
        event = delivery.event
        self.records.advance_version(delivery.target, event.entity, event.key, event.source_version)

    # -- what the ledger vouches for --------------------------------------------------------
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
        self.records.forget_fingerprints((d.target, d.event.entity, d.event.key) for d in unsure)

    def _forget_fingerprint(self, delivery: Delivery) -> None:
        """After a failed attempt the ledger no longer knows what the target holds.

        A sink may have written before failing (a timeout after the write, the second call
        of several): the target can hold this change while the ledger still names the one
        before. Clearing the fingerprint (version and target id kept) makes the next change
        carrying the ledger's old content be applied instead of skipped as unchanged.
        The caller holds the record's lock.
        """
        event = delivery.event
        self.records.forget_fingerprint(
            delivery.target, event.entity, event.key, unless=event.fingerprint
        )

    # -- failed ---------------------------------------------------------------------------
    def fail(self, delivery: Delivery, error: SyncError) -> Result:
        """Handle one delivery's failure: retry, wait for a dependency, open the circuit, or
        dead-letter (see :meth:`fail_together`); parked, it comes back alone."""
        self._forget_fingerprint(delivery)
        return self.fail_together(Alone(self, delivery.target), [(delivery, error)])[0]

    def fail_together(
        self, group: Group, failures: Sequence[tuple[Delivery, SyncError]]
    ) -> list[Result]:
        """Handle failures of one class (the first's decides) by it; one result each.

        A group's deliveries share the circuit's verdict, a backoff and a park: the
        circuit counts one failure; a retry waits as long as the most-tried delivery needs,
        a dependency as long as the least-waited one; whichever delivery has spent its
        budget is dead-lettered alone.
        """
        now = self.clock()
        for delivery, error in failures:
            delivery.first_failure_at = delivery.first_failure_at or datetime.fromtimestamp(
                now, UTC
            )
            delivery.last_error = error.to_dict()
        error = failures[0][1]
        kind = error.error_class
        if isinstance(error, AuthError) or kind is ErrorClass.AUTH:
            return self._auth_failed(group, failures, now)
        if isinstance(error, TransientError) or kind is ErrorClass.TRANSIENT:
            self.circuit.failure(group.target, str(error), now=now)
            spent = [self.policy.count_transient(d, error) for d, _ in failures]
            return self._wait(group, failures, spent, "retry")
        if isinstance(error, DependencyError) or kind is ErrorClass.DEPENDENCY:
            for delivery, _ in failures:
                delivery.dependency_waits += 1
            spent = [d.dependency_waits > self.policy.dependency_max_waits for d, _ in failures]
            return self._wait(group, failures, spent, "dependency_wait")
        return [self._dead_letter_in(group, d, e) for d, e in failures]

    def _auth_failed(
        self, group: Group, failures: Sequence[tuple[Delivery, SyncError]], now: float
    ) -> list[Result]:
        """Authentication refused: the circuit opens at once, the deliveries wait for it
        (no attempt burned)."""
        error, deliveries = failures[0][1], [d for d, _ in failures]
        opened = self.circuit.failure(group.target, str(error), immediate=True, now=now)
        self.state.incr(group.target, "auth_failures")
        wait = max(1.0, self.circuit.status(group.target).until - now)
        group.park_all(deliveries, wait + self.rng.uniform(0, 1))
        what = "circuit_opened" if opened else "auth_failed"
        if group.bulk:
            log.warning(f"sync.batch_{what}", target=group.target, error=str(error),
                        keys=[d.event.key for d in deliveries])  # fmt: skip
        else:
            log.warning(f"sync.{what}", error=str(error))
        for delivery in deliveries:
            self.notify(what, delivery, code=error.code)
        return ["parked"] * len(deliveries)

    def _wait(
        self,
        group: Group,
        failures: Sequence[tuple[Delivery, SyncError]],
        spent: Sequence[bool],
        what: str,
    ) -> list[Result]:
        """Park the deliveries with budget left for a retry or a dependency wait; the rest
        are dead-lettered."""
        results: list[Result] = []
        keep: list[Delivery] = []
        for (delivery, error), out in zip(failures, spent, strict=True):
            results.append(self._dead_letter_in(group, delivery, error) if out else "parked")
            if not out:
                keep.append(delivery)
        if not keep:
            return results
        error = failures[0][1]
        if what == "retry":
            attempt = max(d.attempt for d in keep)
            delay = self.policy.transient_delay(attempt, error.retry_after_s, self.rng)
            self.state.incr(group.target, "retries", len(keep))
        else:
            waits = min(d.dependency_waits for d in keep)
            delay = self.policy.dependency_delay(waits - 1, self.rng)
            self.state.incr(group.target, "dependency_waits", len(keep))
        group.park_all(keep, delay)
        _log_wait(group, what, keep, delay, error)
        for delivery in keep:
            self.notify(what, delivery, code=error.code, delay_s=delay)
        return results

    def _dead_letter_in(self, group: Group, delivery: Delivery, error: SyncError) -> Result:
        """:meth:`dead_letter`, its line bound to the delivery when the group is a batch."""
        with bound(delivery) if group.bulk else nullcontext():
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


def _log_wait(
    group: Group, what: str, keep: Sequence[Delivery], delay: float, error: SyncError
) -> None:
    """The line of deliveries parked for a retry or a dependency wait."""
    if not group.bulk:
        line = "sync.retry_scheduled" if what == "retry" else "sync.waiting_dependency"
        log.info(line, delay_s=round(delay, 2), error=str(error))
    elif what == "retry":
        log.info("sync.batch_retry_scheduled", target=group.target, delay_s=round(delay, 2),
                 count=len(keep), error=str(error),
                 keys=[d.event.key for d in keep])  # fmt: skip
    else:
        log.info("sync.batch_waiting_parents", target=group.target, count=len(keep),
                 delay_s=delay, keys=[d.event.key for d in keep])  # fmt: skip


class Alone:
    """A group of single deliveries: each parked on its own (it comes back alone)."""

    bulk = False

    def __init__(self, outcomes: Outcomes, target: str) -> None:
        self.outcomes = outcomes
        self.target = target

    def park_all(self, deliveries: Sequence[Delivery], delay_s: float) -> None:
        for delivery in deliveries:
            self.outcomes.park(delivery, delay_s)
