"""One target, several sinks: each entity applied by the sink that handles it.

A worker has one sink per target (:func:`delivery.sinks.build_sinks`); a target that
receives entities of different flows from different sink classes (Atollon: customers and
products from :class:`~delivery.sinks.atollon.AtollonSink`, invoice states from
:class:`~delivery.sinks.invoices.AtollonInvoiceSink`) gets a router in front of them.

The router is a :class:`~delivery.sinks.view.ViewableSink` for reconcile: an entity whose
sink cannot show its records has no known limits and an ``observed`` that raises
:class:`NotViewableError`, which reconcile reports as that target not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from delivery.batch import BulkItemResult, BulkSink
from delivery.engine import ApplyContext, ApplyResult, Sink
from delivery.sinks.view import Observed, View, ViewableSink
from erpsync.events import ChangeEvent


class SinkRouter:
    """Routes each entity to the first of ``sinks`` that handles it."""

    def __init__(self, target: str, sinks: Sequence[Sink]) -> None:
        if not sinks:
            raise ValueError("a router needs at least one sink")
        self.target = target
        self.sinks = list(sinks)

    def sink_for(self, entity: str) -> Sink:
        """The sink that applies ``entity`` (the first sink when none does)."""
        return next((s for s in self.sinks if s.handles(entity)), self.sinks[0])

    def handles(self, entity: str) -> bool:
        return any(s.handles(entity) for s in self.sinks)

    def needs_parent(self, event: ChangeEvent) -> bool:
        return self.sink_for(event.entity).needs_parent(event)

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        return self.sink_for(event.entity).apply(event, context)

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()


class NotViewableError(NotImplementedError):
    """The sink of an entity cannot show its records (reconcile: target not checked)."""


class ViewableSinkRouter(SinkRouter):
    """A router reconcile reads through: each entity's records from that entity's sink."""

    def _view(self, entity: str) -> ViewableSink | None:
        sink = self.sink_for(entity)
        return sink if isinstance(sink, ViewableSink) else None

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        found = self._view(entity)
        if found is None:
            raise NotViewableError(f"{self.target} cannot show its {entity} records yet")
        return found.expected(entity, payload)

    def observed(self, entity: str) -> Iterator[Observed]:
        found = self._view(entity)
        if found is None:
            raise NotViewableError(f"{self.target} cannot show its {entity} records yet")
        return found.observed(entity)

    def known_limits(self, entity: str) -> list[str]:
        found = self._view(entity)
        return [] if found is None else found.known_limits(entity)


class BulkSinkRouter(ViewableSinkRouter):
    """A router in front of one bulk-capable sink (HIPE's companies beside its contacts):
    the entities that sink applies keep its bulk path, the others take the single path."""

    def __init__(self, target: str, sinks: Sequence[Sink]) -> None:
        super().__init__(target, sinks)
        self.bulk = next(s for s in sinks if isinstance(s, BulkSink))

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> Any | None:
        if self.sink_for(event.entity) is not self.bulk:
            return None  # the single path, through the entity's own sink
        return self.bulk.bulk_item(event, context)

    def apply_bulk(
        self, items: Sequence[Any], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        return self.bulk.apply_bulk(items, keepalive)


def route(target: str, sinks: Sequence[Sink]) -> Sink:
    """One sink as it is; several behind a router (one that keeps a bulk path when one of
    them has it)."""
    if len(sinks) == 1:
        return sinks[0]
    if any(isinstance(s, BulkSink) for s in sinks):
        return BulkSinkRouter(target, sinks)
    return ViewableSinkRouter(target, sinks)
