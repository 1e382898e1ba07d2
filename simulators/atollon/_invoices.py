"""Issued invoices (``invoice-issued``) and the invoice states (``invoice_status``)."""

from __future__ import annotations

import copy
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
)
_STATE_NAMES = {state["name"] for state in INVOICE_STATUSES}


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

    def records(self) -> list[dict[str, Any]]:
        """Every invoice, oldest first."""
        return [copy.deepcopy(invoice) for invoice in self.invoices.values()]
