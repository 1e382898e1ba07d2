"""Propeller stream: companies changed since a ``dateModified`` cursor (with a lookback).

Propeller's ``POST /companies/search`` filters on ``dateModified`` at one-second resolution,
so several companies share a timestamp and may straddle pages; re-reading a lookback window
and dropping what the fingerprints already know makes the cursor lose nothing and repeat
nothing. Deleted companies leave the search results, so this stream cannot see deletions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.propeller import PropellerClient, PropellerCompany
from producers.base import CursorStream, SourceRecord

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def company_payload(company: PropellerCompany, source: str) -> dict[str, Any]:
    """A Propeller company as a canonical company (keyed by Propeller's id)."""
    parent = company.parent
    parent_id = getattr(parent, "id", None) if parent is not None else None
    return {
        "key": str(company.id),
        "name": (company.name or "").strip() or None,
        "parent_key": str(parent_id) if parent_id is not None else None,
        "email": company.email,
        "phone": company.phone,
        "tax_number": company.tax_number,
        "language": company.language,
        "active": True,
        "address": None,
        "custom": {"source_id": company.source_id_for(source)}
        if company.source_id_for(source)
        else {},
    }


@dataclass
class PropellerCompanies(CursorStream):
    """Propeller companies by ``dateModified``."""

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
        for company in self.client.search_companies(modified_from=since):
            if company.date_modified is not None and (
                self._newest is None or company.date_modified > self._newest
            ):
                self._newest = company.date_modified
            payload = company_payload(company, self.source_name)
            page.append(SourceRecord(payload["key"], payload, payload["parent_key"]))
            if len(page) >= self.page_size:
                yield page
                page = []
        if page:
            yield page
