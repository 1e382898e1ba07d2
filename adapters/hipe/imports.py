"""HIPE CSV imports of companies (type 16, upsert by external id): the CSV, the upload, the wait.

No backoff loop lives in the adapter except here: the polling of an import's status is the
import itself.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from adapters.hipe._transport import IMPORTS, HipeTransport
from adapters.hipe.errors import (
    IMPORT_ABORTED,
    IMPORT_CRASH,
    IMPORT_ROW_ERROR,
    IMPORT_TIMEOUT,
    IMPORT_UNKNOWN_STATUS,
    condition_error,
)
from adapters.hipe.models import (
    CsvScalar,
    HipeCompanyImportRow,
    HipeImport,
    HipeImportResult,
    HipeImportRowError,
    HipeImportStatus,
)
from erpsync.errors import SyncError
from erpsync.redaction import redact

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


class ImportCalls(HipeTransport):
    """The CSV import operations of :class:`adapters.hipe.client.HipeClient`."""

    def import_companies(self, rows: Sequence[HipeCompanyImportRow]) -> HipeImportResult:
        """Upsert companies by external id through a CSV import, and wait for its end.

        Polls ``GET /api/imports/{id}`` every ``import_poll_interval_s`` until the import
        ends (8 SUCCESS, or 4 SENT: the guide's "the import result has been notified by
        email", so its result is final), crashes (7) or is aborted (3: "cancelled or
        aborted", the rows before it stay applied), both permanent for the whole import, or
        ``import_timeout_s`` passes (transient: it may still be running).
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
        job = self._finished(job, operation)
        return HipeImportResult(
            import_id=job.id,
            status=job.status,
            total=job.total if job.total is not None else len(rows),
            created=job.created or 0,
            updated=job.updated or 0,
            errors=[_map_row_error(error, rows) for error in job.errors],
        )

    def _finished(self, job: HipeImport, operation: str) -> HipeImport:
        """Poll the import until it ends well; a crash, abort, timeout or unknown status raises."""
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
            status = HipeImportStatus(job.status)
            match = _IMPORT_FAILED[status]
            detail = f"import {job.id} ended with status {job.status} ({status.name})"
            if status is HipeImportStatus.ABORTED and job.processed is not None:
                # cancelled part-way: what ran stays in HIPE, the rest never ran
                total = "?" if job.total is None else job.total
                detail += f" after {job.processed} of {total} rows"
            raise condition_error(
                self._table,
                match,
                operation=operation,
                detail=detail,
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
        return job

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
