"""A sink that adopts: before creating a record the target does not hold under our external
id, it asks the flow's adoption table (:mod:`state.adoption`) what to do.

Where adoption happens, and why here: the rules that decide (match rules, normal forms,
ambiguity both ways) need the whole source and the whole target at once, one target
record claimed by two source records being ambiguous for both. A sink sees one record;
a look-up per create (a search by tax number, e-mail and name before each create) would
cost one to three calls per new record at every target (a first load of 20,000 customers:
up to 60,000 more calls, against 20 bulk calls) and still could not see the second
claimant. So the planner (:mod:`producers.plan`) decides once, before the flow's first
run, and stores its decisions; the pipeline's rules stay where they are (the engine and
the batch path are untouched: this wrapper sits in front of the target's own sink). Its
cost: one Redis read per record that has no ledger entry at that target (none once the
record was applied).

For a record with no ledger at this target, when its flow has match rules for it:

* the table not prepared yet: wait (a dependency: retried until the producer prepared it);
* ``adopt``: link the target record (:mod:`delivery.sinks.adoption`), then apply the change
  as an update of that record (the action ``updated``, counted ``adopted`` too);
* ``review``: dead-letter with code ``adoption-review`` (``erpsync adopt review``);
* ``create`` or no entry: the sink's own apply (a create).

In bulk, records with an ``adopt`` or ``review`` entry take the single path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from delivery.batch import BulkItemResult, BulkSink
from delivery.engine import ApplyContext, ApplyResult, Sink
from delivery.sinks.adoption import Adopter, adopter_for
from erpsync.errors import DependencyError, PermanentError
from erpsync.events import ChangeEvent
from state.adoption import REVIEW_CODE, AdoptionTable, Entry
from state.store import LedgerEntry

#: the counter an adoption bumps besides ``action_updated`` (and ``<flow>.adopted``)
ADOPTED = "adopted"


class AdoptionReviewError(PermanentError):
    """Several target records match, or one matches several source records: an operator
    decides (``erpsync adopt link`` / ``create``)."""


class AdoptingSink:
    """The target's sink, behind its flows' adoption tables."""

    def __init__(
        self,
        sink: Sink,
        adopter: Adopter,
        table: AdoptionTable,
        rules: Mapping[str, tuple[str, ...]],
    ) -> None:
        self.sink = sink
        self.target = sink.target
        self.adopter = adopter
        self.table = table
        #: per flow, its match rules for this target (flows without rules not listed)
        self.rules = dict(rules)

    def __getattr__(self, name: str) -> Any:
        # everything else (views, settings, create windows...) is the sink's own
        return getattr(self.sink, name)

    def handles(self, entity: str) -> bool:
        return self.sink.handles(entity)

    def needs_parent(self, event: ChangeEvent) -> bool:
        return self.sink.needs_parent(event)

    def _entry(self, event: ChangeEvent, context: ApplyContext) -> Entry | None:
        """The table's entry of a record new to this target (None: apply as usual)."""
        if event.flow not in self.rules or event.operation != "upsert":
            return None
        if context.ledger is not None:
            return None  # a reconcile's forced repair too: a held record stays held
        if not self.table.prepared(event.flow, self.target):
            raise DependencyError(
                f"the adoption table of flow {event.flow} at {self.target} is not prepared",
                system=self.target,
                operation="adopt",
                vendor_code="adoption-not-prepared",
                hint=f"the producer prepares it before the flow's first run (erpsync plan "
                f"{event.flow} shows it); the record waits meanwhile",
            )
        return self.table.get(event.flow, self.target, event.key)

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        entry = self._entry(event, context)
        if entry is None or entry.decision == "create":
            return self.sink.apply(event, context)
        if entry.decision == "review":
            candidates = ", ".join(f"{c.target_id} ({c.rule})" for c in entry.candidates)
            raise AdoptionReviewError(
                f"{event.key} is not adopted at {self.target}: {entry.reason or 'ambiguous'}"
                f"; candidates {candidates or 'none'}",
                system=self.target,
                operation="adopt",
                vendor_code=REVIEW_CODE,
                hint=f"erpsync adopt review; then erpsync adopt link {event.key} TARGET_ID "
                f"--target {self.target}, or erpsync adopt create {event.key} --target "
                f"{self.target}",
            )
        assert entry.target_id is not None  # noqa: S101 (an adopt entry names its record)
        self.adopter.link(event.key, entry.target_id, entry.name)
        # from here the record is the target's under our key: an update, everything written
        linked = LedgerEntry(fingerprint="", source_version=0, target_id=entry.target_id)
        result = self.sink.apply(event, dataclasses.replace(context, ledger=linked))
        return dataclasses.replace(result, action="updated", counts=(*result.counts, ADOPTED))

    def close(self) -> None:
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()


class AdoptingBulkSink(AdoptingSink):
    """An adopting sink whose target takes many records in one call."""

    sink: BulkSink

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> Any | None:
        entry = self._entry(event, context)
        if entry is not None and entry.decision != "create":
            return None  # adopted or held: the single path
        return self.sink.bulk_item(event, context)

    def apply_bulk(
        self, items: Sequence[Any], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        return self.sink.apply_bulk(items, keepalive)


def adopting(sink: Sink, table: AdoptionTable | None, rules: Mapping[str, tuple[str, ...]]) -> Sink:
    """``sink`` behind the adoption tables of the flows that have match rules for it (the
    sink as it is when none has, or its records cannot be adopted)."""
    adopter = adopter_for(sink)
    if table is None or not rules or adopter is None:
        return sink
    if isinstance(sink, BulkSink):
        return AdoptingBulkSink(sink, adopter, table, rules)
    return AdoptingSink(sink, adopter, table, rules)
