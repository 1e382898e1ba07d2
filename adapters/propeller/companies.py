"""Propeller companies, keyed by ``sourceId``: read, create, update, delete, bulk, search.

Companies are always addressed as ``/companies/sourceId/{sourceId}?source=…&language=…``
with the settings' ``source`` and ``language``, because ``sourceId`` alone is ambiguous as
soon as two systems or two languages write to one tenant (40005).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from adapters._http import unexpected_shape
from adapters.propeller._transport import BULK_MAX_ITEMS, PropellerTransport, _date
from adapters.propeller.models import (
    NOT_IN_BULK,
    BulkOutcome,
    PropellerAttributeValue,
    PropellerCompany,
    PropellerCompanyInput,
    PropellerDirective,
)


class CompanyCalls(PropellerTransport):
    """The company operations of :class:`adapters.propeller.client.PropellerClient`."""

    def _company_body(
        self,
        company: PropellerCompanyInput,
        operation: str,
        *,
        bulk: bool,
        contact_inline: bool = False,
    ) -> dict[str, Any]:
        if company.addresses and not bulk:
            raise ValueError(
                f"propeller {operation}: addresses are sent inline by upsert_companies_bulk "
                "only; use create_address or upsert_addresses_bulk"
            )
        if company.attributes and not bulk:
            raise ValueError(
                f"propeller {operation}: attributes are sent by the bulk endpoint only "
                "(upsert_companies_bulk or set_attributes)"
            )
        undocumented = sorted(
            name for name in NOT_IN_BULK if getattr(company, name) is not None and bulk
        )
        if undocumented and not contact_inline:
            raise ValueError(
                f"propeller {operation}: bulk items do not take {', '.join(undocumented)} "
                "(not in the endpoint reference's bulk fields); write them with "
                "update_company, or pass contact_inline=True (the integration guide's reading)"
            )
        body = company.to_json(exclude=None if bulk else {"addresses", "attributes"})
        body["source"] = company.source or self._settings.source
        body["language"] = company.language or self._settings.language
        return body

    def get_company(
        self, source_id: str, *, expands: Sequence[str] = ("sources",)
    ) -> PropellerCompany | None:
        """The company with this ``sourceId`` (settings' source and language), or None.

        ``expands``: ``sources`` (documented), ``parent`` (documented), ``attributes``
        (sandbox convention; a Propeller that ignores it answers without them).
        """
        operation = "get_company"
        params: dict[str, str | int] = dict(self._lookup_params())
        if expands:
            params["expands"] = ",".join(expands)
        payload = self._call(
            "GET",
            self._company_path(source_id),
            operation=operation,
            params=params,
            absent_code="40006",
        )
        if payload is None:
            return None
        return self._validate(PropellerCompany, self._data_object(payload, operation), operation)

    def get_company_by_id(self, company_id: int) -> PropellerCompany | None:
        """The company with this Propeller ``id`` (with its sources), or None."""
        operation = "get_company"
        payload = self._call(
            "GET",
            f"{self._prefix}/companies/id/{company_id}",
            operation=operation,
            params={"expands": "sources"},
            absent_code="40006",
        )
        if payload is None:
            return None
        return self._validate(PropellerCompany, self._data_object(payload, operation), operation)

    def link_company(self, company_id: int, source_id: str) -> None:
        """Give a company made without our key (by hand) our ``sourceId``, ``source`` and
        ``language``: ``PATCH /companies/id/{id}`` ("Update Company by lookup key", lookup
        key ``id``; ``sourceId`` and ``source`` are company fields). Later calls find it by
        that key. A ``sourceId`` another company holds already answers 40004."""
        self._call(
            "PATCH",
            f"{self._prefix}/companies/id/{company_id}",
            operation="link_company",
            body={
                "sourceId": source_id,
                "source": self._settings.source,
                "language": self._settings.language,
            },
        )

    def create_company(self, company: PropellerCompanyInput) -> PropellerCompany:
        """Create one company; an existing ``sourceId`` raises RecordExistsError (40004)."""
        operation = "create_company"
        body = self._company_body(company, operation, bulk=False)
        payload = self._call("POST", f"{self._prefix}/companies", operation=operation, body=body)
        data = self._data_object(payload, operation)
        # The reply documents the new id; the fields we sent fill in the rest.
        return self._validate(PropellerCompany, {**body, **data}, operation)

    def update_company(self, source_id: str, company: PropellerCompanyInput) -> PropellerCompany:
        """PATCH the given fields; an unknown ``sourceId`` raises RecordMissingError (40006)."""
        operation = "update_company"
        if company.source_id != source_id:
            raise ValueError(f"propeller {operation}: the input's sourceId differs from the key")
        body = self._company_body(company, operation, bulk=False)
        # The lookup key travels in the URL; only what changes goes in the body.
        for key in ("sourceId", "source"):
            body.pop(key, None)
        if company.language is None:
            body.pop("language", None)
        payload = self._call(
            "PATCH",
            self._company_path(source_id),
            operation=operation,
            params=self._lookup_params(),
            body=body,
        )
        data = self._data_object(payload, operation)
        if "id" not in data:
            found = self.get_company(source_id)
            if found is None:
                raise unexpected_shape(self._table, operation, "updated company not found again")
            return found
        merged = {"sourceId": source_id, "source": self._settings.source, **body, **data}
        return self._validate(PropellerCompany, merged, operation)

    def detach_parent(self, source_id: str) -> None:
        """Take the company out of its parent: ``PATCH {"parent": null}``.

        Propeller documents ``parent`` as an object naming the parent (``{id}`` or
        ``{sourceId, source}``) and no way to leave one. ``null`` is the only plausible
        reading; the sandbox takes it (docs/sandbox-conventions.md). A Propeller that refuses
        it answers 10007, raised as a PermanentError like any schema refusal: the caller
        decides (the sink logs the documented limit and goes on).
        """
        self._call(
            "PATCH",
            self._company_path(source_id),
            operation="detach_parent",
            params=self._lookup_params(),
            body={"parent": None},
        )

    def set_attributes(self, source_id: str, attributes: Sequence[PropellerAttributeValue]) -> bool:
        """Write attribute values of an existing company; False when there is no such company.

        One ``bulk/sourceId`` item carrying only the lookup key and ``attributes``, with the
        ``skipCreate`` directive: doc 002 documents company attributes in bulk items, and the
        item changes nothing else. A failure other than "not found" raises.
        """
        item = PropellerCompanyInput(source_id=source_id, attributes=list(attributes))
        (outcome,) = self.upsert_companies_bulk(
            [item], directives=[PropellerDirective(operation="skipCreate")]
        )
        if outcome.error is None:
            return True
        if outcome.error.vendor_code in {"40006", "40008"}:
            return False
        raise outcome.error

    def delete_company(self, source_id: str) -> None:
        """Move the company to the recycle bin; an unknown one raises RecordMissingError."""
        self._call(
            "DELETE",
            self._company_path(source_id),
            operation="delete_company",
            params=self._lookup_params(),
        )

    def upsert_companies_bulk(
        self,
        companies: Sequence[PropellerCompanyInput],
        *,
        directives: Sequence[PropellerDirective] | None = None,
        contact_inline: bool = False,
    ) -> list[BulkOutcome]:
        """Create or update by ``sourceId``: one outcome per input, in the input's order.

        ``contact_inline``: the items may carry ``email`` and ``phone``. The integration
        guide's bulk example treats ``email`` as a bulk company field, the endpoint
        reference's field list leaves both out (VENDORS §2.7); a Propeller that follows the
        reference refuses such a call whole with 10007 ("extraneous key [email]").

        A failed item is a classified error inside its outcome (the others were applied);
        a failed request raises. Batches hold at most ``bulk_batch_size`` items (capped at
        1000); if a later batch fails, the earlier ones stay applied, which is harmless
        since an upsert by key can be replayed.
        """
        operation = "upsert_companies_bulk"
        outcomes: list[BulkOutcome] = []
        size = min(self._settings.bulk_batch_size, BULK_MAX_ITEMS)
        for start in range(0, len(companies), size):
            batch = companies[start : start + size]
            body: dict[str, Any] = {
                "companies": [
                    self._company_body(c, operation, bulk=True, contact_inline=contact_inline)
                    for c in batch
                ]
            }
            if directives:
                body["directives"] = [d.to_json() for d in directives]
            payload = self._call(
                "POST", f"{self._prefix}/companies/bulk/sourceId", operation=operation, body=body
            )
            keys: list[str | None] = [c.source_id for c in batch]
            outcomes.extend(self._outcomes(payload, keys, start, operation, "sourceId"))
        return outcomes

    def search_companies(
        self,
        *,
        modified_from: datetime | None,
        modified_to: datetime | None = None,
        expands: Sequence[str] = ("sources",),
    ) -> Iterator[PropellerCompany]:
        """Companies whose ``dateModified`` is in ``[modified_from, modified_to]``, all pages.

        Dates are sent in UTC at second precision (Propeller's format), ``from`` rounded
        down so a boundary record is returned again rather than missed. No ``modified_from``:
        every company. One page is held at a time.
        """
        operation = "search_companies"
        body: dict[str, Any] = {}
        if modified_from is not None:
            date_filter = {"from": _date(modified_from)}
            if modified_to is not None:
                date_filter["to"] = _date(modified_to)
            body["dateModified"] = date_filter
        page_size = self._settings.page_size
        params: dict[str, str | int] = {"expands": ",".join(expands)} if expands else {}

        def fetch(page: int) -> Any:
            return self._call(
                "POST",
                f"{self._prefix}/companies/search",
                operation=operation,
                params=params,
                body={**body, "page": page, "offset": page_size},
            )

        for item in self._pages(fetch, operation, page_size):
            yield self._validate(PropellerCompany, item, operation)
