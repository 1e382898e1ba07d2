"""ERP invoice states → the Atollon invoice's state (``PUT invoice-issued?id=``).

The ``invoice`` flow (source ``onlineerp``, target ``atollon``) carries every ERP customer
invoice that erpsync created from Atollon work (``Référence`` ``ATL-…``), with its state as
the ERP shows it: ``open``, ``partly_paid``, ``paid``, ``cancelled``
(:data:`adapters.onlineerp.models.INVOICE_STATES`). The flow's mapping names the Atollon
state of each, by the names ``GET invoice_status`` lists::

    [flows.invoices.mapping.atollon.fields]
    open = "Issued"
    partly_paid = "Pending"
    paid = "Paid"
    cancelled = "Cancelled"

(:data:`DEFAULT_INVOICE_STATES` fills the states left out). ``erpsync doctor`` checks every
name against the instance's list. The billing saga (:mod:`delivery.sinks.onlineerp`) uses the
same map for the state an invoice is recorded with.

The Atollon invoice is found by its number (``GET invoice-issued?invoiceNumber=``, a sandbox
convention) the first time, then by the id kept in the ledger. An invoice the saga has not
recorded yet waits (a dependency) unless its state is the one it will be recorded with.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field

from adapters.atollon import external_id_for
from adapters.atollon.invoices import AtollonInvoiceClient, AtollonIssuedInvoice
from delivery.engine import ApplyContext, ApplyResult
from delivery.sinks.view import Observed, View, view
from erpsync.errors import (
    AmbiguousMatchError,
    DependencyError,
    ErrorClass,
    PermanentError,
)
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings

log = structlog.get_logger("erpsync.worker")

#: the entity of the ERP invoice stream
INVOICE_ENTITY = "invoice"
#: the ``Référence`` prefix of the invoices the billing saga makes (and records in Atollon)
REFERENCE_PREFIX = "ATL-"
#: canonical ERP invoice state -> Atollon invoice state, where the flow's mapping is silent
DEFAULT_INVOICE_STATES: dict[str, str] = {
    "open": "Issued",
    "partly_paid": "Pending",
    "paid": "Paid",
    "cancelled": "Cancelled",
}


def invoice_state_map(mapping: TargetMapping | None) -> dict[str, str]:
    """The canonical state -> Atollon state map of the ``invoice`` flow's Atollon mapping."""
    found = dict(DEFAULT_INVOICE_STATES)
    if mapping is not None:
        found.update(
            {state: name for state, name in mapping.fields.items() if name and name.strip()}
        )
    return found


def atollon_state(states: Mapping[str, str], state: str, number: str) -> str:
    """The Atollon state of an ERP invoice's canonical state, or a permanent error."""
    name = states.get(state)
    if name is None:
        raise PermanentError(
            f"ERP invoice {number} is in state {state!r}, which maps to no Atollon state",
            system="atollon",
            operation="map invoice state",
            vendor_code="unmapped-invoice-state",
            hint=f'add {state} = "<an invoice_status name>" to the invoice flow\'s '
            "[flows.<name>.mapping.atollon.fields] (erpsync doctor lists Atollon's states), "
            "then replay",
        )
    return name


