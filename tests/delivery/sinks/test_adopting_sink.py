"""Issue 19: a sink whose flow has match rules consults the adoption table before a create."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import fakeredis
import pytest

from delivery.batch import BulkSink
from delivery.engine import ApplyContext, ApplyResult
from delivery.sinks.adopting import ADOPTED, AdoptingBulkSink, AdoptingSink, AdoptionReviewError
from delivery.sinks.adoption import TargetRecord
from delivery.sinks.view import Observed, View, ViewableSink
from erpsync.errors import DependencyError
from erpsync.events import ChangeEvent
from state.adoption import REVIEW_CODE, AdoptionTable, Candidate, Entry
from state.keys import Keys
from state.store import LedgerEntry
from tests.support import make_event


class Recorded:
    """A target's sink that records what it was asked (a bulk and viewable one)."""

    target = "hipe"

    def __init__(self) -> None:
        self.applied: list[tuple[str, LedgerEntry | None]] = []
        self.items: list[str] = []

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        self.applied.append((event.key, context.ledger))
        created = context.ledger is None
        return ApplyResult("created" if created else "updated", target_id="99")

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> str:
        self.items.append(event.key)
        return event.key

    def apply_bulk(self, items: Sequence[Any], keepalive: Callable[[], None]) -> list[Any]:
        return [ApplyResult("created", target_id="1") for _ in items]

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        return {"name": payload["name"]}

    def observed(self, entity: str) -> Iterator[Observed]:
        return iter(())

    def known_limits(self, entity: str) -> list[str]:
        return []


class Linker:
    target = "hipe"

    def __init__(self) -> None:
        self.links: list[tuple[str, str, str | None]] = []

    def unlinked(self, entity: str) -> Iterator[Observed]:
        return iter(())

    def find(self, target_id: str) -> TargetRecord | None:
        return None

    def link(self, key: str, target_id: str, name: str | None) -> None:
        self.links.append((key, target_id, name))


def event(key: str, flow: str = "customers", operation: str = "upsert") -> ChangeEvent:
    payload = {"key": key, "name": f"Company {key}", "active": True}
    return make_event(payload, flow=flow, operation=operation)


def context(ledger: LedgerEntry | None = None) -> ApplyContext:
    return ApplyContext(ledger=ledger, parent=None, lookup=lambda entity, key: None)


@pytest.fixture
def table() -> AdoptionTable:
    return AdoptionTable(fakeredis.FakeRedis(decode_responses=True), Keys("t"))


def test_a_new_record_waits_until_the_table_is_prepared(table: AdoptionTable) -> None:
    inner, linker = Recorded(), Linker()
    sink = AdoptingBulkSink(inner, linker, table, {"customers": ("email",)})
    with pytest.raises(DependencyError) as waited:
        sink.apply(event("C1"), context())
    assert waited.value.vendor_code == "adoption-not-prepared"
    assert inner.applied == []
    assert linker.links == []


def test_the_table_decides_adopt_hold_or_create(table: AdoptionTable) -> None:
    inner, linker = Recorded(), Linker()
    sink = AdoptingBulkSink(inner, linker, table, {"customers": ("email",)})
    candidates = [Candidate("7", "Dupont", "tax_number"), Candidate("8", "DUPONT", "tax_number")]
    table.store("customers", "hipe", [
        ("C1", Entry("adopt", target_id="42", name="Dupont inc", rule="email")),
        ("C2", Entry("review", candidates=candidates, reason="2 target records match")),
        ("C3", Entry("create", candidates=candidates)),
    ])  # fmt: skip

    adopted = sink.apply(event("C1"), context())
    assert linker.links == [("C1", "42", "Dupont inc")]
    assert inner.applied[0][0] == "C1"
    assert inner.applied[0][1] is not None
    assert inner.applied[0][1].target_id == "42"
    assert (adopted.action, adopted.target_id, adopted.counts) == ("updated", "99", (ADOPTED,))

    with pytest.raises(AdoptionReviewError) as held:
        sink.apply(event("C2"), context())
    assert held.value.vendor_code == REVIEW_CODE
    assert "7 (tax_number), 8 (tax_number)" in str(held.value)
    assert "erpsync adopt link C2" in (held.value.hint or "")

    assert sink.apply(event("C3"), context()).action == "created"  # the operator's create
    assert sink.apply(event("C4"), context()).action == "created"  # no entry: created
    assert [k for k, _ in inner.applied] == ["C1", "C3", "C4"]
    assert linker.links == [("C1", "42", "Dupont inc")]

    # in bulk, adopted and held records take the single path; the others ride the bulk call
    assert sink.bulk_item(event("C1"), context()) is None
    assert sink.bulk_item(event("C2"), context()) is None
    assert sink.bulk_item(event("C3"), context()) == "C3"
    assert sink.bulk_item(event("C4"), context()) == "C4"


def test_known_records_other_flows_and_deletions_never_read_the_table(
    table: AdoptionTable,
) -> None:
    inner, linker = Recorded(), Linker()
    sink = AdoptingSink(inner, linker, table, {"customers": ("email",)})  # never prepared
    known = LedgerEntry(fingerprint="f", source_version=1, target_id="5")
    assert sink.apply(event("C1"), context(known)).action == "updated"
    assert sink.apply(event("C2", flow="other"), context()).action == "created"
    assert sink.apply(event("C3", operation="delete"), context()).action == "created"
    assert linker.links == []


def test_the_wrapper_is_still_the_targets_sink(table: AdoptionTable) -> None:
    sink = AdoptingBulkSink(Recorded(), Linker(), table, {"customers": ("email",)})
    assert isinstance(sink, BulkSink)
    assert isinstance(sink, ViewableSink)
    assert sink.target == "hipe"
    assert sink.expected("customer", {"name": "A"}) == {"name": "A"}


def test_the_table_keeps_decisions_and_lists_reviews(table: AdoptionTable) -> None:
    assert not table.prepared("customers", "hipe")
    held = Entry("review", candidates=[Candidate("7", None, "email")], reason="why")
    assert table.store("customers", "hipe", [("C2", held), ("C1", Entry("adopt", "3"))]) == 2
    assert table.prepared("customers", "hipe")
    assert [(t, k, e.reason) for t, k, e in table.reviews("customers", ["hipe", "atollon"])] == [
        ("hipe", "C2", "why")
    ]
    table.set("customers", "hipe", "C2", Entry("create", decided_by="ops"))
    found = table.get("customers", "hipe", "C2")
    assert found is not None
    assert (found.decision, found.decided_by) == ("create", "ops")
    assert found.decided_at > 0
    assert table.reviews("customers", ["hipe"]) == []
