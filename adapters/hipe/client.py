"""The HIPE by Packitoo client: companies, contacts, custom fields and CSV imports.

HIPE's list endpoints speak the nestjsx/crud query language: ``s=`` is a JSON object
inside the query string, ``limit`` and ``page`` page, ``sort=field,ASC`` sorts. This
client builds ``s`` with :func:`json.dumps` and lets httpx percent-encode the query, so a
value with quotes, ``&``, ``%``, ``+``, accents, emoji or right-to-left text reaches HIPE
intact. Companies and contacts are matched on ``externalId`` with ``$eq``, never on the
guide's ``name $contL`` (a substring of the name matches unrelated companies), and
several live matches are an :class:`~erpsync.errors.AmbiguousMatchError`, because
``externalId`` is not unique in HIPE.

Every failure is classified once, by :mod:`adapters.hipe.errors`. No backoff loop lives
here, except the polling of an import's status, which is the import itself.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from adapters._http import (
    ErrorTable,
    decode_json,
    excerpt,
    parse_retry_after,
    send,
    unexpected_shape,
)
from adapters.hipe.errors import (
    AMBIGUOUS_EXTERNAL_ID,
    IMPORT_ABORTED,
    IMPORT_CRASH,
    IMPORT_ROW_ERROR,
    IMPORT_TIMEOUT,
    IMPORT_UNKNOWN_STATUS,
    RECORD_MISSING,
    condition_error,
    hipe_error_table,
)
from adapters.hipe.models import (
    CsvScalar,
    HipeCompany,
    HipeCompanyImportRow,
    HipeCompanyInput,
    HipeContact,
    HipeContactInput,
    HipeCustomFieldNode,
    HipeImport,
    HipeImportResult,
    HipeImportRowError,
    HipeImportStatus,
)
from erpsync.errors import ErrorClass, PermanentError, SyncError
from erpsync.redaction import redact
from erpsync.settings import HipeSettings

_M = TypeVar("_M", bound=BaseModel)

COMPANIES = "/api/companies"
CONTACTS = "/api/users/contacts"
USERS = "/api/users"
IMPORTS = "/api/imports"
CUSTOM_FIELD_NODES = "/api/custom-field-nodes"

IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID = 16
CSV_DELIMITER = ","
CSV_FIXED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("externalId", "external_id"),
    ("name", "name"),
    ("parentExternalId", "parent_external_id"),
    ("email", "email"),
    ("phone", "phone"),
    ("vat", "vat"),
    ("website", "website"),
)

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

_IMPORT_RUNNING = frozenset({HipeImportStatus.REQUESTED, HipeImportStatus.IN_PROGRESS})
_IMPORT_DONE = frozenset({HipeImportStatus.SUCCESS, HipeImportStatus.SENT})
_IMPORT_FAILED = {HipeImportStatus.CRASH: IMPORT_CRASH, HipeImportStatus.ABORTED: IMPORT_ABORTED}


def neutralise_formula(cell: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with ``'``.

    OWASP's CSV-injection guidance: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
    or a carriage return is executed by Excel or LibreOffice when someone opens the file
    (HIPE keeps imported files and lets users download them again). The leading quote makes
    it text. The cost is real and accepted: a phone number written ``+33 1 …`` or a name
    starting with ``-`` arrives in HIPE with the quote in front; the JSON API
    (create/update) sends values unchanged and has no such cost.
    """
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def _csv_cell(value: CsvScalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # numbers cannot hold a formula; "-5" stays a number
    return neutralise_formula(value)


def build_companies_csv(rows: Sequence[HipeCompanyImportRow]) -> bytes:
    """The UTF-8 CSV of an import of type 16: header row, then one row per company.

    Columns: ``externalId`` and ``name`` always; ``parentExternalId``, ``email``,
    ``phone``, ``vat``, ``website`` and ``customFields.<key>`` only when some row sets
    them (an absent column leaves the field alone; an empty cell is an empty value).
    Quoting is the :mod:`csv` module's (a delimiter, a quote or a newline in a value is
    quoted, quotes doubled); text cells go through :func:`neutralise_formula`.
    """
    columns = [
        (header, attr)
        for header, attr in CSV_FIXED_COLUMNS
        if attr in {"external_id", "name"} or any(getattr(r, attr) is not None for r in rows)
    ]
    custom_keys = sorted({key for row in rows for key in row.custom_fields})
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow([header for header, _ in columns] + [f"customFields.{k}" for k in custom_keys])
    for row in rows:
        writer.writerow(
            [_csv_cell(getattr(row, attr)) for _, attr in columns]
            + [_csv_cell(row.custom_fields.get(key)) for key in custom_keys]
        )
    return buffer.getvalue().encode("utf-8")


def _search(condition: Mapping[str, Any]) -> str:
    """The ``s=`` value: JSON text, encoded later by httpx with the rest of the query."""
    return json.dumps(condition, ensure_ascii=False, separators=(",", ":"))


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required (HIPE dates are UTC)")
    # Milliseconds, truncated: $gte on a truncated instant can only include more, never less.
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class HipeClient:
    """Typed access to one HIPE instance through an injected ``httpx.Client``."""

    system: str = "hipe"

    def __init__(
        self,
        http: httpx.Client,
        settings: HipeSettings,
        *,
        error_overrides: Mapping[str, ErrorClass] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._base_url = settings.base_url
        self._table: ErrorTable = hipe_error_table(error_overrides)
        self._sleep = sleep
        self._clock = clock

    @property
    def error_table(self) -> ErrorTable:
        """The routing table in force (with the configuration's overrides)."""
        return self._table

    # -- plumbing ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        record_operation: bool = False,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one call; a failed answer raises its classified error.

        A 404 is returned as it is with ``missing_ok`` (a get by id), a
        :class:`~erpsync.errors.RecordMissingError` with ``record_operation`` (PATCH,
        archive, unarchive of a HIPE id), and otherwise a wrong path (permanent).
        """
        headers = {"X-ACCESS-TOKEN": self._token()}
        response = send(
            self._http,
            method,
            self._base_url + path,
            table=self._table,
            operation=operation,
            headers=headers,
            **kwargs,
        )
        if response.is_success:
            return response
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code == 404 and record_operation:
            raise condition_error(
                self._table,
                RECORD_MISSING,
                operation=operation,
                detail="HTTP 404, the record does not exist",
                status_code=404,
                response_excerpt=self._excerpt(response),
            )
        raise self._table.error(
            operation=operation,
            status_code=response.status_code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            response_excerpt=self._excerpt(response),
        )

    def _excerpt(self, response: httpx.Response) -> str:
        """A redacted body excerpt; our token is removed even if it was never registered."""
        return redact(excerpt(response), extra_secrets=[self._token()])

    def _token(self) -> str:
        return self._settings.access_token.get_secret_value()

    def _json(self, response: httpx.Response, operation: str) -> Any:
        return decode_json(response, table=self._table, operation=operation)

    def _model(self, model: type[_M], data: Any, operation: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise unexpected_shape(
                self._table, operation, f"not a {model.__name__}: {exc.error_count()} problems"
            ) from exc

    def _call(
        self,
        model: type[_M],
        method: str,
        path: str,
        *,
        operation: str,
        record_operation: bool = False,
        **kwargs: Any,
    ) -> _M:
        response = self._request(
            method, path, operation=operation, record_operation=record_operation, **kwargs
        )
        return self._model(model, self._json(response, operation), operation)

    def _page_lists(
        self, path: str, params: Mapping[str, Any], model: type[_M], operation: str
    ) -> Iterator[list[_M]]:
        """Every page of a list, fetched ``page_size`` at a time until the last page.

        HIPE may answer the paginated envelope ``{data,count,total,page,pageCount}`` or a
        bare array. The envelope ends at ``pageCount``; a bare array ends at a page shorter
        than ``limit``; both end at an empty page.
        """
        limit = self._settings.page_size
        page = 1
        while True:
            query = {**params, "limit": limit, "page": page}
            response = self._request("GET", path, operation=operation, params=query)
            items, page_count = self._page_items(self._json(response, operation), operation)
            if not items:
                return
            yield [self._model(model, raw, operation) for raw in items]
            last = page >= page_count if page_count is not None else len(items) < limit
            if last:
                return
            page += 1

    def _pages(
        self, path: str, params: Mapping[str, Any], model: type[_M], operation: str
    ) -> Iterator[_M]:
        """Every record of a list (see :meth:`_page_lists`), each once.

        A record seen twice (it moved between pages while we read) is yielded once; a full
        page of repeats means the server ignores ``page``, which would loop forever, so it
        is an error.
        """
        seen: set[Any] = set()
        for page, records in enumerate(self._page_lists(path, params, model, operation), 1):
            fresh = 0
            for record in records:
                key = getattr(record, "id", None)
                if key is not None and key in seen:
                    continue
                seen.add(key)
                fresh += 1
                yield record
            if fresh == 0:
                raise unexpected_shape(self._table, operation, f"page {page} repeated a page")

    def _page_items(self, body: Any, operation: str) -> tuple[list[Any], int | None]:
        if isinstance(body, list):
            return body, None
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            page_count = body.get("pageCount")
            return body["data"], page_count if isinstance(page_count, int) else None
        raise unexpected_shape(self._table, operation, "neither a list nor a page of data")

    def _list(
        self, path: str, params: Mapping[str, Any], model: type[_M], operation: str
    ) -> list[_M]:
        """One unpaged list call (either answer shape)."""
        response = self._request("GET", path, operation=operation, params=params)
        items, _ = self._page_items(self._json(response, operation), operation)
        return [self._model(model, raw, operation) for raw in items]

    def _one_live(
        self, hits: list[_M], *, operation: str, external_id: str, what: str
    ) -> _M | None:
        """The one record for an external id; several live ones are ambiguous.

        Archived records stay visible in HIPE; when exactly one record is not archived it
        is the match, so archiving duplicates (the operator's fix) resolves the ambiguity.
        """
        if len(hits) <= 1:
            return hits[0] if hits else None
        live = [hit for hit in hits if not getattr(hit, "archived", False)]
        if len(live) == 1:
            return live[0]
        ids = ", ".join(str(getattr(hit, "id", "?")) for hit in hits)
        raise condition_error(
            self._table,
            AMBIGUOUS_EXTERNAL_ID,
            operation=operation,
            detail=f"{len(hits)} {what} have this externalId (HIPE ids {ids})",
            vendor_code=AMBIGUOUS_EXTERNAL_ID,
            hint=(
                f"several HIPE {what} have externalId {external_id}; "
                "archive the duplicates, then replay"
            ),
        )

    # -- health ------------------------------------------------------------------------------

    def check(self) -> str:
        """One cheap authenticated call (``GET /api/users/me``): who the token acts as."""
        response = self._request("GET", f"{USERS}/me", operation="check")
        body = self._json(response, "check")
        if not isinstance(body, dict):
            raise unexpected_shape(self._table, "check", "the current user is not an object")
        who = body.get("email") or body.get("username") or body.get("id")
        return f"authenticated as HIPE user {who}" if who else "authenticated"

    # -- companies ---------------------------------------------------------------------------

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

    def iter_company_pages(self) -> Iterator[list[HipeCompany]]:
        """Every company that carries an external id (archived ones too), a page at a time.

        Sorted by id, so a company never moves between pages; only the previous page's ids
        are kept (to stop a server that ignores ``page``), so memory does not grow with the
        number of companies. Several companies with one external id all come out.
        """
        params = {"s": _search({"externalId": {"$notnull": True}}), "sort": "id,ASC"}
        operation = "list_companies"
        previous: set[int] = set()
        for page, records in enumerate(
            self._page_lists(COMPANIES, params, HipeCompany, operation), 1
        ):
            ids = {record.id for record in records}
            if ids <= previous:
                raise unexpected_shape(self._table, operation, f"page {page} repeated a page")
            previous = ids
            yield records

    def companies_by_ids(self, company_ids: Collection[int]) -> list[HipeCompany]:
        """The companies with these HIPE ids (one search with ``$in``); absent ids are left out."""
        if not company_ids:
            return []
        params = {"s": _search({"id": {"$in": sorted(company_ids)}})}
        return list(self._pages(COMPANIES, params, HipeCompany, "get_companies"))

    def get_company(self, company_id: int) -> HipeCompany | None:
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

    def update_company(self, company_id: int, company: HipeCompanyInput) -> HipeCompany:
        """PATCH the fields set in ``company``; a removed company is RecordMissingError."""
        return self._call(
            HipeCompany,
            "PATCH",
            f"{COMPANIES}/{company_id}",
            operation="update_company",
            record_operation=True,
            json=company.to_json(),
        )

    def archive_company(self, company_id: int) -> HipeCompany:
        """Soft-delete: ``DELETE /api/companies/{id}/archived`` answers the archived company."""
        return self._call(
            HipeCompany,
            "DELETE",
            f"{COMPANIES}/{company_id}/archived",
            operation="archive_company",
            record_operation=True,
        )

    def unarchive_company(self, company_id: int) -> HipeCompany:
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

    # -- contacts ----------------------------------------------------------------------------

    def find_contacts_by_external_id(self, external_id: str) -> list[HipeContact]:
        """Every contact (archived ones too) whose ``externalId`` equals this one exactly."""
        params = {"s": _search({"externalId": {"$eq": external_id}})}
        return list(self._pages(CONTACTS, params, HipeContact, "find_contact"))

    def find_contact(self, external_id: str) -> HipeContact | None:
        """The contact with this external id, ``None``, or AmbiguousMatchError."""
        return self._one_live(
            self.find_contacts_by_external_id(external_id),
            operation="find_contact",
            external_id=external_id,
            what="contacts",
        )

    def get_contact(self, contact_id: int) -> HipeContact | None:
        """The contact with this HIPE user id, or ``None``."""
        response = self._request(
            "GET", f"{USERS}/{contact_id}", operation="get_contact", missing_ok=True
        )
        if response.status_code == 404:
            return None
        return self._model(HipeContact, self._json(response, "get_contact"), "get_contact")

    def create_contact(self, contact: HipeContactInput) -> HipeContact:
        """Create a contact (``POST /api/users/contacts``)."""
        return self._call(
            HipeContact, "POST", CONTACTS, operation="create_contact", json=contact.to_json()
        )

    def update_contact(self, contact_id: int, contact: HipeContactInput) -> HipeContact:
        """PATCH a contact (``/api/users/{id}``); a removed one is RecordMissingError."""
        return self._call(
            HipeContact,
            "PATCH",
            f"{USERS}/{contact_id}",
            operation="update_contact",
            record_operation=True,
            json=contact.to_json(),
        )

    def archive_contact(self, contact_id: int) -> HipeContact:
        """Soft-delete a contact (``DELETE /api/users/{id}/archived``)."""
        return self._call(
            HipeContact,
            "DELETE",
            f"{USERS}/{contact_id}/archived",
            operation="archive_contact",
            record_operation=True,
        )

    def unarchive_contact(self, contact_id: int) -> HipeContact:
        """Restore an archived contact (``GET /api/users/{id}/unarchived``)."""
        return self._call(
            HipeContact,
            "GET",
            f"{USERS}/{contact_id}/unarchived",
            operation="unarchive_contact",
            record_operation=True,
        )

    # -- custom fields -----------------------------------------------------------------------

    def custom_field_nodes(self) -> list[HipeCustomFieldNode]:
        """The custom field definitions (keys, types, options) of this instance."""
        return self._list(CUSTOM_FIELD_NODES, {}, HipeCustomFieldNode, "custom_field_nodes")

    # -- CSV import --------------------------------------------------------------------------

    def import_companies(self, rows: Sequence[HipeCompanyImportRow]) -> HipeImportResult:
        """Upsert companies by external id through a CSV import, and wait for its end.

        Polls ``GET /api/imports/{id}`` every ``import_poll_interval_s`` until the import
        ends (8 SUCCESS or 4 SENT), crashes (7) or is aborted (3), both permanent for the
        whole import, or ``import_timeout_s`` passes (transient: it may still be running).
        Rows HIPE refused are in ``errors``, each with the external id of the row sent,
        and are not raised: the other rows were applied (see :meth:`import_row_error`).
        """
        operation = "import_companies"
        if not rows:
            return HipeImportResult(import_id=None, status=8, total=0, created=0, updated=0)
        content = build_companies_csv(rows)
        job = self._call(
            HipeImport,
            "POST",
            IMPORTS,
            operation=operation,
            data={"type": str(IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID), "delimiter": CSV_DELIMITER},
            files={"csv": ("companies.csv", content, "text/csv")},
        )
        deadline = self._clock() + self._settings.import_timeout_s
        while job.status in _IMPORT_RUNNING:
            if self._clock() >= deadline:
                raise condition_error(
                    self._table,
                    IMPORT_TIMEOUT,
                    operation=operation,
                    detail=(
                        f"import {job.id} still at status {job.status} after "
                        f"{self._settings.import_timeout_s:g} s"
                    ),
                    vendor_code=IMPORT_TIMEOUT,
                )
            self._sleep(self._settings.import_poll_interval_s)
            job = self._call(HipeImport, "GET", f"{IMPORTS}/{job.id}", operation=operation)
        if job.status in _IMPORT_FAILED:
            match = _IMPORT_FAILED[HipeImportStatus(job.status)]
            raise condition_error(
                self._table,
                match,
                operation=operation,
                detail=f"import {job.id} ended with status {job.status}",
                vendor_code=match,
            )
        if job.status not in _IMPORT_DONE:
            raise condition_error(
                self._table,
                IMPORT_UNKNOWN_STATUS,
                operation=operation,
                detail=f"import {job.id} has unknown status {job.status}",
                vendor_code=f"import-status-{job.status}",
            )
        return HipeImportResult(
            import_id=job.id,
            status=job.status,
            total=job.total if job.total is not None else len(rows),
            created=job.created or 0,
            updated=job.updated or 0,
            errors=[_map_row_error(error, rows) for error in job.errors],
        )

    def import_row_error(self, error: HipeImportRowError) -> SyncError:
        """The classified exception for one refused import row (for its dead letter).

        HIPE's message travels redacted in ``response_excerpt``, never in the message.
        """
        return condition_error(
            self._table,
            IMPORT_ROW_ERROR,
            operation="import_companies",
            detail=f"row {error.row} refused",
            vendor_code=IMPORT_ROW_ERROR,
            response_excerpt=redact(error.message, extra_secrets=[self._token()], max_chars=500),
        )


def _map_row_error(
    error: HipeImportRowError, rows: Sequence[HipeCompanyImportRow]
) -> HipeImportRowError:
    """Name a refused row by the external id we sent (HIPE may echo it neutralised)."""
    if 1 <= error.row <= len(rows):
        return error.model_copy(update={"external_id": rows[error.row - 1].external_id})
    return error
