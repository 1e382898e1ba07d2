"""OnlineERP invoice stream: the invoices erpsync made from Atollon work, and their state.

An ERP invoice is create-only: what changes afterwards is its state (open, partly paid,
paid, cancelled) and what is paid and left due (docs/sandbox-conventions.md). The ERP has no
modified-since filter, so change detection is the customers' one: content fingerprints of a
full paged scan (``GET /Entity/CustomerInvoice``), one record per invoice keyed by its
``NoFacture``. A new invoice is an upsert (its ``open`` state), a payment or a cancellation
another. Only invoices whose ``Référence`` carries the billing saga's prefix (``ATL-``) are
followed: the ERP's other invoices were never in Atollon.

The payload (:class:`delivery.sinks.invoices.InvoiceState`) holds the whole invoice as the
ERP stored it (lines, taxes, totals), so that ``erpsync reconcile`` compares the Atollon
invoice with it field by field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.onlineerp import ErpInvoiceCreated, OnlineErpClient
from producers.base import SnapshotStream, SourceRecord

#: the ``Référence`` prefix of the invoices the billing saga creates
#: (:data:`delivery.sinks.onlineerp.REFERENCE_PREFIX`)
BILLING_REFERENCE_PREFIX = "ATL-"
#: the ERP invoice field read as the invoice's currency when a flow maps one
CURRENCY_FIELD = "Devise"


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def invoice_payload(invoice: ErpInvoiceCreated) -> dict[str, Any]:
    """An ERP invoice as the canonical ``invoice`` record (a dict; the sink validates it)."""
    facture = invoice.invoice
    extra = facture.model_extra or {}
    return {
        "number": invoice.number,
        "reference": facture.reference,
        "state": invoice.state,
        "customer_key": facture.bill_to.customer_number,
        "date": facture.date.isoformat() if facture.date else None,
        "currency": _text(extra.get(CURRENCY_FIELD)),
        "total": _amount(invoice.total_before_taxes),
        "total_taxes": _amount(invoice.total_taxes),
        "total_with_taxes": _amount(invoice.total_with_taxes),
        "amount_paid": _amount(invoice.amount_paid),
        "balance": _amount(invoice.balance),
        "lines": [
            {
                "product_key": line.product_number,
                "description": line.description,
                "quantity": _amount(line.quantity),
                "unit_price": _amount(line.unit_price),
                "net": _amount(line.net_amount),
                "tax_rate": _amount(line.tax_rate),
                "tax": _amount(line.tax_amount),
            }
            for line in facture.lines
        ],
    }


@dataclass
class OnlineErpInvoices(SnapshotStream):
    """ERP customer invoices made from Atollon work (``CustomerInvoice``), by ``NoFacture``."""

    client: OnlineErpClient = field(kw_only=True)
    page_size: int | None = field(default=None, kw_only=True)
    reference_prefix: str = field(default=BILLING_REFERENCE_PREFIX, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in self.client.iter_invoice_pages(page_size=self.page_size):
            yield [
                SourceRecord(invoice.number, invoice_payload(invoice))
                for invoice in page
                if invoice.invoice.reference.startswith(self.reference_prefix)
            ]
