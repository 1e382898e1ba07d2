"""Propeller stream: companies changed since a ``dateModified`` cursor (with a lookback).

Propeller's ``POST /companies/search`` filters on ``dateModified`` at one-second resolution,
so several companies share a timestamp and may straddle pages; re-reading a lookback window
and dropping what the fingerprints already know makes the cursor lose nothing and repeat
nothing. Deleted companies leave the search results, so this stream cannot see deletions.

Keys are in Propeller's namespace (``propeller:<id>``, :func:`erpsync.keys.record_key`), so
the ledgers, locks and external ids of these companies never meet the ERP's.

**erpsync's own writes are not changes of Propeller.** A company that carries a ``sourceId``
under erpsync's own ``source`` (``systems.propeller.source``) was written by erpsync for
another flow (the ERP's customers) and belongs to that flow: it is never emitted, so nothing
erpsync writes comes back as a change and loops. An operator's edit in Propeller to such a
company is therefore not a Propeller change either: the company's source of truth stays the
system that erpsync copied it from, and the edit is drift of the target, which
``erpsync reconcile`` reports and ``--repair`` reverts. The rule needs no memory of what was
written (a fingerprint compared with the last write could not tell our write from an edit
made in the same second, and would re-emit whatever Propeller normalises differently).

A company of Propeller's own whose parent erpsync wrote gets that parent's key (its
``sourceId`` under our source) when Propeller names it in the search result; when Propeller
gives the parent's id only, the parent is keyed in Propeller's namespace, which no flow
emits for a company erpsync wrote, so such a child waits for its parent in the targets and
is dead-lettered as a missing parent (a known limit: the search expands ``sources`` only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from adapters.propeller import PropellerClient, PropellerCompany
from erpsync.keys import record_key
from producers.base import CursorStream, SourceRecord

log = structlog.get_logger("erpsync.producer")

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def propeller_key(company_id: object) -> str:
    """The key of a Propeller company in erpsync (Propeller's namespace)."""
    return record_key("propeller", "customer", str(company_id))


def written_by_erpsync(company: PropellerCompany, source: str) -> bool:
    """True when erpsync wrote the company (it carries a ``sourceId`` under our ``source``)."""
    return company.source_id_for(source) is not None


def _parent_key(company: PropellerCompany, source: str) -> str | None:
    parent = company.parent
    if parent is None:
        return None
    if parent.source_id is not None and parent.source == source:
        return parent.source_id  # a company erpsync wrote: the key it was written under
    return propeller_key(parent.id) if parent.id is not None else None


def company_payload(company: PropellerCompany, source: str) -> dict[str, Any]:
    """A Propeller company of its own as a canonical company (keyed in its namespace)."""
    return {
        "key": propeller_key(company.id),
        "name": (company.name or "").strip() or None,
        "parent_key": _parent_key(company, source),
        "email": company.email,
        "phone": company.phone,
        "tax_number": company.tax_number,
        "language": company.language,
        "active": True,
        "address": None,
        "custom": {},
    }


@dataclass
class PropellerCompanies(CursorStream):
    """Propeller companies by ``dateModified`` (those erpsync wrote left out)."""

    client: PropellerClient = field(kw_only=True)
    source_name: str = field(default="ERPSYNC", kw_only=True)
    page_size: int = field(default=100, kw_only=True)
    _since: datetime = field(default=EPOCH, init=False)
    _newest: datetime | None = field(default=None, init=False)

    def load_bookmark(self, bookmark: str | None) -> None:
        self._since = datetime.fromisoformat(bookmark) if bookmark else EPOCH
        self._newest = None

    def bookmark(self) -> str | None:
        newest = self._newest or (self._since if self._since != EPOCH else None)
        return newest.isoformat() if newest is not None else None

    def pages(self) -> Iterator[list[SourceRecord]]:
        since = max(EPOCH, self._since - timedelta(seconds=self.lookback_s))
        page: list[SourceRecord] = []
        own_writes = 0
        for company in self.client.search_companies(modified_from=since):
            if company.date_modified is not None and (
                self._newest is None or company.date_modified > self._newest
            ):
                self._newest = company.date_modified
            if written_by_erpsync(company, self.source_name):
                own_writes += 1
                continue
            payload = company_payload(company, self.source_name)
            page.append(SourceRecord(payload["key"], payload, payload["parent_key"]))
            if len(page) >= self.page_size:
                yield page
                page = []
        if page:
            yield page
        if own_writes:
            log.info("producer.own_writes_left_out", stream=self.name, companies=own_writes)
