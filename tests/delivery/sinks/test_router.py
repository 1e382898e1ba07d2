"""One target, several sinks: the router sends each entity to the sink that handles it.

Atollon takes customers and products from one sink and invoice states from another; the
engine and reconcile see one sink per target, the router. What it promises: an entity goes
to the first sink that handles it (the first sink when none does), ``needs_parent`` is that
sink's answer, closing closes every sink, and reconcile reads each entity from its own
sink, an entity whose sink cannot show its records being "not viewable" (reconcile then
reports the target not checked), never an empty target.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from delivery.batch import BulkSink
from delivery.engine import ApplyContext, ApplyResult
from delivery.sinks.router import NotViewableError, SinkRouter, ViewableSinkRouter, route
from delivery.sinks.view import Observed, View, ViewableSink
from erpsync.events import ChangeEvent
from tests.support import customer_event, make_event

CONTEXT = ApplyContext(ledger=None, parent=None, lookup=lambda entity, key: None)


class Recording:
    """A sink for ``entities`` that records what it applied and whether it was closed."""

    def __init__(self, name: str, entities: set[str], *, parents: bool = False) -> None:
        self.target = "atollon"
        self.name = name
        self.entities = entities
        self.parents = parents
        self.applied: list[tuple[str, str]] = []
        self.closed = False

    def handles(self, entity: str) -> bool:
        return entity in self.entities

    def needs_parent(self, event: ChangeEvent) -> bool:
        return self.parents

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        self.applied.append((event.entity, event.key))
        return ApplyResult("created", target_id=f"{self.name}-{event.key}")

    def close(self) -> None:
        self.closed = True


class Shown(Recording):
    """A recording sink whose records can be read back (a :class:`ViewableSink`)."""

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        return {"name": payload.get("name"), "from": self.name}

    def observed(self, entity: str) -> Iterator[Observed]:
        yield Observed(key="C1", target_id=f"{self.name}-C1", fields={"name": "Acme"})

    def known_limits(self, entity: str) -> list[str]:
        return [f"{self.name}-limit"]


def invoice_event(number: str = "F1") -> ChangeEvent:
    return make_event({"key": number, "number": number}, flow="invoices", entity="invoice")


def test_each_entity_is_applied_by_the_sink_that_handles_it() -> None:
    contacts = Recording("contacts", {"customer", "product"})
    invoices = Recording("invoices", {"invoice"})
    router = SinkRouter("atollon", [contacts, invoices])
    assert router.apply(customer_event("C1"), CONTEXT) == ApplyResult(
        "created", target_id="contacts-C1"
    )
    assert router.apply(invoice_event("F7"), CONTEXT) == ApplyResult(
        "created", target_id="invoices-F7"
    )
    assert contacts.applied == [("customer", "C1")]
    assert invoices.applied == [("invoice", "F7")]
    assert (router.handles("product"), router.handles("invoice"), router.handles("billing")) == (
        True,
        True,
        False,
    )


def test_an_entity_no_sink_handles_goes_to_the_first_sink() -> None:
    first, second = Recording("first", {"customer"}), Recording("second", {"invoice"})
    router = SinkRouter("atollon", [first, second])
    assert router.sink_for("billing") is first
    router.apply(make_event({"key": "A1"}, flow="billing", entity="billing"), CONTEXT)
    assert (first.applied, second.applied) == ([("billing", "A1")], [])


def test_needs_parent_is_the_answer_of_the_entitys_sink() -> None:
    router = SinkRouter(
        "atollon",
        [Recording("contacts", {"customer"}, parents=True), Recording("invoices", {"invoice"})],
    )
    assert router.needs_parent(customer_event("C2", parent="C1")) is True
    assert router.needs_parent(invoice_event()) is False


def test_closing_the_router_closes_every_sink_that_can_be_closed() -> None:
    class Unclosable:
        target = "atollon"

        def handles(self, entity: str) -> bool:
            return entity == "product"

        def needs_parent(self, event: ChangeEvent) -> bool:
            return False

        def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
            return ApplyResult("created")

    contacts, invoices = Recording("contacts", {"customer"}), Recording("invoices", {"invoice"})
    SinkRouter("atollon", [contacts, Unclosable(), invoices]).close()
    assert (contacts.closed, invoices.closed) == (True, True)


def test_a_router_needs_a_sink() -> None:
    with pytest.raises(ValueError, match="at least one sink"):
        SinkRouter("atollon", [])


def test_route_keeps_a_lone_sink_and_puts_several_behind_a_viewable_router() -> None:
    alone = Recording("contacts", {"customer"})
    assert route("atollon", [alone]) is alone
    routed = route("atollon", [alone, Recording("invoices", {"invoice"})])
    assert isinstance(routed, ViewableSinkRouter)
    assert isinstance(routed, ViewableSink), "reconcile reads a routed target"
    assert routed.target == "atollon"


def test_reconcile_reads_each_entity_from_its_own_sink() -> None:
    router = ViewableSinkRouter(
        "atollon", [Shown("contacts", {"customer"}), Shown("invoices", {"invoice"})]
    )
    assert router.expected("invoice", {"name": "F1"}) == {"name": "F1", "from": "invoices"}
    assert router.expected("customer", {"name": "Acme"}) == {"name": "Acme", "from": "contacts"}
    assert list(router.observed("customer")) == [
        Observed(key="C1", target_id="contacts-C1", fields={"name": "Acme"})
    ]
    assert router.known_limits("invoice") == ["invoices-limit"]


def test_an_entity_whose_sink_cannot_show_its_records_is_not_viewable_never_empty() -> None:
    router = ViewableSinkRouter(
        "atollon", [Shown("contacts", {"customer"}), Recording("invoices", {"invoice"})]
    )
    with pytest.raises(NotViewableError, match="atollon cannot show its invoice records"):
        router.expected("invoice", {"number": "F1"})
    with pytest.raises(NotViewableError, match="atollon cannot show its invoice records"):
        router.observed("invoice")
    assert router.known_limits("invoice") == []
    assert router.known_limits("customer") == ["contacts-limit"]


class Bulk(Recording):
    """A recording sink with a bulk endpoint (a :class:`~delivery.batch.BulkSink`)."""

    def __init__(self, name: str, entities: set[str]) -> None:
        super().__init__(name, entities)
        self.sent: list[list[Any]] = []

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> Any | None:
        return ("row", event.key)

    def apply_bulk(self, items: Any, keepalive: Any) -> list[Any]:
        self.sent.append(list(items))
        return [ApplyResult("created", target_id=str(key)) for _, key in items]


def test_a_router_keeps_its_bulk_sinks_path_for_that_sinks_entities_only() -> None:
    # HIPE: companies imported in bulk beside contacts applied one at a time
    companies, people = Bulk("companies", {"customer"}), Recording("people", {"person"})
    router = route("hipe", [companies, people])
    assert isinstance(router, BulkSink)
    assert not isinstance(route("atollon", [Recording("a", {"customer"}), people]), BulkSink)
    person = make_event({"key": "P1"}, entity="person")
    assert router.bulk_item(person, CONTEXT) is None, "a person takes the single path"
    item = router.bulk_item(customer_event("C1"), CONTEXT)
    assert item == ("row", "C1")
    results = router.apply_bulk([item], lambda: None)
    assert (companies.sent, results) == ([[("row", "C1")]], [ApplyResult("created", "C1")])
    router.apply(person, CONTEXT)
    assert people.applied == [("person", "P1")]
