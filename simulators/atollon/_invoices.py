"""Issued invoices (``invoice-issued``) and the invoice states (``invoice_status``).

The crawler page documents ``POST invoice-issued`` (create) and ``PUT invoice-issued?id=``
(update), both with "the same structure as the Sales Order example", and no read. The
sandbox also serves ``GET invoice-issued`` (docs/sandbox-conventions.md: by ``id``, by
``invoiceNumber``, or every invoice page by page with ``offset``/``limit``), in the shape of
the documented ``GET order-received``, so that a client can find an invoice it may have
created before a lost answer.

The instance's invoice states are the three the page lists, plus ``Cancelled`` and the
``Schváleno`` state of the page's own Sales Order example (an instance configures its own
states; the sandbox's are in docs/sandbox-conventions.md). A ``stateName`` outside them is
refused; without one an invoice is ``Issued``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from simulators.atollon._request import FailError, IdSequence, filled, now, require_object

#: the invoice states the crawler page lists, as ``GET invoice_status`` answers them
INVOICE_STATUSES: tuple[dict[str, Any], ...] = (
    {
        "stateId": "89342000",
        "name": "Issued",
        "priority": 99,
        "enabled": 3,
        "acl": "INVS000000002410",
        "treeHandle": "60430000",
    },
    {
        "stateId": "89342001",
        "name": "Pending",
        "priority": 50,
        "enabled": 12,
        "acl": "INVS000000002411",
        "treeHandle": "60430001",
    },
    {
        "stateId": "89342002",
        "name": "Paid",
        "priority": 10,
        "enabled": 1,
        "acl": "INVS000000002412",
        "treeHandle": "60430002",
    },
    {
        "stateId": "89342003",
        "name": "Cancelled",
        "priority": 5,
        "enabled": 1,
        "acl": "INVS000000002413",
        "treeHandle": "60430003",
    },
    {
        "stateId": "132606101",
        "name": "Schv\u00e1leno",
        "priority": 60,
        "enabled": 1,
        "acl": "INVS000000002414",
        "treeHandle": "60430004",
    },
)
DEFAULT_STATE = "Issued"
_STATE_NAMES = {state["name"] for state in INVOICE_STATUSES}
#: a stored invoice's ``state`` is its state's id as a number, as in the Sales Order example
_STATE_IDS = {state["name"]: int(state["stateId"]) for state in INVOICE_STATUSES}
#: the most invoices one ``GET invoice-issued`` page holds
MAX_PAGE = 500


class InvoiceStore:
    """Issued invoices, stored in the body's own (Sales Order) shape with an id assigned."""

    def __init__(self, ids: IdSequence) -> None:
        self.ids = ids
        self.invoices: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Forget every invoice."""
        self.invoices.clear()

    @staticmethod
    def _check(body: dict[str, Any]) -> None:
        state = filled(body, "stateName")
        if state is not None and state not in _STATE_NAMES:
            expected = ", ".join(sorted(_STATE_NAMES))
            raise FailError(f"Unknown invoice status: {state} (expected one of {expected})")

    def create(self, body: Any) -> dict[str, Any]:
        """``POST invoice-issued``: store a new invoice."""
        body = require_object(body, "the request body")
        self._check(body)
        stamp = now()
        invoice = {**copy.deepcopy(body), "id": self.ids.next(), "created": stamp}
        invoice["modified"] = stamp
        invoice["stateName"] = filled(body, "stateName") or DEFAULT_STATE
        invoice["state"] = _STATE_IDS[invoice["stateName"]]
        self.invoices[invoice["id"]] = invoice
        return self._answer(invoice)

    def update(self, invoice_id: str | None, body: Any) -> dict[str, Any]:
        """``PUT invoice-issued?id=``: replace the given top-level fields of an invoice."""
        if invoice_id is None:
            raise FailError("Invalid request: id is required")
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise FailError(f"Invoice not found: {invoice_id}")
        body = require_object(body, "the request body")
        self._check(body)
        invoice.update(copy.deepcopy({k: v for k, v in body.items() if k not in ("id", "created")}))
        invoice["stateName"] = filled(invoice, "stateName") or DEFAULT_STATE
        invoice["state"] = _STATE_IDS[invoice["stateName"]]
        invoice["modified"] = now()
        return self._answer(invoice)

    @staticmethod
    def _answer(invoice: dict[str, Any]) -> dict[str, Any]:
        return {
            "result": "SUCCESS",
            "invoiceId": invoice["id"],
            "id": invoice["id"],
            "invoiceNumber": invoice.get("invoiceNumber"),
        }

    def get(self, params: Mapping[str, str | None]) -> dict[str, Any] | list[dict[str, Any]]:
        """``GET invoice-issued`` (a sandbox convention): ``?id=`` one invoice;
        ``?invoiceNumber=`` the invoices with that number (a list, maybe empty); neither:
        every invoice, oldest first, from ``offset`` (0), at most ``limit`` (500)."""
        invoice_id, number = params.get("id"), params.get("invoiceNumber")
        if invoice_id is not None:
            invoice = self.invoices.get(invoice_id)
            if invoice is None:
                raise FailError(f"Invoice not found: {invoice_id}")
            return copy.deepcopy(invoice)
        if number is not None:
            return [
                copy.deepcopy(invoice)
                for invoice in self.invoices.values()
                if str(invoice.get("invoiceNumber")) == number
            ]
        offset = _count(params.get("offset"), "offset", 0)
        limit = min(_count(params.get("limit"), "limit", MAX_PAGE), MAX_PAGE)
        return [copy.deepcopy(i) for i in list(self.invoices.values())[offset : offset + limit]]

    def records(self) -> list[dict[str, Any]]:
        """Every invoice, oldest first."""
        return [copy.deepcopy(invoice) for invoice in self.invoices.values()]


def _count(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise FailError(f"Invalid request: {name} must be a whole number") from None
    if parsed < 0:
        raise FailError(f"Invalid request: {name} must not be negative")
    return parsed
