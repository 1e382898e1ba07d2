"""Atollon billing → ERP customer invoices: a two-step saga that invoices exactly once.

1. **Invoice**: create the ERP ``CustomerInvoice`` with ``If-None-Match: *`` and the
   deterministic ``Référence`` of its billing items (:func:`billing_reference`). The ERP
   refuses a second invoice with that reference (RecordExistsError): the step is already
   done, and ``find_invoice`` gives its number.
2. **Mark billed**: ``PUT billing`` in Atollon sets the items ``Billed`` (and the activity
   or project status when the flow's mapping names one). Setting a status an item already
   has succeeds, so this step can run any number of times.

The saga's progress is the ledger's ``extra`` (:class:`SagaProgress`). It is checkpointed as
soon as the invoice exists, before step 2, so a worker killed between the steps, or a step
2 that fails and is retried or replayed, resumes at step 2 without asking the slow ERP
robot again. A kill between the ERP's answer and the checkpoint is covered by step 1's
412. Items the ledger says are invoiced are never invoiced again: an event listing them
beside new items (a poll that ran while step 2 was under way) invoices only the new ones.

A billing ``delete`` means the activity has no item left ToBeInvoiced (billed, cancelled or
postponed in Atollon): there is nothing to do, and it never cancels an invoice.

Flow mapping (``[flows.<billing flow>.mapping.onlineerp]``):

* ``fields.activity_status`` / ``fields.project_status``: Atollon status names set in step 2
  (Atollon changes the activity's status only once none of its items is left to invoice);
* ``custom_fields``: ERP field ← invoice path, e.g. ``Devise = "currency"``; a field named
  ``LigneFacture.<name>`` is set on every line from a line path, e.g.
  ``"LigneFacture.TauxTaxe" = "vat_rate"``. The ERP's documented invoice has no currency
  or tax fields (it taxes by its own customer and product setup), so none is sent unless
  mapped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.atollon import (
    AtollonBillingItemStatus,
    AtollonBillingUpdate,
    AtollonClient,
    AtollonStatusRef,
    BillingStatus,
)
from adapters.onlineerp import ErpInvoice, OnlineErpClient
from adapters.onlineerp.errors import INVALID_BODY_CUSTOMER, INVALID_BODY_PRODUCT
from erpsync.errors import (
    DependencyError,
    ErrorClass,
    PermanentError,
    RecordExistsError,
)
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, resolve
from erpsync.models import Invoice, InvoiceLine
from erpsync.settings import AtollonSettings, OnlineErpSettings
from workers.engine import Action, ApplyContext, ApplyResult, InvalidSourceDataError

log = structlog.get_logger("erpsync.worker")

#: Prefix of the invoice references erpsync creates from Atollon work.
REFERENCE_PREFIX = "ATL"
#: The longest reference made. The ERP's limit on ``Référence`` is not documented: 20
#: characters is a conservative guess (longer forms fall back to a pure hash).
REFERENCE_MAX_LEN = 20
#: The ``fields`` of the flow mapping that name Atollon statuses to set in step 2.
ACTIVITY_STATUS = "activity_status"
PROJECT_STATUS = "project_status"
LINE_FIELD_PREFIX = "LigneFacture."


def _digest(parts: Sequence[str], size: int) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


def billing_reference(activity_id: str, item_ids: Sequence[str]) -> str:
    """The invoice reference of some billing items of one activity (deterministic).

    ``ATL-<activity id>-<8 hex of the sorted item ids>``, or ``ATL-<16 hex>`` when that
    would be longer than :data:`REFERENCE_MAX_LEN`. The same items always give the same
    reference, whatever order Atollon lists them in; other items give another one.
    """
    parts = [activity_id, *sorted(set(item_ids))]
    readable = f"{REFERENCE_PREFIX}-{activity_id}-{_digest(parts, 4)}"
    if len(readable) <= REFERENCE_MAX_LEN:
        return readable
    return f"{REFERENCE_PREFIX}-{_digest(parts, 8)}"


class SagaProgress(BaseModel):
    """How far the saga got for one billing record (stored as the ledger's ``extra``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: Literal["invoiced", "billed"]
    reference: str
    invoice_number: str | None = None
    item_ids: list[str] = Field(default_factory=list, description="items of that invoice")
    invoiced_item_ids: list[str] = Field(
        default_factory=list, description="every item of the record invoiced so far"
    )

    @classmethod
    def parse(cls, extra: str | None) -> SagaProgress | None:
        """The progress in a ledger's ``extra``; None when there is none (or it is unreadable:
        then step 1 runs again and the ERP's 412 still prevents a second invoice)."""
        if not extra:
            return None
        try:
            return cls.model_validate_json(extra)
        except ValidationError:
            log.warning("sync.billing_progress_unreadable")
            return None


def _wire(value: Any) -> Any:
    """A value for the ERP's JSON (amounts as numbers, as the ERP expects)."""
    return float(value) if isinstance(value, Decimal) else value


class OnlineErpSink:
    """Creates customer invoices in the ERP, exactly once, then marks Atollon items Billed."""

    target = "onlineerp"

    def __init__(
        self,
        settings: OnlineErpSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
        *,
        atollon: AtollonSettings | None = None,
        atollon_http: httpx.Client | None = None,
        atollon_overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.overrides = overrides
        self.atollon = atollon
        self.atollon_http = atollon_http
        self.erp = OnlineErpClient(http, settings, error_overrides=overrides)
        self.crm = (
            AtollonClient(atollon_http, atollon, error_overrides=atollon_overrides)
            if atollon is not None and atollon_http is not None
            else None
        )

    def handles(self, entity: str) -> bool:
        return entity == "billing" and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    # -- the saga ---------------------------------------------------------------------
    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        ledger = context.ledger
        if event.operation == "delete":
            # Nothing left to invoice for this activity; what was done stays done.
            return ApplyResult("unchanged", extra=ledger.extra if ledger else None)
        invoice = self._invoice(event)
        progress = SagaProgress.parse(ledger.extra if ledger else None)
        done = set(progress.invoiced_item_ids) if progress else set()
        pending = [item for item in invoice.billing_item_ids if item not in done]
        action: Action = "updated"
        if pending or progress is None:
            reference, lines = self._part(invoice, pending)
            number = self._create(invoice, reference, lines)
            progress = SagaProgress(
                step="invoiced",
                reference=reference,
                invoice_number=number,
                item_ids=pending,
                invoiced_item_ids=sorted(done | set(pending)),
            )
            context.checkpoint(progress.model_dump_json())
            action = "invoiced"
        else:
            log.info("sync.billing_resumed", reference=progress.reference, step=progress.step)
        self._mark_billed(invoice)
        billed = progress.model_copy(update={"step": "billed"})
        return ApplyResult(action, target_id=billed.invoice_number, extra=billed.model_dump_json())

    def _invoice(self, event: ChangeEvent) -> Invoice:
        payload = event.payload
        if not payload.get("customer_key"):
            raise InvalidSourceDataError(
                f"billing {event.key} has no ERP customer",
                system=event.source,
                operation="map",
                vendor_code="invalid-source-data",
                hint=f"the Atollon customer contact of activity {payload.get('activity_id')} "
                f"has no externalId for the ERP system ({self._erp_system()}): add the ERP "
                "customer number (NoClient) there and the next poll invoices it, or edit the "
                "dead letter's customer_key and replay",
                response_excerpt="customer_key: missing",
            )
        invoice = Invoice.model_validate(payload)
        if not invoice.billing_item_ids:
            raise InvalidSourceDataError(
                f"billing {event.key} names no billing items",
                system=event.source,
                operation="map",
                vendor_code="invalid-source-data",
                hint="an invoice from Atollon needs the billing item ids to mark Billed; "
                "edit the dead letter's billing_item_ids and replay",
            )
        return invoice

    def _erp_system(self) -> str:
        return self.atollon.erp_system if self.atollon is not None else "onlineerp"

    @staticmethod
    def _part(invoice: Invoice, pending: list[str]) -> tuple[str, list[InvoiceLine]]:
        """The reference and lines of the invoice of ``pending`` items."""
        if len(pending) == len(invoice.billing_item_ids):
            return invoice.reference, list(invoice.lines)
        wanted = set(pending)
        lines = [line for line in invoice.lines if line.source_item_id in wanted]
        return billing_reference(invoice.activity_id, pending), lines

    # -- step 1 -----------------------------------------------------------------------
    def _create(self, invoice: Invoice, reference: str, lines: list[InvoiceLine]) -> str | None:
        """Create the invoice; returns its number (None: it exists but cannot be read back)."""
        body = self.erp_invoice(invoice, reference, lines)
        try:
            return self.erp.create_invoice(body).number
        except RecordExistsError:
            found = self.erp.find_invoice(reference)
        except DependencyError as exc:
            exc.hint = self._dependency_hint(exc, invoice, lines)
            raise
        if found is None:
            # The ERP said the reference exists: that is authoritative, even unread.
            log.warning("sync.invoice_exists_unread", reference=reference)
            return None
        if found.invoice.bill_to.customer_number != invoice.customer_key:
            raise PermanentError(
                f"onlineerp invoice {found.number} has this Référence for another customer",
                system="onlineerp",
                operation="create invoice",
                vendor_code="reference-taken",
                hint=f"an invoice with Référence {reference} exists for customer "
                f"{found.invoice.bill_to.customer_number}, not {invoice.customer_key}: "
                "check it in the ERP; nothing was marked Billed",
            )
        log.info("sync.invoice_existed", reference=reference, invoice=found.number)
        return found.number

    def erp_invoice(self, invoice: Invoice, reference: str, lines: list[InvoiceLine]) -> ErpInvoice:
        """The ERP ``Facture`` of ``lines`` of the invoice, with the mapped custom fields."""
        mapping = self.mappings.get("billing", TargetMapping())
        record = invoice.model_dump()
        facture: dict[str, Any] = {}
        line_fields: dict[str, str] = {}
        for name, path in mapping.custom_fields.items():
            if name.startswith(LINE_FIELD_PREFIX):
                line_fields[name.removeprefix(LINE_FIELD_PREFIX)] = path
            elif (value := resolve(record, path)) is not None:
                facture[name] = _wire(value)
        erp_lines = []
        for line in lines:
            data: dict[str, Any] = {
                "strNoProduit": line.product_key,
                "QteFacture": line.quantity,
                "PrixUnitaire": line.unit_price,
                "DescriptionLigne": line.description,
            }
            line_record = line.model_dump()
            for name, path in line_fields.items():
                if (value := resolve(line_record, path)) is not None:
                    data[name] = _wire(value)
            erp_lines.append(data)
        return ErpInvoice.model_validate(
            {
                **facture,
                "Référence": reference,
                "Description": invoice.description or None,
                "DateFacture": invoice.date,
                "InfoClientFacturerA": {"NoClient": invoice.customer_key},
                "LigneFacture": erp_lines,
            }
        )

    @staticmethod
    def _dependency_hint(exc: DependencyError, invoice: Invoice, lines: list[InvoiceLine]) -> str:
        if exc.vendor_code == INVALID_BODY_CUSTOMER:
            return (
                f"customer {invoice.customer_key} must exist in the ERP before it can be "
                "invoiced: create it there (or correct the ERP externalId of the Atollon "
                "customer contact), then replay; nothing was invoiced or marked Billed"
            )
        if exc.vendor_code == INVALID_BODY_PRODUCT:
            products = ", ".join(sorted({line.product_key for line in lines if line.product_key}))
            return (
                f"a product of the invoice ({products}) must exist in the ERP: create it "
                "there (or correct the product's ERP externalId in Atollon), then replay; "
                "nothing was invoiced or marked Billed"
            )
        return exc.hint or "a record the invoice refers to is missing in the ERP; then replay"

    # -- step 2 -----------------------------------------------------------------------
    def _mark_billed(self, invoice: Invoice) -> None:
        if self.crm is None:
            raise PermanentError(
                "atollon is not configured: billing items cannot be marked Billed",
                system="atollon",
                operation="update billing",
                hint="configure systems.atollon (the billing flow's source), then replay",
            )
        fields = self.mappings.get("billing", TargetMapping()).fields
        project_status = fields.get(PROJECT_STATUS)
        update = AtollonBillingUpdate(
            activity=AtollonStatusRef(
                id=invoice.activity_id, status_name=fields.get(ACTIVITY_STATUS)
            ),
            project=(
                AtollonStatusRef(id=invoice.project_id, status_name=project_status)
                if project_status and invoice.project_id
                else None
            ),
            billing_items=[
                AtollonBillingItemStatus(id=item, billing_status=str(BillingStatus.BILLED))
                for item in invoice.billing_item_ids
            ],
        )
        self.crm.update_billing([update])

    def close(self) -> None:
        self.http.close()
        if self.atollon_http is not None:
            self.atollon_http.close()
