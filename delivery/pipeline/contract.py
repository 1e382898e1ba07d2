"""What a sink and the pipeline agree on: the sink protocols, what a sink may know while
applying, what it returns, and the reasons the pipeline gives for a record it cannot apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import ValidationError

from erpsync.errors import DependencyError, PermanentError, SyncError
from erpsync.events import ChangeEvent, Delivery
from state.store import LedgerEntry

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


def _no_claim(entity: str, target_id: str) -> str | None:
    """A context built outside the engine knows no other record's target id."""
    return None


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
    #: (entity, target id) -> claim the target's id for this record: None when it is this
    #: record's, else the other source key holding it (a sink whose target matches records
    #: by name, Atollon, catches two records merged into one)
    claim: Callable[[str, str], str | None] = _no_claim


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


#: the fields of :func:`log_context`, to unbind them
LOG_FIELDS = ("flow", "target", "entity", "key", "event_id", "attempt")


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
