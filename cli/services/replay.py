"""Operator actions on dead letters: select, replay, edit, drop, export and import.

The CLI (``erpsync dlq …``) stays thin; every rule lives here.

* **Selection** by target, code, flow, entity, key (glob) and age (``--older-than 2h``).
* **Replay** puts the stored delivery back on its target's queue with ``replay_of`` set, so
  it goes through the normal workers: the target's rate limit and circuit apply, the
  ledger makes it effectively-once (replaying one entry twice applies it once), and the
  engine resolves the entry on its outcome. An entry superseded by a newer change of the
  same record (the producer's latest source version is higher) is not replayed: it is
  resolved here as *skipped (superseded)*, the outcome the engine would give it. Before a
  delivery is re-published its ``dead_lettered`` outcome is forgotten, so the accounting
  ``produced = applied + skipped + dead_lettered`` stays exact.
* **Edit** validates the payload against the entity's canonical model before storing it;
  the event's fingerprint and id are recomputed (its source version kept), and the counted
  outcome moves to the new delivery id.
* **Export / import** as JSON lines; an import checks every line first and imports nothing
  when any line is invalid.

Every action is written to the audit log with its actor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cli.services.dlq_input import (
    EDIT_MODELS,
    EditError,
    ImportFileError,
    apply_sets,
    changed_paths,
    edit_event,
    parse_import,
)
from cli.services.dlq_select import (
    DeadLetterFilter,
    DurationError,
    default_actor,
    format_age,
    parse_duration,
)
from erpsync.events import Delivery
from state.dlq import DeadLetter, DeadLetterStore, entry_id_for
from state.store import State
from state.trace import TraceStore

__all__ = [
    "AUDIT_IDS",
    "AUDIT_LOOKBACK",
    "EDIT_MODELS",
    "DeadLetterFilter",
    "DlqOperator",
    "DurationError",
    "EditError",
    "EditResult",
    "ImportFileError",
    "Missing",
    "PlannedEntry",
    "ReplayOutcomes",
    "ReplayPlan",
    "ReplayReport",
    "Verdict",
    "apply_sets",
    "changed_paths",
    "default_actor",
    "edit_event",
    "entry_as_dict",
    "format_age",
    "isoformat",
    "parse_duration",
    "parse_import",
]

#: how many ids one audit record names (the count is always exact)
AUDIT_IDS = 200
#: how far back the audit log is searched to explain a missing entry
AUDIT_LOOKBACK = 20_000


Verdict = Literal["replay", "superseded"]


@dataclass(frozen=True)
class PlannedEntry:
    """What a replay will do with one entry."""

    entry: DeadLetter
    verdict: Verdict
    latest_version: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry.id,
            "target": self.entry.target,
            "code": self.entry.code,
            "flow": self.entry.flow,
            "entity": self.entry.entity,
            "key": self.entry.key,
            "source_version": self.entry.delivery.event.source_version,
            "verdict": self.verdict,
            "latest_version": self.latest_version,
            "note": self.note,
        }


@dataclass(frozen=True)
class Missing:
    """An id asked for that is not in the dead-letter queue, and why if known."""

    id: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "reason": self.reason}


@dataclass
class ReplayPlan:
    """The entries a replay would touch, in order."""

    entries: list[PlannedEntry] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)

    @property
    def to_replay(self) -> list[PlannedEntry]:
        return [p for p in self.entries if p.verdict == "replay"]

    @property
    def superseded(self) -> list[PlannedEntry]:
        return [p for p in self.entries if p.verdict == "superseded"]


@dataclass
class ReplayReport:
    """What a replay did."""

    replayed: list[DeadLetter] = field(default_factory=list)
    superseded: list[PlannedEntry] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # resolved between plan and replay


@dataclass
class ReplayOutcomes:
    """Where replayed entries stand after waiting for the workers."""

    applied: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed_again: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.applied) + len(self.skipped) + len(self.failed_again)

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped],
            "dead_lettered_again": self.failed_again,
            "pending": self.pending,
        }


@dataclass(frozen=True)
class EditResult:
    """An edit that was stored."""

    entry: DeadLetter
    changed: list[str]
    previous_event_id: str


Publisher = Callable[[Sequence[Delivery]], int]


class DlqOperator:
    """Operator actions on the dead-letter queue, each one audit-logged under ``actor``."""

    def __init__(
        self,
        store: DeadLetterStore,
        state: State,
        *,
        actor: str | None = None,
        publish: Publisher | None = None,
        clock: Callable[[], float] = time.time,
        trace: TraceStore | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.actor = actor or default_actor()
        self._publish = publish
        self.clock = clock
        self.trace = trace

    def _trace(
        self, what: str, entries: Iterable[DeadLetter], at: float | None = None, **details: Any
    ) -> None:
        """An operator's action in the traces of the records it concerns (``at``: when)."""
        if self.trace is None:
            return
        now = self.clock() if at is None else at
        self.trace.write(
            (
                e.flow,
                e.key,
                {
                    "at": now,
                    "what": what,
                    "target": e.target,
                    "dlq_id": e.id,
                    "actor": self.actor,
                    **details,
                },
            )
            for e in entries
        )

    # -- selection ----------------------------------------------------------------------
    def select(self, flt: DeadLetterFilter | None = None) -> list[DeadLetter]:
        """Entries matching ``flt`` (all without one), oldest last failure first."""
        now = self.clock()
        return [e for e in self.store.iter_entries() if flt is None or flt.matches(e, now)]

    def get_many(self, ids: Iterable[str]) -> tuple[list[DeadLetter], list[Missing]]:
        """The entries named, and the ids that are not (with what became of them)."""
        found: list[DeadLetter] = []
        missing: list[Missing] = []
        seen: set[str] = set()
        for entry_id in ids:
            if entry_id in seen:
                continue
            seen.add(entry_id)
            entry = self.store.get(entry_id)
            if entry is None:
                missing.append(Missing(entry_id, self.explain_missing(entry_id)))
            else:
                found.append(entry)
        return found, missing

    def explain_missing(self, entry_id: str) -> str:
        """Why an id is not in the queue, from the audit log when it says."""
        for row in self.store.audit_log(limit=AUDIT_LOOKBACK):
            details = row.get("details") or {}
            action = row.get("action")
            at = row.get("at", "?")
            if action == "resolved" and details.get("id") == entry_id:
                return f"already resolved ({details.get('how', '?')}) at {at}"
            if entry_id in (details.get("superseded_ids") or []):
                return f"already resolved (skipped: superseded) by {row.get('who')} at {at}"
            if action == "drop" and entry_id in (details.get("ids") or []):
                return f"dropped by {row.get('who')} at {at}"
        return "not found"

    # -- replay -------------------------------------------------------------------------
    def superseded_by(self, entry: DeadLetter) -> int | None:
        """The newer source version of the same record, when one was produced."""
        event = entry.delivery.event
        latest = self.state.latest(event.source, event.entity, event.key)
        return latest if latest is not None and latest > event.source_version else None

    def plan(self, entries: Iterable[DeadLetter], missing: Sequence[Missing] = ()) -> ReplayPlan:
        """Decide, for each entry, replay or skip as superseded (nothing is changed)."""
        plan = ReplayPlan(missing=list(missing))
        for entry in entries:
            latest = self.superseded_by(entry)
            if latest is not None:
                plan.entries.append(
                    PlannedEntry(
                        entry,
                        "superseded",
                        latest,
                        f"a newer change (version {latest}) of this record exists",
                    )
                )
                continue
            event = entry.delivery.event
            ledger = self.state.ledger_get(entry.target, event.entity, event.key)
            note = ""
            if ledger is not None and ledger.fingerprint == event.fingerprint:
                note = "already in the target: the worker will skip it"
            plan.entries.append(PlannedEntry(entry, "replay", None, note))
        return plan

    def replay(
        self,
        plan: ReplayPlan,
        *,
        batch: int = 100,
        progress: Callable[[int], None] | None = None,
        criteria: dict[str, Any] | None = None,
    ) -> ReplayReport:
        """Resolve superseded entries and re-publish the others; returns what was done."""
        if self._publish is None:
            raise RuntimeError("this DlqOperator has no publisher")
        report = ReplayReport(missing=list(plan.missing))
        for planned in plan.superseded:
            if self._resolve_superseded(planned.entry):
                report.superseded.append(planned)
                self._trace("replayed", [planned.entry], superseded_by=planned.latest_version)
            else:
                report.vanished.append(planned.entry.id)
            if progress:
                progress(1)
        todo = plan.to_replay
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            deliveries, forgotten, sent = self._redeliveries(chunk, report)
            # Its time is taken before publishing: a worker may apply the replay at once.
            sent_at = self.clock()
            try:
                if deliveries:
                    self._publish(deliveries)
            except Exception:
                for delivery in forgotten:  # not sent: the dead letter stands, counted
                    self.state.record_outcome(
                        delivery.target,
                        delivery.delivery_id,
                        "dead_lettered",
                        also=(f"{delivery.event.flow}.dead_lettered",),
                    )
                self._audit_replay(report, criteria)
                raise
            report.replayed.extend(sent)
            self._trace("replayed", sent, sent_at)
            if progress:
                progress(len(chunk))
        self._audit_replay(report, criteria)
        return report

    def _redeliveries(
        self, chunk: Sequence[PlannedEntry], report: ReplayReport
    ) -> tuple[list[Delivery], list[Delivery], list[DeadLetter]]:
        """A chunk's deliveries to publish again, those forgotten as dead-lettered, their entries.

        A forgotten outcome is counted again should the publish fail; an entry resolved
        meanwhile is reported vanished.
        """
        deliveries: list[Delivery] = []
        forgotten: list[Delivery] = []
        sent: list[DeadLetter] = []
        for planned in chunk:
            entry = self.store.get(planned.entry.id)
            if entry is None:
                report.vanished.append(planned.entry.id)
                continue
            # Counted before publishing: the worker may resolve (delete) it at once.
            entry.replays += 1
            self.store.update(entry)
            delivery = entry.delivery.model_copy(deep=True)
            delivery.replay_of = entry.id
            delivery.attempt = 0  # a fresh retry budget: the cause is believed fixed
            delivery.dependency_waits = 0
            delivery.rate_limited_waits = 0
            if self.state.forget_outcome(
                entry.target, delivery.delivery_id, "dead_lettered", flow=entry.flow
            ):
                forgotten.append(delivery)
            deliveries.append(delivery)
            sent.append(entry)
        return deliveries, forgotten, sent

    def _resolve_superseded(self, entry: DeadLetter) -> bool:
        """The engine's outcome for a superseded replay, without a trip through the queue."""
        if self.store.remove(entry.id) is None:
            return False
        delivery_id = entry.delivery.delivery_id
        flow = entry.flow
        if self.state.forget_outcome(entry.target, delivery_id, "dead_lettered", flow=flow):
            self.state.record_outcome(
                entry.target,
                delivery_id,
                "skipped",
                also=("skipped_superseded", f"{flow}.skipped", f"{flow}.skipped_superseded"),
            )
        return True

    def _audit_replay(self, report: ReplayReport, criteria: dict[str, Any] | None) -> None:
        if not (report.replayed or report.superseded):
            return
        self.store.audit(
            self.actor,
            "replay",
            len(report.replayed),
            {
                "ids": [e.id for e in report.replayed][:AUDIT_IDS],
                "superseded": len(report.superseded),
                "superseded_ids": [p.entry.id for p in report.superseded][:AUDIT_IDS],
                "criteria": criteria or {},
            },
        )

    def outcomes(self, replayed: Sequence[DeadLetter]) -> ReplayOutcomes:
        """Where each replayed entry stands now (applied, skipped, dead-lettered again)."""
        result = ReplayOutcomes()
        resolutions: dict[str, str] | None = None
        for entry in replayed:
            # A replay of an edited payload that fails again gets the id of its new delivery.
            renamed = entry_id_for(entry.target, entry.delivery.delivery_id)
            current = self.store.get(entry.id)
            if renamed != entry.id and self.store.get(renamed) is not None:
                result.failed_again.append(renamed)
                continue
            if current is not None:
                if current.dead_lettered_count > entry.dead_lettered_count:
                    result.failed_again.append(entry.id)
                else:
                    result.pending.append(entry.id)
                continue
            if resolutions is None:
                resolutions = self._resolutions()
            how = resolutions.get(entry.id, "applied")
            if how == "applied":
                result.applied.append(entry.id)
            else:
                result.skipped.append((entry.id, how.removeprefix("skipped: ")))
        return result

    def _resolutions(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for row in self.store.audit_log(limit=AUDIT_LOOKBACK):
            details = row.get("details") or {}
            if row.get("action") == "resolved" and "id" in details:
                found.setdefault(str(details["id"]), str(details.get("how", "applied")))
            elif row.get("action") == "drop":
                for dropped in details.get("ids") or []:
                    found.setdefault(str(dropped), f"dropped by {row.get('who')}")
        return found

    def wait(
        self,
        replayed: Sequence[DeadLetter],
        *,
        timeout_s: float,
        poll_s: float = 0.5,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayOutcomes:
        """Poll until every replayed entry has an outcome, or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        reported = 0
        while True:
            outcomes = self.outcomes(replayed)
            if progress and outcomes.done > reported:
                progress(outcomes.done - reported)
                reported = outcomes.done
            if not outcomes.pending or time.monotonic() >= deadline:
                return outcomes
            time.sleep(poll_s)

    # -- edit ---------------------------------------------------------------------------
    def edit(
        self,
        entry_id: str,
        *,
        payload: dict[str, Any] | None = None,
        sets: Sequence[str] = (),
    ) -> EditResult | None:
        """Replace the payload (or set fields of it); None when nothing changed.

        Raises :class:`EditError` with every reason when the result is not a valid
        canonical record; nothing is stored then.
        """
        entry = self.store.get(entry_id)
        if entry is None:
            raise EditError(f"dead letter {entry_id}: {self.explain_missing(entry_id)}")
        event = entry.delivery.event
        edited = edit_event(entry_id, event, payload, sets)
        if edited is None:
            return None
        new_event, changed = edited
        old_delivery_id = entry.delivery.delivery_id
        entry.delivery = entry.delivery.model_copy(update={"event": new_event})
        self.store.update(entry)
        # The counted outcome follows the delivery to its new id (the replay forgets it).
        if self.state.forget_outcome(
            entry.target, old_delivery_id, "dead_lettered", flow=entry.flow
        ):
            self.state.record_outcome(
                entry.target,
                entry.delivery.delivery_id,
                "dead_lettered",
                also=(f"{entry.flow}.dead_lettered",),
            )
        self.store.audit(
            self.actor,
            "edit",
            1,
            {
                "id": entry.id,
                "fields": changed,
                "event_id": new_event.event_id,
                "previous_event_id": event.event_id,
            },
        )
        self._trace("edited", [entry], fields=changed)
        return EditResult(entry, changed, event.event_id)

    # -- drop ---------------------------------------------------------------------------
    def drop(self, entries: Sequence[DeadLetter], criteria: dict[str, Any] | None = None) -> int:
        """Delete entries for good (their outcome stays dead-lettered); returns how many."""
        dropped = [e.id for e in entries if self.store.remove(e.id) is not None]
        self._trace("dropped", [e for e in entries if e.id in set(dropped)])
        if dropped:
            self.store.audit(
                self.actor,
                "drop",
                len(dropped),
                {"ids": dropped[:AUDIT_IDS], "criteria": criteria or {}},
            )
        return len(dropped)

    # -- export / import ----------------------------------------------------------------
    def export_lines(
        self, entries: Sequence[DeadLetter], criteria: dict[str, Any] | None = None
    ) -> Iterator[str]:
        """One JSON line per entry (audit-logged once all are written)."""
        for entry in entries:
            yield entry.model_dump_json()
        self.store.audit(self.actor, "export", len(entries), {"criteria": criteria or {}})

    def import_entries(self, entries: Sequence[DeadLetter], source: str = "") -> tuple[int, int]:
        """Store validated entries; returns (added, replaced).

        Each imported delivery is counted as produced and dead-lettered (once, by its id),
        so that replaying it later keeps the accounting exact in this installation too.
        """
        added = replaced = 0
        for entry in entries:
            if self.store.get(entry.id) is None:
                added += 1
            else:
                replaced += 1
            self.store.update(entry)
            self.state.mark_produced(entry.target, entry.delivery.delivery_id, flow=entry.flow)
            self.state.record_outcome(
                entry.target,
                entry.delivery.delivery_id,
                "dead_lettered",
                also=(f"{entry.flow}.dead_lettered",),
            )
        self.store.audit(
            self.actor,
            "import",
            len(entries),
            {"added": added, "replaced": replaced, "source": source},
        )
        return added, replaced


def entry_as_dict(entry: DeadLetter, now: float | None = None) -> dict[str, Any]:
    """An entry as JSON-ready data, with its age."""
    data = entry.model_dump(mode="json")
    now = time.time() if now is None else now
    data["age_s"] = round(max(0.0, now - entry.last_failure_at.timestamp()), 3)
    return data


def isoformat(value: datetime) -> str:
    return value.isoformat(timespec="seconds")
