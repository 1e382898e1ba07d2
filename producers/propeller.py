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
``sourceId`` under our source), so the targets link it to the record erpsync copied there;
a parent of Propeller's own is keyed in Propeller's namespace. The search names a parent by
id only: the stream remembers the keys of the companies it pages (bounded) and reads a
parent it has not seen by id, once.
"""

from __future__ import annotations

from collections import OrderedDict
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
#: Propeller ids whose erpsync key the stream remembers (least recently used out)
KNOWN_KEYS = 50_000


def propeller_key(company_id: object) -> str:
    """The key of a Propeller company in erpsync (Propeller's namespace)."""
    return record_key("propeller", "customer", str(company_id))


def written_by_erpsync(company: PropellerCompany, source: str) -> bool:
    """True when erpsync wrote the company (it carries a ``sourceId`` under our ``source``)."""
    return company.source_id_for(source) is not None


def company_key(company: PropellerCompany, source: str) -> str:
    """The key erpsync knows a company by: ours by its ``sourceId``, else Propeller's."""
    return company.source_id_for(source) or propeller_key(company.id)


class ParentKeys:
    """Propeller ids -> the erpsync key of each company, remembered (bounded) or read by id."""

    def __init__(self, client: PropellerClient | None, source: str, size: int = KNOWN_KEYS) -> None:
        self.client = client
        self.source = source
        self.size = size
        self.known: OrderedDict[int, str] = OrderedDict()

    def remember(self, company: PropellerCompany) -> None:
        self.known[company.id] = company_key(company, self.source)
        self.known.move_to_end(company.id)
        if len(self.known) > self.size:
            self.known.popitem(last=False)

    def key_of(self, company: PropellerCompany) -> str | None:
        """The erpsync key of the company's parent (None: no parent)."""
        parent = company.parent
        if parent is None:
            return None
        if parent.source_id is not None and parent.source == self.source:
            return parent.source_id  # named in full: a company erpsync wrote
        if parent.id is None:
            return None
        if parent.id not in self.known:
            found = self.client.get_company_by_id(parent.id) if self.client else None
            if found is None:  # gone (or not asked): named in Propeller's namespace
                return propeller_key(parent.id)
            self.remember(found)
        self.known.move_to_end(parent.id)
        return self.known[parent.id]


def company_payload(company: PropellerCompany, parents: ParentKeys) -> dict[str, Any]:
    """A Propeller company of its own as a canonical company (keyed in its namespace)."""
    return {
        "key": propeller_key(company.id),
        "name": (company.name or "").strip() or None,
        "parent_key": parents.key_of(company),
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
    _parents: ParentKeys | None = field(default=None, init=False)

    def load_bookmark(self, bookmark: str | None) -> None:
        self._since = datetime.fromisoformat(bookmark) if bookmark else EPOCH
        self._newest = None

    def bookmark(self) -> str | None:
        newest = self._newest or (self._since if self._since != EPOCH else None)
        return newest.isoformat() if newest is not None else None

    def pages(self) -> Iterator[list[SourceRecord]]:
        since = max(EPOCH, self._since - timedelta(seconds=self.lookback_s))
        if self._parents is None:
            self._parents = ParentKeys(self.client, self.source_name)
        page: list[SourceRecord] = []
        own_writes = 0
        for company in self.client.search_companies(modified_from=since):
            if company.date_modified is not None and (
                self._newest is None or company.date_modified > self._newest
            ):
                self._newest = company.date_modified
            self._parents.remember(company)
            if written_by_erpsync(company, self.source_name):
                own_writes += 1
                continue
            payload = company_payload(company, self._parents)
            page.append(SourceRecord(payload["key"], payload, payload["parent_key"]))
            if len(page) >= self.page_size:
                yield page
                page = []
        if page:
            yield page
        if own_writes:
            log.info("producer.own_writes_left_out", stream=self.name, companies=own_writes)
