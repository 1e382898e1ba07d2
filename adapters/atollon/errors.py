"""Atollon's routing table: FAIL messages, HTTP statuses and transport failures to classes.

Atollon answers a failure with ``{"result": "FAIL", "message": "..."}``, often with HTTP 200,
and has no error codes. The message's documented beginnings are turned into stable short
vendor codes (``FAIL:<slug>``) so that dead letters group by code; any other FAIL message is
the generic code ``FAIL``. The message itself is vendor text (it may quote our data), so it
travels only in the redacted ``response_excerpt``, never in ``str(exc)``.

Order of decision (:func:`fail_code` then :meth:`ErrorTable.lookup`):

1. a FAIL whose message starts with a known prefix → that prefix's rule, whatever the status;
2. a generic FAIL with HTTP 200 → ``FAIL`` (permanent: the data was refused);
3. a generic FAIL with an error status, or an error status without FAIL → the status's rule
   (so a FAIL inside a 500 or 503 stays transient, and a 400 malformed request permanent);
4. transport failures → ``exception:*`` rules (transient).
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters._http import ErrorRule, ErrorTable
from erpsync.errors import ErrorClass, ReadUnsupportedError

SYSTEM = "atollon"

#: The vendor code of a FAIL answer whose message we do not recognise.
GENERIC_FAIL = "FAIL"
#: The code of a refused read of contacts or products (undocumented; the sandbox has one).
READ_UNSUPPORTED = "read-unsupported"

_D, _P, _A = ErrorClass.DEPENDENCY, ErrorClass.PERMANENT, ErrorClass.AUTH

#: (message prefix, rule): a FAIL message starting with the prefix (case-insensitive) gets
#: the rule's vendor code. Dependencies wait: the record they name arrives in Atollon later
#: (a parent company synced after its child, a product not yet imported).
FAIL_RULES: tuple[tuple[str, ErrorRule], ...] = (
    (
        "Related contact not found",
        ErrorRule(
            SYSTEM,
            "FAIL:related-contact-not-found",
            "Related contact not found",
            _D,
            "the related (parent) company is not in Atollon yet; retried once it arrives",
        ),
    ),
    (
        "Contact not found",
        ErrorRule(
            SYSTEM,
            "FAIL:contact-not-found",
            "Contact not found",
            _D,
            "the contact is not in Atollon yet; retried once it arrives",
        ),
    ),
    (
        "Product not found",
        ErrorRule(
            SYSTEM,
            "FAIL:product-not-found",
            "Product not found",
            _D,
            "the product is not in Atollon yet; retried once it arrives",
        ),
    ),
    (
        "Billing item not found",
        ErrorRule(
            SYSTEM,
            "FAIL:billing-item-not-found",
            "Billing item not found",
            _P,
            "the billing item no longer exists in Atollon; check the activity, then replay",
        ),
    ),
    (
        "Unknown instance",
        ErrorRule(
            SYSTEM,
            "FAIL:unknown-instance",
            "Unknown instance",
            _A,
            "check the Atollon instance name (systems.atollon.instance)",
        ),
    ),
)

RULES: tuple[ErrorRule, ...] = (
    *(rule for _, rule in FAIL_RULES),
    ErrorRule(
        SYSTEM,
        GENERIC_FAIL,
        "FAIL",
        _P,
        "Atollon refused the data (see the message in the dead letter); fix it, then replay",
    ),
    ErrorRule(
        SYSTEM,
        READ_UNSUPPORTED,
        "read not supported",
        _P,
        "this Atollon refuses the read of contacts/products that the sandbox offers (the "
        "crawler documents none): reconcile reports Atollon as a target it cannot read",
        error_type=ReadUnsupportedError,
    ),
    ErrorRule(
        SYSTEM,
        "http-400",
        "Bad Request",
        _P,
        "Atollon could not read the request (malformed JSON); fix the mapping, then replay",
    ),
    ErrorRule(
        SYSTEM,
        "http-401",
        "Unauthorized",
        _A,
        "credentials refused: check the Atollon instance name and api_token",
    ),
    ErrorRule(
        SYSTEM,
        "http-403",
        "Forbidden",
        _A,
        "check the Atollon instance name (and api_token when one is configured)",
    ),
)


def fail_code(message: str | None, status_code: int) -> str | None:
    """The vendor code of a FAIL answer; None when the HTTP status should decide instead."""
    text = (message or "").strip().casefold()
    for prefix, rule in FAIL_RULES:
        if text.startswith(prefix.casefold()):
            return rule.match
    if status_code < 400:
        return GENERIC_FAIL
    return None


def error_table(overrides: Mapping[str, ErrorClass] | None = None) -> ErrorTable:
    """Atollon's table (with the generic HTTP and transport rules behind it)."""
    return ErrorTable.build(SYSTEM, RULES, overrides)
