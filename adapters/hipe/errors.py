"""HIPE's routing table: every failure of a HIPE call mapped once onto an error class.

HIPE documents no error codes; its backend answers NestJS default bodies
(``{"statusCode","message","error"}``), so the table is keyed on HTTP statuses (the
generic rows of :mod:`adapters._http`) plus the conditions only this adapter can see:

=========================  ===========  ==================================================
match                      class        why
=========================  ===========  ==================================================
``http-400``               permanent    validation: retrying the same body cannot succeed
``http-401`` / ``-403``    auth         the access token is wrong or lacks a right
``record-missing``         conflict     404 on PATCH, archive or unarchive of a HIPE id:
                                        the record is gone, the worker re-finds or creates
``http-404``               permanent    any other 404: a wrong path or base_url
``http-409``               permanent    HIPE keeps no idempotency keys; inspect and replay
``http-429`` / ``5xx``     transient    retried by the worker, honouring ``Retry-After``
``ambiguous-external-id``  permanent    several live records share one ``externalId``
``import-status-7``        permanent    CRASH: HIPE could not process the file at all
``import-status-3``        permanent    ABORTED: someone cancelled the import
``import-status-other``    permanent    a status this adapter does not know
``import-timeout``         transient    not finished within ``import_timeout_s``
``import-row-error``       permanent    one row of an import refused (the others applied)
=========================  ===========  ==================================================

Transport failures (timeouts, refused or dropped connections, invalid JSON) come from the
generic rows. Configuration may override the class of any row by its ``match``.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters._http import ErrorRule, ErrorTable
from erpsync.errors import (
    AmbiguousMatchError,
    ErrorClass,
    RecordMissingError,
    SyncError,
)

SYSTEM = "hipe"

RECORD_MISSING = "record-missing"
AMBIGUOUS_EXTERNAL_ID = "ambiguous-external-id"
IMPORT_CRASH = "import-status-7"
IMPORT_ABORTED = "import-status-3"
IMPORT_UNKNOWN_STATUS = "import-status-other"
IMPORT_TIMEOUT = "import-timeout"
IMPORT_ROW_ERROR = "import-row-error"

HIPE_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(
        SYSTEM,
        RECORD_MISSING,
        "record not found",
        ErrorClass.CONFLICT,
        "the HIPE record was removed: find it again by externalId or create it",
        error_type=RecordMissingError,
    ),
    ErrorRule(
        SYSTEM,
        AMBIGUOUS_EXTERNAL_ID,
        "several records share an externalId",
        ErrorClass.PERMANENT,
        "several HIPE records have this externalId; archive the duplicates, then replay",
        error_type=AmbiguousMatchError,
    ),
    ErrorRule(
        SYSTEM,
        IMPORT_CRASH,
        "import CRASH",
        ErrorClass.PERMANENT,
        "HIPE could not process the import file; check it in the back office, then replay",
    ),
    ErrorRule(
        SYSTEM,
        IMPORT_ABORTED,
        "import ABORTED",
        ErrorClass.PERMANENT,
        "the import was cancelled in HIPE; replay when it should run again",
    ),
    ErrorRule(
        SYSTEM,
        IMPORT_UNKNOWN_STATUS,
        "unknown import status",
        ErrorClass.PERMANENT,
        "HIPE answered an import status this adapter does not know; check the import "
        "in the back office (GET /api/imports/utils/get-status lists them)",
    ),
    ErrorRule(
        SYSTEM,
        IMPORT_TIMEOUT,
        "import not finished in time",
        ErrorClass.TRANSIENT,
        "the import may still be running in HIPE; check it in the back office, or raise "
        "import_timeout_s",
    ),
    ErrorRule(
        SYSTEM,
        IMPORT_ROW_ERROR,
        "import row refused",
        ErrorClass.PERMANENT,
        "HIPE refused this row of the import; fix the record or mapping, then replay",
    ),
)


def hipe_error_table(overrides: Mapping[str, ErrorClass] | None = None) -> ErrorTable:
    """HIPE's table (its own rows, then the generic HTTP and transport rows)."""
    return ErrorTable.build(SYSTEM, HIPE_RULES, overrides)


def error_rows() -> list[dict[str, str]]:
    """The table as operators see it (``erpsync errors``), without overrides."""
    return hipe_error_table().rows()


def condition_error(
    table: ErrorTable,
    match: str,
    *,
    operation: str,
    detail: str,
    status_code: int | None = None,
    vendor_code: str | None = None,
    response_excerpt: str | None = None,
    hint: str | None = None,
) -> SyncError:
    """The classified exception for one of HIPE's own conditions (not an HTTP status).

    ``detail`` goes into the message and must hold no body and no secret; what HIPE said
    travels in ``response_excerpt`` (already redacted by the caller).
    """
    rule = table.lookup(vendor_code=match, status_code=None)
    error_class = table.overrides.get(rule.match, rule.error_class)
    return rule.exception_type(error_class)(
        f"{table.system} {operation} failed: {detail}",
        system=table.system,
        operation=operation,
        status_code=status_code,
        vendor_code=vendor_code,
        vendor_name=rule.name if vendor_code is not None else None,
        response_excerpt=response_excerpt,
        hint=hint or rule.hint,
    )


#: the same name in every vendor adapter
error_table = hipe_error_table
