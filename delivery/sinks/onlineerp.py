"""Atollon billing → ERP customer invoice → the same invoice in Atollon → items Billed.

A three-step saga that does each step exactly once, whatever is retried, replayed or killed:

1. **Invoice**: create the ERP ``CustomerInvoice`` with ``If-None-Match: *`` and the
   deterministic ``Référence`` of its billing items (:func:`erpsync.billing.billing_reference`,
   shared with the producer). The ERP refuses a second invoice with that reference
   (RecordExistsError): the step is already done, and ``find_invoice`` reads it back.
2. **Record**: ``POST invoice-issued`` records the invoice in Atollon as the ERP stored it
   (number, date, customer, rows with the products' external ids, totals and taxes as the
   ERP computed them, the state mapped from the ERP's; :meth:`OnlineErpSink.atollon_invoice`).
   Atollon has no guard against a second create, so the saga writes ``recording`` to its
   checkpoint *before* the POST; a saga that finds ``recording`` (the POST may have landed
   with its answer lost) looks the invoice up by number first (``GET invoice-issued``, a
   sandbox convention) and posts only when it is not there, and not before the earlier
   POST's HTTP timeout has passed (a worker killed or cut off mid-request: its request may
   still land until then, so the delivery waits as a dependency and looks again).
3. **Mark billed**: ``PUT billing`` in Atollon sets the items ``Billed`` (and the activity
   or project status when the flow's mapping names one). Setting a status an item already
   has succeeds, so this step can run any number of times.

The saga's progress is the ledger's ``extra`` (:class:`SagaProgress`), checkpointed after
step 1 (``invoiced``), before and after step 2's POST (``recording``, then ``recorded`` with
Atollon's invoice id), so a worker killed anywhere, or a later step that fails and is
retried or replayed, resumes at the step that did not complete without asking the slow ERP
robot again. A kill between the ERP's answer and the checkpoint is covered by step 1's
412. Items the ledger says are invoiced are never invoiced again: an event listing them
beside new items (a poll that ran while step 3 was under way) invoices only the new ones,
after finishing step 2 of the earlier invoice if it was left undone.

A billing ``delete`` means the activity has no item left ToBeInvoiced (billed, cancelled or
postponed in Atollon): there is nothing to do, and it never cancels an invoice.

Flow mapping (``[flows.<billing flow>.mapping.onlineerp]``):

* ``fields.activity_status`` / ``fields.project_status``: Atollon status names set in step 3
  (Atollon changes the activity's status only once none of its items is left to invoice);
* ``fields.time_sheets``: ``together`` (default) or ``apart``: time-sheet items (billing
  type 2) on the activity's invoice, or on an invoice of their own (the producer groups);
* ``custom_fields``: ERP field ← invoice path, e.g. ``Devise = "currency"``; a field named
  ``LigneFacture.<name>`` is set on every line from a line path, e.g.
  ``"LigneFacture.TauxTaxe" = "vat_rate"``. The ERP's documented invoice has no currency
  or tax fields (it taxes by its own customer and product setup), so none is sent unless
  mapped.

The Atollon state an invoice is recorded with comes from the ``invoice`` flow's map
(:func:`delivery.sinks.invoices.invoice_state_map`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.atollon import (
    AtollonBillingItemStatus,
    AtollonBillingUpdate,
    AtollonStatusRef,
    BillingStatus,
)
from adapters.atollon.invoices import (
    AtollonInvoiceClient,
    AtollonInvoiceInput,
)
from adapters.onlineerp import ErpInvoice, ErpInvoiceCreated, OnlineErpClient
from adapters.onlineerp.errors import INVALID_BODY_CUSTOMER, INVALID_BODY_PRODUCT
from delivery.engine import ApplyContext, ApplyResult, InvalidSourceDataError
from delivery.sinks.invoices import DEFAULT_INVOICE_STATES
from delivery.sinks.issued_invoice import issued_invoice
from erpsync.billing import billing_reference
from erpsync.errors import (
    AmbiguousMatchError,
    DependencyError,
    ErrorClass,
    PermanentError,
    RecordExistsError,
    TransientError,
)
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, resolve
from erpsync.models import Invoice, InvoiceLine
from erpsync.settings import AtollonSettings, OnlineErpSettings

log = structlog.get_logger("erpsync.worker")

#: The ``fields`` of the flow mapping that name Atollon statuses to set in step 2.
ACTIVITY_STATUS = "activity_status"
PROJECT_STATUS = "project_status"
LINE_FIELD_PREFIX = "LigneFacture."
#: the counter of the invoices recorded in Atollon (``erpsync status``), once each
RECORDED_COUNTER = "invoice_recorded"
#: beyond the Atollon client's timeout, how long an earlier POST of an invoice is assumed
#: able to land (a server may finish a request a little after its client gave up)
EARLIER_POST_MARGIN_S = 5.0


#: the saga's steps, in order: ERP invoice made, Atollon POST under way, recorded, billed
Step = Literal["invoiced", "recording", "recorded", "billed"]


class SagaProgress(BaseModel):
    """How far the saga got for one billing record (stored as the ledger's ``extra``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: Step
    reference: str
    invoice_number: str | None = None
    item_ids: list[str] = Field(default_factory=list, description="items of that invoice")
    invoiced_item_ids: list[str] = Field(
        default_factory=list, description="every item of the record invoiced so far"
    )
    atollon_invoice_id: str | None = Field(
        default=None, description="Atollon's id of the invoice once recorded (step 2)"
    )
    recorded: dict[str, str] = Field(
        default_factory=dict,
        description="every ERP invoice number of the record recorded in Atollon -> its id",
    )
    recording_at: float | None = Field(
        default=None, description="when step 2's POST was about to be sent (epoch seconds)"
    )
    counted: list[str] = Field(
        default_factory=list,
        description="recorded invoice numbers already counted (counter invoice_recorded)",
    )

    @property
    def unrecorded(self) -> bool:
        """Step 2 of the latest invoice is not done (``billed`` ledgers from before step 2
        existed count as done: their invoices predate recording in Atollon)."""
        return self.step in ("invoiced", "recording")

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
        invoice_states: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.overrides = overrides
        self.atollon = atollon
        self.atollon_http = atollon_http
        self.erp = OnlineErpClient(http, settings, error_overrides=overrides)
        self.crm = (
            AtollonInvoiceClient(atollon_http, atollon, error_overrides=atollon_overrides)
            if atollon is not None and atollon_http is not None
            else None
        )
        self.invoice_states = dict(invoice_states or DEFAULT_INVOICE_STATES)

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
        if progress is not None and progress.unrecorded:
            progress = self._record(invoice, progress, context, None)
        done = set(progress.invoiced_item_ids) if progress else set()
        pending = [item for item in invoice.billing_item_ids if item not in done]
        if pending or progress is None:
            reference, lines = self._part(invoice, pending)
            stored = self._create(invoice, reference, lines)
            progress = SagaProgress(
                step="invoiced",
                reference=reference,
                invoice_number=stored.number if stored else None,
                item_ids=pending,
                invoiced_item_ids=sorted(done | set(pending)),
                recorded=progress.recorded if progress else {},
            )
            context.checkpoint(progress.model_dump_json())
            progress = self._record(invoice, progress, context, stored)
        else:
            log.info("sync.billing_resumed", reference=progress.reference, step=progress.step)
        self._mark_billed(invoice)
        # Every invoice of the record is recorded before its items are billed: those not
        # counted yet are counted now, once (issued: action "invoiced"; invoice_recorded).
        newly = [number for number in progress.recorded if number not in progress.counted]
        billed = progress.model_copy(
            update={"step": "billed", "counted": sorted({*progress.counted, *newly})}
        )
        return ApplyResult(
            "invoiced" if newly else "updated",
            target_id=billed.invoice_number,
            extra=billed.model_dump_json(),
            counts=(RECORDED_COUNTER,) * len(newly),
        )

    def _invoice(self, event: ChangeEvent) -> Invoice:
        payload = event.payload
        if not payload.get("customer_key"):
            raise InvalidSourceDataError(
                f"billing {event.key} has no ERP customer",
                system=event.source,
                operation="map",
                vendor_code="invalid-source-data",
                hint=f"Atollon activity {payload.get('activity_id')} has neither a "
                "customerContact nor a contact with an externalId for the ERP system "
                f"({self._erp_system()}): add the ERP customer number (NoClient) to its "
                "customer contact and the next poll invoices it, or edit the dead letter's "
                "customer_key and replay",
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
    def _create(
        self, invoice: Invoice, reference: str, lines: list[InvoiceLine]
    ) -> ErpInvoiceCreated | None:
        """Create the invoice; returns it as the ERP stored it (None: it exists but cannot be
        read back)."""
        body = self.erp_invoice(invoice, reference, lines)
        try:
            return self.erp.create_invoice(body)
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
        return found

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
    def _atollon(self, operation: str) -> AtollonInvoiceClient:
        if self.crm is None:
            raise PermanentError(
                "atollon is not configured: the invoice cannot be recorded nor its items "
                "marked Billed",
                system="atollon",
                operation=operation,
                hint="configure systems.atollon (the billing flow's source), then replay",
            )
        return self.crm

    def _record(
        self,
        invoice: Invoice,
        progress: SagaProgress,
        context: ApplyContext,
        stored: ErpInvoiceCreated | None,
    ) -> SagaProgress:
        """Step 2: the ERP invoice of ``progress`` recorded in Atollon, exactly once."""
        crm = self._atollon("record invoice")
        if stored is None:
            stored = self._read_back(progress)
        found = None
        if progress.step == "recording":
            found = self._recorded_id(crm, stored.number)
            if found is None:
                self._wait_for_earlier_post(progress, stored.number)
        if found is None:
            recording = progress.model_copy(
                update={
                    "step": "recording",
                    "invoice_number": stored.number,
                    "recording_at": self.clock(),
                }
            )
            context.checkpoint(recording.model_dump_json())
            found = crm.record_invoice(self.atollon_invoice(invoice, stored)).invoice_id
            log.info("sync.invoice_recorded", invoice=stored.number, atollon_invoice=found)
        else:
            log.info("sync.invoice_was_recorded", invoice=stored.number, atollon_invoice=found)
        recorded = progress.model_copy(
            update={
                "step": "recorded",
                "invoice_number": stored.number,
                "atollon_invoice_id": found,
                "recorded": {**progress.recorded, stored.number: found},
            }
        )
        context.checkpoint(recorded.model_dump_json())
        return recorded

    def _wait_for_earlier_post(self, progress: SagaProgress, number: str) -> None:
        """An earlier POST of this invoice (a worker killed or cut off while sending it) may
        still land until its HTTP timeout has passed: until then, posting again could make a
        second invoice, so the delivery waits (a dependency) and looks again."""
        if progress.recording_at is None or self.atollon is None:
            return
        settle_s = self.atollon.timeout_s + EARLIER_POST_MARGIN_S
        left = progress.recording_at + settle_s - self.clock()
        if left > 0:
            raise DependencyError(
                f"atollon invoice {number}: an earlier POST may still land ({left:.0f} s)",
                system="atollon",
                operation="record invoice",
                vendor_code="invoice-post-may-land",
                retry_after_s=left,
                hint=f"an earlier attempt sent invoice {number} to Atollon and its answer "
                "was lost; erpsync looks for it again once that request can no longer land, "
                "and records it only if it is not there",
            )

    def _read_back(self, progress: SagaProgress) -> ErpInvoiceCreated:
        """The ERP's stored invoice of ``progress`` (by number, else by reference)."""
        if progress.invoice_number:
            stored = self.erp.get_invoice(progress.invoice_number)
        else:
            stored = self.erp.find_invoice(progress.reference)
        if stored is None:
            # The ERP said the invoice exists (step 1); its robot may not show it yet.
            raise TransientError(
                f"onlineerp invoice {progress.invoice_number or progress.reference} cannot "
                "be read back",
                system="onlineerp",
                operation="get invoice",
                vendor_code="invoice-unreadable",
                hint="the invoice exists in the ERP but is not readable yet; it is recorded "
                "in Atollon once it is",
            )
        return stored

    def _recorded_id(self, crm: AtollonInvoiceClient, number: str) -> str | None:
        """The Atollon id of the invoice numbered ``number``, if a lost answer hid it."""
        try:
            found = [i for i in crm.find_invoices(number) if i.invoice_number == number]
        except PermanentError as exc:
            exc.hint = (
                f"Atollon did not answer the look-up of invoice {number} (GET invoice-issued "
                "is a sandbox convention, undocumented): a POST of it may have landed. Look "
                "for it in Atollon: if it is not there, replay; if it is, drop this dead "
                "letter and mark the activity's items Billed"
            )
            raise
        if len(found) > 1:
            raise AmbiguousMatchError(
                f"atollon has {len(found)} invoices numbered {number}",
                system="atollon",
                operation="find invoice",
                vendor_code="invoice-ambiguous",
                hint=f"keep one Atollon invoice numbered {number}, then replay",
            )
        return found[0].id if found else None

    def atollon_invoice(self, invoice: Invoice, stored: ErpInvoiceCreated) -> AtollonInvoiceInput:
        """The Atollon ``invoice-issued`` body of an ERP invoice, as the ERP stored it."""
        return issued_invoice(
            invoice, stored, erp_system=self._erp_system(), invoice_states=self.invoice_states
        )

    # -- step 3 -----------------------------------------------------------------------
    def _mark_billed(self, invoice: Invoice) -> None:
        crm = self._atollon("update billing")
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
        crm.update_billing([update])

    def close(self) -> None:
        self.http.close()
        if self.atollon_http is not None:
            self.atollon_http.close()
