"""An ERP invoice as Atollon's ``invoice-issued`` body: step 2 of the billing saga
(:class:`delivery.sinks.onlineerp.OnlineErpSink`), from the invoice as the ERP stored it."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from adapters.atollon import ExternalId
from adapters.atollon.invoices import (
    AtollonInvoiceContext,
    AtollonInvoiceCustomer,
    AtollonInvoiceInput,
    AtollonInvoicePayment,
    AtollonInvoiceProduct,
    AtollonInvoiceRow,
    AtollonInvoiceTexts,
    AtollonInvoiceTotals,
    AtollonInvoiceValue,
)
from adapters.onlineerp import ErpInvoiceCreated
from adapters.onlineerp.models import ErpInvoiceLine
from delivery.sinks.invoices import atollon_state
from erpsync.models import Invoice

#: the ERP invoice field read as the invoice's currency when the flow maps one
CURRENCY_FIELD = "Devise"


def issued_invoice(
    invoice: Invoice,
    stored: ErpInvoiceCreated,
    *,
    erp_system: str,
    invoice_states: Mapping[str, str],
) -> AtollonInvoiceInput:
    """The Atollon ``invoice-issued`` body of an ERP invoice, as the ERP stored it."""
    erp = erp_system
    facture = stored.invoice
    currency = _text(facture.model_extra.get(CURRENCY_FIELD) if facture.model_extra else None)
    currency = currency or invoice.currency
    context = AtollonInvoiceContext(activity=invoice.activity_id, project=invoice.project_id)
    rows = [
        row
        for index, line in enumerate(facture.lines)
        if (row := _row(index, line, currency, erp, context)) is not None
    ]
    with_taxes = _total_with_taxes(stored, rows)
    customer = [ExternalId(system=erp, id=facture.bill_to.customer_number)]
    date = facture.date.isoformat() if facture.date else invoice.date
    return AtollonInvoiceInput(
        invoice_number=stored.number,
        external_number=stored.number,
        external_reference_number=facture.reference,
        issued_date=date,
        taxation_date=date,
        state_name=atollon_state(invoice_states, stored.state, stored.number),
        customer=AtollonInvoiceCustomer(
            customer_external_id=customer, contact_external_id=customer
        ),
        rows=rows,
        # The page's example shows the total with VAT in both (786500 = 650000 + 136500);
        # the total before taxes is the rows' netTotal (docs/sandbox-conventions.md).
        totals=AtollonInvoiceTotals(
            currency=currency,
            currency_rate=Decimal(1),
            total=with_taxes,
            total_with_vat=with_taxes,
        ),
        payment=AtollonInvoicePayment(
            to_be_paid=stored.balance if stored.balance is not None else with_taxes
        ),
        context=context,
        texts=AtollonInvoiceTexts(description=facture.description),
    )


def _row(
    index: int,
    line: ErpInvoiceLine,
    currency: str | None,
    erp: str,
    context: AtollonInvoiceContext,
) -> AtollonInvoiceRow | None:
    """One invoiced line as an Atollon row (None for a text line: nothing to invoice)."""
    net = line.net_amount
    if net is None and line.quantity is not None and line.unit_price is not None:
        net = _cents(line.quantity * line.unit_price)
    if net is None:
        return None  # a text line: nothing to invoice
    return AtollonInvoiceRow(
        order_index=index,
        description=line.description,
        value=AtollonInvoiceValue(
            net_total=net,
            currency=currency,
            unit_price=line.unit_price,
            unit_quantity=line.quantity,
            vat=f"{line.tax_rate.normalize():f} %" if line.tax_rate is not None else None,
            vat_percent=line.tax_rate,
            vat_value=line.tax_amount,
        ),
        product=(
            AtollonInvoiceProduct(
                item_name=line.description,
                product_external_id=[ExternalId(system=erp, id=line.product_number)],
            )
            if line.product_number
            else None
        ),
        context=context,
    )


def _total_with_taxes(stored: ErpInvoiceCreated, rows: list[AtollonInvoiceRow]) -> Decimal:
    """The ERP's total with taxes, else its parts (the ERP's, else the rows' sums) added."""
    net_total = stored.total_before_taxes
    if net_total is None:
        net_total = sum((row.value.net_total for row in rows), Decimal(0))
    taxes = stored.total_taxes
    if taxes is None:
        taxes = sum((row.value.vat_value or Decimal(0) for row in rows), Decimal(0))
    with_taxes = stored.total_with_taxes
    if with_taxes is None:
        with_taxes = net_total + taxes
    return with_taxes


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
