"""OnlineERP / ERPConnector's routing table: vendor code, HTTP status or exception → class.

The HUB answers errors ASP.NET-style, ``{"Message": "...", "Code": "<Code>"}``
(docs/sandbox-conventions.md); the code decides first, then the status, then the generic
rules of :mod:`adapters._http`.

One vendor code carries two meanings: ``InvalidBody`` is bad data (dead-letter) unless its
message names a customer or product that the request refers to and the ERP does not hold
yet; then the invoice must wait for that record. The client recognises that case and looks
the error up under ``InvalidBody/Customer`` or ``InvalidBody/Product``: those rows are part
of the table (``erpsync errors`` shows them, the configuration can override them) and the
exception's ``vendor_code`` names the row that decided.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from adapters._http import ErrorRule, ErrorTable
from erpsync.errors import (
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    RecordExistsError,
    RecordMissingError,
    TransientError,
)

SYSTEM = "onlineerp"

#: the rows for an ``InvalidBody`` whose message names a missing referenced record
INVALID_BODY_CUSTOMER = "InvalidBody/Customer"
INVALID_BODY_PRODUCT = "InvalidBody/Product"

_T, _D, _C, _P, _A = (
    ErrorClass.TRANSIENT,
    ErrorClass.DEPENDENCY,
    ErrorClass.CONFLICT,
    ErrorClass.PERMANENT,
    ErrorClass.AUTH,
)

ERROR_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(
        SYSTEM,
        "RobotOffline",
        "robot offline",
        _T,
        "the ERP robot at the customer's site is not connected; it will be retried. "
        "If it lasts, ask the customer to restart the ERPConnector robot",
        TransientError,
    ),
    ErrorRule(
        SYSTEM,
        "RobotTimeout",
        "robot timeout",
        _T,
        "the ERP robot did not answer in time (the ERP may be busy or locked); it will be retried",
        TransientError,
    ),
    ErrorRule(
        SYSTEM,
        "Exists",
        "record exists",
        _C,
        "the record already exists in the ERP: the worker updates it instead "
        "(an invoice with this Référence was already created)",
        RecordExistsError,
    ),
    ErrorRule(
        SYSTEM,
        "NotFound",
        "record not found",
        _C,
        "the record is not in the ERP: the worker creates it (update) or counts it done (delete)",
        RecordMissingError,
    ),
    ErrorRule(
        SYSTEM,
        INVALID_BODY_CUSTOMER,
        "unknown customer",
        _D,
        "the invoice names a customer the ERP does not hold yet; it waits until the "
        "customer has been synced, then is retried",
        DependencyError,
    ),
    ErrorRule(
        SYSTEM,
        INVALID_BODY_PRODUCT,
        "unknown product",
        _D,
        "an invoice line names a product the ERP does not hold yet; it waits until the "
        "product exists, then is retried",
        DependencyError,
    ),
    ErrorRule(
        SYSTEM,
        "InvalidBody",
        "invalid body",
        _P,
        "the ERP refused the record's data; fix the record or the mapping, then replay",
        PermanentError,
    ),
    ErrorRule(
        SYSTEM,
        "InvalidFilter",
        "invalid filter",
        _P,
        "the ERP refused a $filter; check the field names in the flow's filter",
        PermanentError,
    ),
    ErrorRule(
        SYSTEM,
        "Unauthorized",
        "unauthorized",
        _A,
        "licence code or secret refused: check systems.onlineerp.licence_code and secret",
        AuthError,
    ),
    ErrorRule(
        SYSTEM,
        "Forbidden",
        "forbidden",
        _A,
        "the licence does not hold this company: check systems.onlineerp.company_id",
        AuthError,
    ),
    ErrorRule(
        SYSTEM,
        "MethodNotAllowed",
        "method not allowed",
        _P,
        "this ERP does not support the operation on this entity (invoices are create-only; "
        "DELETE may be unavailable); change the flow",
        PermanentError,
    ),
    ErrorRule(
        SYSTEM,
        "http-401",
        "Unauthorized",
        _A,
        "licence code or secret refused: check systems.onlineerp.licence_code and secret",
        AuthError,
    ),
    ErrorRule(
        SYSTEM,
        "http-403",
        "Forbidden",
        _A,
        "the licence does not hold this company: check systems.onlineerp.company_id",
        AuthError,
    ),
    ErrorRule(
        SYSTEM,
        "http-405",
        "Method Not Allowed",
        _P,
        "this ERP does not support the operation on this entity; change the flow",
        PermanentError,
    ),
    ErrorRule(
        SYSTEM,
        "http-409",
        "Conflict",
        _C,
        "the record already exists in the ERP: the worker updates it instead",
        RecordExistsError,
    ),
    ErrorRule(
        SYSTEM,
        "http-412",
        "Precondition Failed",
        _C,
        "If-None-Match: * failed: the record (invoice Référence) already exists",
        RecordExistsError,
    ),
    ErrorRule(
        SYSTEM,
        "http-503",
        "Service Unavailable",
        _T,
        "the HUB or the robot is unavailable; it will be retried",
        TransientError,
    ),
    ErrorRule(
        SYSTEM,
        "http-504",
        "Gateway Timeout",
        _T,
        "the robot did not answer the HUB in time; it will be retried",
        TransientError,
    ),
)


def table(overrides: Mapping[str, ErrorClass] | None = None) -> ErrorTable:
    """OnlineERP's routing table with the configuration's overrides applied."""
    return ErrorTable.build(SYSTEM, ERROR_RULES, overrides)


#: the same name in every vendor adapter
error_table = table


_NOT_FOUND_WORDS = re.compile(
    r"inconnu|unknown|not found|introuvable|n'existe|does not exist|doesn't exist|missing",
    re.IGNORECASE,
)
_CUSTOMER_WORDS = re.compile(r"client|customer", re.IGNORECASE)
_PRODUCT_WORDS = re.compile(r"produit|product", re.IGNORECASE)


def _names(message: str, key: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", message) is not None


def missing_reference(
    message: str, *, customers: Iterable[str], products: Iterable[str]
) -> str | None:
    """Which kind of referenced record an ``InvalidBody`` message says is missing, if any.

    The message's wording is not documented, only that it names the customer or product;
    so the keys the request refers to are looked for first, then the words.
    """
    if any(_names(message, key) for key in customers):
        return INVALID_BODY_CUSTOMER
    if any(_names(message, key) for key in products):
        return INVALID_BODY_PRODUCT
    if _NOT_FOUND_WORDS.search(message):
        if _PRODUCT_WORDS.search(message):
            return INVALID_BODY_PRODUCT
        if _CUSTOMER_WORDS.search(message):
            return INVALID_BODY_CUSTOMER
    return None
