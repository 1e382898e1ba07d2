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
name against the instance's list. The billing saga (:mod:`workers.sinks.onlineerp`) uses the
same map for the state an invoice is recorded with.

The Atollon invoice is found by its number (``GET invoice-issued?invoiceNumber=``, a sandbox
convention) the first time, then by the id kept in the ledger. An invoice the saga has not
recorded yet waits (a dependency) unless its state is the one it will be recorded with.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field

from adapters.atollon.invoices import AtollonInvoiceClient, AtollonIssuedInvoice
from adapters.onlineerp.models import CANONICAL_INVOICE_STATES
from erpsync.errors import (
    AmbiguousMatchError,
    DependencyError,
    ErrorClass,
    PermanentError,
)
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings
from workers.engine import ApplyContext, ApplyResult

log = structlog.get_logger("erpsync.worker")

#: the entity of the ERP invoice stream
INVOICE_ENTITY = "invoice"
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


def state_map_problems(states: Mapping[str, str]) -> list[str]:
    """Keys of the map that are not canonical invoice states."""
    return [
        f"{state!r} is not an invoice state (states: {', '.join(CANONICAL_INVOICE_STATES)})"
        for state in states
        if state not in CANONICAL_INVOICE_STATES
    ]


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
                return ApplyResult("unchanged", target_id=found.id)
            invoice_id = found.id
        self.crm.set_invoice_state(invoice_id, wanted)
        log.info("sync.invoice_state_set", invoice=invoice.number, state=wanted)
        return ApplyResult("updated", target_id=invoice_id)

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
