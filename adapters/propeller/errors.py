"""Propeller's routing table: vendor code, HTTP status or transport failure → error class.

This is the one place where Propeller failures are classified. Vendor codes come from the
``{"error": {"code", "status", "type", "messages", "moreInfo"}}`` body (VENDORS.md §2.4,
vendor-docs "Company Errors"); the OAuth2 ``error`` strings come from the token endpoint
(docs/sandbox-conventions.md). Statuses and transport failures the vendor says nothing
about fall through to :func:`adapters._http.generic_rules` (429/5xx transient, 401/403
auth, other 4xx permanent). The configuration may override the class of any row.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters._http import ErrorRule, ErrorTable
from erpsync.errors import (
    AmbiguousMatchError,
    ErrorClass,
    RecordExistsError,
    RecordMissingError,
)

SYSTEM = "propeller"

_T = ErrorClass.TRANSIENT
_D = ErrorClass.DEPENDENCY
_C = ErrorClass.CONFLICT
_P = ErrorClass.PERMANENT
_A = ErrorClass.AUTH

_BAD_CREDENTIALS = (
    "Propeller refused the client credentials: check client_id and client_secret, and that "
    "the REST API key is set active in the backoffice"
)

PROPELLER_RULES: tuple[ErrorRule, ...] = (
    # Generic REST v2 codes (VENDORS.md §2.4).
    ErrorRule(
        SYSTEM,
        "10005",
        "InvalidJSONPayload",
        _P,
        "Propeller could not parse the JSON sent; report an adapter bug, then replay",
    ),
    ErrorRule(
        SYSTEM,
        "10006",
        "InvalidLookupKey",
        _P,
        "the lookup key is not one Propeller knows; check api_prefix and the API version",
    ),
    ErrorRule(
        SYSTEM,
        "10007",
        "SchemaValidationException",
        _P,
        "Propeller refused a field or the payload's shape; fix the mapping, then replay",
    ),
    ErrorRule(
        SYSTEM,
        "10008",
        "NotFound",
        _P,
        "the Propeller resource or endpoint does not exist; check base_url and api_prefix",
    ),
    ErrorRule(
        SYSTEM,
        "10015",
        "PaginatedResponseException",
        _P,
        "Propeller refused the page or page size; lower page_size",
    ),
    ErrorRule(
        SYSTEM,
        "10016",
        "LookupKeyNotFound",
        _P,
        "a bulk item lacks its sourceId; fix the mapping, then replay",
    ),
    ErrorRule(
        SYSTEM,
        "10017",
        "PayloadValidationError",
        _P,
        "Propeller refused a value (format, length, enum); fix the record or mapping, then replay",
    ),
    # Companies.
    ErrorRule(
        SYSTEM,
        "40004",
        "CompanyExists",
        _C,
        "the company is already in Propeller; the worker updates it instead",
        RecordExistsError,
    ),
    ErrorRule(
        SYSTEM,
        "40005",
        "CompanyMultipleFound",
        _P,
        "the same sourceId exists several times in Propeller; remove the duplicate, then replay",
        AmbiguousMatchError,
    ),
    ErrorRule(
        SYSTEM,
        "40006",
        "CompanyNotFound",
        _C,
        "the company is not in Propeller; the worker creates it (a delete is already done)",
        RecordMissingError,
    ),
    ErrorRule(
        SYSTEM,
        "40007",
        "ParentCompanyNotFound",
        _D,
        "the parent company is not in Propeller yet; waits for it",
    ),
    ErrorRule(
        SYSTEM,
        "40008",
        "CompanyNotAllowed",
        _P,
        "the company is in Propeller's recycle bin; restore it in the backoffice, then replay",
    ),
    # Company addresses.
    ErrorRule(
        SYSTEM,
        "90006",
        "AddressNotFound",
        _C,
        "the address is not in Propeller; a delete is already done, an update creates it",
        RecordMissingError,
    ),
    # Contacts (same family as companies; listed so the table is complete for contact flows).
    ErrorRule(
        SYSTEM,
        "50004",
        "ContactExists",
        _C,
        "the contact is already in Propeller; the worker updates it instead",
        RecordExistsError,
    ),
    ErrorRule(
        SYSTEM,
        "50005",
        "ContactMultipleFound",
        _P,
        "the same contact sourceId exists several times in Propeller; remove the duplicate, "
        "then replay",
        AmbiguousMatchError,
    ),
    ErrorRule(
        SYSTEM,
        "50006",
        "ContactNotFound",
        _C,
        "the contact is not in Propeller; the worker creates it (a delete is already done)",
        RecordMissingError,
    ),
    # The OAuth2 token endpoint (RFC 6749 §5.2 error strings).
    ErrorRule(SYSTEM, "invalid_client", "bad credentials", _A, _BAD_CREDENTIALS),
    ErrorRule(SYSTEM, "unauthorized_client", "client not authorized", _A, _BAD_CREDENTIALS),
    ErrorRule(
        SYSTEM,
        "invalid_grant",
        "grant refused",
        _A,
        "Propeller refused the client-credentials grant; check the API key in the backoffice",
    ),
    ErrorRule(
        SYSTEM,
        "invalid_request",
        "token request refused",
        _A,
        "Propeller refused the token request; check token_path and the credentials",
    ),
    ErrorRule(
        SYSTEM,
        "unsupported_grant_type",
        "grant type refused",
        _A,
        "Propeller does not accept client credentials on this endpoint; check token_path",
    ),
    # Propeller echoes the HTTP status as the code of these two; the hint is sharper here.
    ErrorRule(
        SYSTEM,
        "http-401",
        "Unauthorized",
        _A,
        "Propeller refused the bearer token even after a refresh; check the API key's rights",
    ),
    ErrorRule(
        SYSTEM,
        "http-429",
        "Too Many Requests",
        _T,
        "Propeller rate limited the call; retried after Retry-After. Lower rate_limit_per_s "
        "if frequent",
    ),
)


def propeller_error_table(overrides: Mapping[str, ErrorClass] | None = None) -> ErrorTable:
    """Propeller's routing table with the configuration's overrides applied."""
    return ErrorTable.build(SYSTEM, PROPELLER_RULES, overrides)


#: the same name in every vendor adapter
error_table = propeller_error_table