class InvoiceState(BaseModel):
    """The canonical payload of an ERP invoice (entity ``invoice``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    number: str = Field(min_length=1)
    reference: str
    state: str = Field(min_length=1)
    customer_key: str | None = None
    date: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    total_taxes: Decimal | None = None
    total_with_taxes: Decimal | None = None
    amount_paid: Decimal | None = None
    balance: Decimal | None = None
    lines: list[dict[str, Any]] = Field(default_factory=list)


class AtollonInvoiceSink:
    """Keeps the state of the Atollon invoices erpsync recorded equal to the ERP's."""

    target = "atollon"

    def __init__(
        self,
        settings: AtollonSettings,
        http: httpx.Client,
        mapping: TargetMapping | None,
        overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.states = invoice_state_map(mapping)
        self.crm = AtollonInvoiceClient(http, settings, error_overrides=overrides)

    def handles(self, entity: str) -> bool:
        return entity == INVOICE_ENTITY

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        ledger = context.ledger
        if event.operation == "delete":
            # An ERP invoice cannot be deleted (a credit note corrects it): nothing to follow.
            return ApplyResult("unchanged", target_id=ledger.target_id if ledger else None)
        invoice = InvoiceState.model_validate(event.payload)
        wanted = atollon_state(self.states, invoice.state, invoice.number)
        invoice_id = ledger.target_id if ledger is not None else None
        if not invoice_id:
            found = self.find(invoice.number)
            if found is None and context.forced:
                # A reconcile's repair of a missing invoice: only the billing saga can record
                # it (it knows the activity); say so instead of waiting.
                raise PermanentError(
                    f"ERP invoice {invoice.number} is not in Atollon",
                    system="atollon",
                    operation="find invoice",
                    vendor_code="invoice-not-recorded",
                    hint=f"the billing flow records invoice {invoice.number} "
                    f"({invoice.reference}) in Atollon: look at that flow's dead letters for "
                    "why it did not and replay them; the invoice flow only moves its state",
                )
            if found is None:
                if wanted == self.states.get("open"):
                    # The billing saga records it with the state it reads from the ERP.
                    return ApplyResult("unchanged")
                raise DependencyError(
                    f"ERP invoice {invoice.number} is not recorded in Atollon yet",
                    system="atollon",
                    operation="find invoice",
                    vendor_code="invoice-not-recorded",
                    hint=f"the billing flow records invoice {invoice.number} in Atollon; once "
                    "it has (see its dead letters if it cannot), replay this one",
                )
            if found.state_name == wanted:
                return ApplyResult("unchanged", target_id=found.id, counts=_counts(invoice))
            invoice_id = found.id
        self.crm.set_invoice_state(invoice_id, wanted)
        log.info("sync.invoice_state_set", invoice=invoice.number, state=wanted)
        return ApplyResult("updated", target_id=invoice_id, counts=_counts(invoice))

    # -- reconcile: the Atollon invoices beside the ERP's ------------------------------
    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What Atollon should show of an ERP invoice: as the billing saga records it, in
        the state the map gives."""
        invoice = InvoiceState.model_validate(payload)
        lines = []
        for line in invoice.lines:
            net = _decimal(line.get("net"))
            quantity, price = _decimal(line.get("quantity")), _decimal(line.get("unit_price"))
            if net is None and quantity is not None and price is not None:
                net = (quantity * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            if net is None:
                continue  # a text line is not recorded
            lines.append(
                _line(line.get("product_key"), quantity, price, net, line.get("tax_rate"),
                      line.get("tax"))
            )  # fmt: skip
        fields: dict[str, Any] = {
            "number": invoice.number,
            "reference": invoice.reference,
            "customer_key": invoice.customer_key,
            "date": invoice.date,
            "state": self.states.get(invoice.state, invoice.state),
            "total": _amount(invoice.total),
            "total_taxes": _amount(invoice.total_taxes),
            "total_with_taxes": _amount(invoice.total_with_taxes),
            "lines": lines,
        }
        if invoice.currency is not None:
            fields["currency"] = invoice.currency  # else the items' currency was recorded
        return view(fields)

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every Atollon invoice recorded from an ERP invoice of the billing saga, by number."""
        system = self.crm.erp_system
        for page in self.crm.iter_invoices():
            for shown in page:
                reference = shown.external_reference_number or ""
                if not shown.invoice_number or not reference.startswith(REFERENCE_PREFIX):
                    continue
                rows = shown.rows
                nets = [row.value.net_total for row in rows if row.value.net_total is not None]
                taxes = [row.value.vat_value for row in rows if row.value.vat_value is not None]
                customer = shown.customer
                fields: dict[str, Any] = {
                    "number": shown.invoice_number,
                    "reference": reference,
                    "customer_key": external_id_for(customer.customer_external_id, system)
                    if customer is not None
                    else None,
                    "date": shown.issued_date,
                    "state": shown.state_name,
                    "total": _amount(sum(nets, Decimal(0)) if nets else None),
                    "total_taxes": _amount(sum(taxes, Decimal(0)) if taxes else None),
                    "total_with_taxes": _amount(shown.totals.total_with_vat)
                    if shown.totals is not None
                    else None,
                    "currency": shown.totals.currency if shown.totals is not None else None,
                    "lines": [
                        _line(
                            external_id_for(row.product.product_external_id, system)
                            if row.product is not None
                            else None,
                            row.value.unit_quantity,
                            row.value.unit_price,
                            row.value.net_total,
                            row.value.vat_percent,
                            row.value.vat_value,
                        )
                        for row in rows
                    ],
                }
                yield Observed(shown.invoice_number, shown.id, view(fields))

    def known_limits(self, entity: str) -> list[str]:
        """Nothing: every field of the view is written by ``invoice-issued``."""
        return []

    def find(self, number: str) -> AtollonIssuedInvoice | None:
        """The Atollon invoice with this number; several are an ambiguity."""
        found = [i for i in self.crm.find_invoices(number) if i.invoice_number == number]
        if len(found) > 1:
            raise AmbiguousMatchError(
                f"atollon has {len(found)} invoices numbered {number}",
                system="atollon",
                operation="find invoice",
                vendor_code="invoice-ambiguous",
                hint=f"keep one Atollon invoice numbered {number} (ids "
                f"{', '.join(i.id for i in found)}), then replay",
            )
        return found[0] if found else None

    def close(self) -> None:
        self.http.close()


def _counts(invoice: InvoiceState) -> tuple[str, ...]:
    """The counter of an Atollon invoice now in a paid, partly paid or cancelled state
    (``erpsync status``): ``invoice_<state>``; none for an open one."""
    return () if invoice.state == "open" else (f"invoice_{invoice.state}",)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _amount(value: Any) -> str | None:
    """An amount or quantity in one comparable form: ``21``, ``21.5``, ``3.14``."""
    number = _decimal(value)
    if number is None or not number.is_finite():
        return None
    return f"{number.normalize():f}"


def _line(
    product_key: Any, quantity: Any, price: Any, net: Any, tax_rate: Any, tax: Any
) -> dict[str, Any]:
    return {
        "product_key": product_key or None,
        "quantity": _amount(quantity),
        "unit_price": _amount(price),
        "net": _amount(net),
        "tax_rate": _amount(tax_rate),
        "tax": _amount(tax),
    }
