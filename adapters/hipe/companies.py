"""HIPE companies: matched on ``externalId`` with ``$eq``, read, written, archived, paged.

Never matched on the guide's ``name $contL`` (a substring of the name matches unrelated
companies); several live matches are an :class:`~erpsync.errors.AmbiguousMatchError`,
because ``externalId`` is not unique in HIPE.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime

from adapters._http import unexpected_shape
from adapters.hipe._transport import COMPANIES, HipeTransport, _iso_utc, _search
from adapters.hipe.models import HipeCompany, HipeCompanyInput, HipeId
from erpsync.errors import PermanentError


class CompanyCalls(HipeTransport):
    """The company operations of :class:`adapters.hipe.client.HipeClient`."""

    def find_companies_by_external_id(self, external_id: str) -> list[HipeCompany]:
        """Every company (archived ones too) whose ``externalId`` equals this one exactly."""
        params = {"s": _search({"externalId": {"$eq": external_id}})}
        return list(self._pages(COMPANIES, params, HipeCompany, "find_company"))

    def find_company(self, external_id: str) -> HipeCompany | None:
        """The company with this external id, ``None``, or AmbiguousMatchError."""
        return self._one_live(
            self.find_companies_by_external_id(external_id),
            operation="find_company",
            external_id=external_id,
            what="companies",
        )

    def search_companies_by_name(self, name: str, *, limit: int = 5) -> list[HipeCompany]:
        """Companies whose name contains ``name``, case-insensitively (the guide's search).

        For people and reconciliation, never for matching: use :meth:`find_company`.
        """
        params = {"s": _search({"name": {"$contL": name}}), "limit": limit}
        return self._list(COMPANIES, params, HipeCompany, "search_companies")[:limit]

    def iter_company_pages(self, *, linked: bool = True) -> Iterator[list[HipeCompany]]:
        """Every company that carries an external id (archived ones too), a page at a time;
        ``linked=False``: every company that carries none (made by hand in HIPE).

        Sorted by id, so a company never moves between pages; only the previous page's ids
        are kept (to stop a server that ignores ``page``), so memory does not grow with the
        number of companies. Several companies with one external id all come out.
        """
        having = {"$notnull": True} if linked else {"$isnull": True}
        params = {"s": _search({"externalId": having}), "sort": "id,ASC"}
        operation = "list_companies"
        previous: set[HipeId] = set()
        for page, records in enumerate(
            self._page_lists(COMPANIES, params, HipeCompany, operation), 1
        ):
            ids = {record.id for record in records}
            if ids <= previous:
                raise unexpected_shape(self._table, operation, f"page {page} repeated a page")
            previous = ids
            yield records

    def companies_by_ids(self, company_ids: Collection[HipeId]) -> list[HipeCompany]:
        """The companies with these HIPE ids (one search with ``$in``); absent ids are left out."""
        if not company_ids:
            return []
        params = {"s": _search({"id": {"$in": sorted(company_ids)}})}
        return list(self._pages(COMPANIES, params, HipeCompany, "get_companies"))

    def get_company(self, company_id: HipeId) -> HipeCompany | None:
        """The company with this HIPE id, or ``None``."""
        response = self._request(
            "GET", f"{COMPANIES}/{company_id}", operation="get_company", missing_ok=True
        )
        if response.status_code == 404:
            return None
        return self._model(HipeCompany, self._json(response, "get_company"), "get_company")

    def create_company(self, company: HipeCompanyInput) -> HipeCompany:
        """Create a company (``name`` is required); HIPE answers 201 with it."""
        if not company.name:
            raise PermanentError(
                "hipe create_company failed: a company needs a name",
                system=self.system,
                operation="create_company",
                hint="map a non-empty name for HIPE companies, then replay",
            )
        return self._call(
            HipeCompany, "POST", COMPANIES, operation="create_company", json=company.to_json()
        )

    def update_company(self, company_id: HipeId, company: HipeCompanyInput) -> HipeCompany:
        """PATCH the fields set in ``company``; a removed company is RecordMissingError."""
        return self._call(
            HipeCompany,
            "PATCH",
            f"{COMPANIES}/{company_id}",
            operation="update_company",
            record_operation=True,
            json=company.to_json(),
        )

    def archive_company(self, company_id: HipeId) -> HipeCompany:
        """Soft-delete: ``DELETE /api/companies/{id}/archived`` answers the archived company."""
        return self._call(
            HipeCompany,
            "DELETE",
            f"{COMPANIES}/{company_id}/archived",
            operation="archive_company",
            record_operation=True,
        )

    def unarchive_company(self, company_id: HipeId) -> HipeCompany:
        """Restore an archived company (``GET /api/companies/{id}/unarchived``)."""
        return self._call(
            HipeCompany,
            "GET",
            f"{COMPANIES}/{company_id}/unarchived",
            operation="unarchive_company",
            record_operation=True,
        )

    def iter_companies_changed_since(self, since: datetime) -> Iterator[HipeCompany]:
        """Companies with ``updatedAt >= since``, oldest first (ties by id), paged to the end."""
        params = {
            "s": _search({"updatedAt": {"$gte": _iso_utc(since)}}),
            "sort": ["updatedAt,ASC", "id,ASC"],
        }
        return self._pages(COMPANIES, params, HipeCompany, "list_changed_companies")
