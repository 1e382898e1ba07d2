"""Atollon issued invoices: ``POST``/``PUT invoice-issued`` and the sandbox's read of them.

The crawler page documents ``POST invoice-issued`` (create) and ``PUT invoice-issued?id=``
(update), both "the same structure as the Sales Order example" (``GET order-received``), and
the states ``GET invoice_status`` lists. It documents no read of issued invoices, and no
guard against a second create: :meth:`AtollonInvoiceClient.find_invoices` and
:meth:`AtollonInvoiceClient.iter_invoices` use ``GET invoice-issued`` (by ``invoiceNumber``;
page by page with ``offset``/``limit``), an undocumented assumption the sandbox serves
(docs/sandbox-conventions.md). A real Atollon that refuses it raises the classified error of
its answer; callers treat that as "cannot tell", never as "not there".

Input models forbid unknown fields and leave unset fields out, as every crawler input does;
read models keep whatever else Atollon sends (the Sales Order shape has dozens of fields).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pydantic import Field, TypeAdapter, model_validator

from adapters._http import decode_json
from adapters.atollon._base import Amount, ExternalId, _Input, _Read
from adapters.atollon.client import AtollonClient

#: the most invoices one ``GET invoice-issued`` page asks for
INVOICE_PAGE_SIZE = 200


# --- writing ------------------------------------------------------------------------------


class AtollonInvoiceValue(_Input):
    """A row's amounts (``rows[].value``): net, unit price and quantity, VAT."""

    net_total: Amount = Field(alias="netTotal")
    currency: str | None = None
    unit_price: Amount | None = Field(default=None, alias="unitPrice")
    unit_quantity: Amount | None = Field(default=None, alias="unitQuantity")
    vat: str | None = Field(default=None, alias="VAT", description="the VAT rate's name")
    vat_percent: Amount | None = Field(default=None, alias="VATPercent")
    vat_value: Amount | None = Field(default=None, alias="VATValue")


class AtollonInvoiceProduct(_Input):
    """A row's product (``rows[].product``), found by its external ids."""

    item_name: str | None = Field(default=None, alias="itemName")
    product_external_id: list[ExternalId] = Field(default_factory=list, alias="productExternalId")


class AtollonInvoiceContext(_Input):
    """Where an invoice or row belongs (``context``): Atollon project and activity ids."""

    project: str | None = None
    activity: str | None = None


class AtollonInvoiceRow(_Input):
    """One invoice row (``rows[]``)."""

    order_index: int = Field(alias="orderIndex")
    description: str | None = None
    value: AtollonInvoiceValue
    product: AtollonInvoiceProduct | None = None
    context: AtollonInvoiceContext | None = None


class AtollonInvoiceCustomer(_Input):
    """Who is invoiced (``customer``), by the customer contact's external ids."""

    customer_name: str | None = Field(default=None, alias="customerName")
    customer_external_id: list[ExternalId] = Field(alias="customerExternalId")
    contact_external_id: list[ExternalId] = Field(default_factory=list, alias="contactExternalId")


class AtollonInvoiceTotals(_Input):
    """The invoice's totals (``totals``)."""

    currency: str | None = None
    currency_rate: Amount | None = Field(default=None, alias="currencyRate")
    total: Amount
    total_with_vat: Amount = Field(alias="totalWithVAT")


class AtollonInvoicePayment(_Input):
    """What is left to pay (``payment``)."""

    due_date: str | None = Field(default=None, alias="dueDate")
    to_be_paid: Amount | None = Field(default=None, alias="toBePaid")


class AtollonInvoiceTexts(_Input):
    """The invoice's texts (``texts``)."""

    description: str | None = None


class AtollonInvoiceInput(_Input):
    """The body of ``POST invoice-issued`` (the Sales Order structure, the fields we fill)."""

    invoice_number: str = Field(alias="invoiceNumber", min_length=1)
    external_number: str | None = Field(default=None, alias="externalNumber")
    external_reference_number: str | None = Field(default=None, alias="externalReferenceNumber")
    issued_date: str | None = Field(default=None, alias="issuedDate")
    taxation_date: str | None = Field(default=None, alias="taxationDate")
    state_name: str | None = Field(default=None, alias="stateName")
    customer: AtollonInvoiceCustomer
    rows: list[AtollonInvoiceRow]
    totals: AtollonInvoiceTotals
    payment: AtollonInvoicePayment | None = None
    context: AtollonInvoiceContext | None = None
    texts: AtollonInvoiceTexts | None = None


class AtollonInvoiceStateUpdate(_Input):
    """The body of ``PUT invoice-issued?id=`` that changes an invoice's state only."""

    state_name: str = Field(alias="stateName", min_length=1)


class AtollonInvoiceResult(_Read):
    """The answer to ``POST``/``PUT invoice-issued``: the invoice's Atollon id.

    The page shows no success answer; the id is read from ``invoiceId``, else ``id``.
    """

    invoice_id: str = Field(alias="invoiceId", min_length=1)
    invoice_number: str | None = Field(default=None, alias="invoiceNumber")

    @model_validator(mode="before")
    @classmethod
    def _id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "invoiceId" not in data and "id" in data:
            return {**data, "invoiceId": data["id"]}
        return data


# --- reading ------------------------------------------------------------------------------


class AtollonInvoiceValueRead(_Read):
    """A row's amounts as Atollon shows them."""

    net_total: Decimal | None = Field(default=None, alias="netTotal")
    currency: str | None = None
    unit_price: Decimal | None = Field(default=None, alias="unitPrice")
    unit_quantity: Decimal | None = Field(default=None, alias="unitQuantity")
    vat_percent: Decimal | None = Field(default=None, alias="VATPercent")
    vat_value: Decimal | None = Field(default=None, alias="VATValue")


class AtollonInvoiceProductRead(_Read):
    """A row's product as Atollon shows it."""

    item_name: str | None = Field(default=None, alias="itemName")
    product_external_id: list[ExternalId] = Field(default_factory=list, alias="productExternalId")


class AtollonInvoiceRowRead(_Read):
    """One row of an issued invoice."""

    description: str | None = None
    order_index: int | None = Field(default=None, alias="orderIndex")
    value: AtollonInvoiceValueRead = Field(default_factory=AtollonInvoiceValueRead)
    product: AtollonInvoiceProductRead | None = None


class AtollonInvoiceCustomerRead(_Read):
    """The invoiced customer as Atollon shows it."""

    customer_name: str | None = Field(default=None, alias="customerName")
    customer_external_id: list[ExternalId] = Field(default_factory=list, alias="customerExternalId")
    contact_external_id: list[ExternalId] = Field(default_factory=list, alias="contactExternalId")


class AtollonInvoiceTotalsRead(_Read):
    """An issued invoice's totals."""

    currency: str | None = None
    total: Decimal | None = None
    total_with_vat: Decimal | None = Field(default=None, alias="totalWithVAT")


class AtollonIssuedInvoice(_Read):
    """An issued invoice as ``GET invoice-issued`` answers it (the Sales Order shape)."""

    id: str
    invoice_number: str | None = Field(default=None, alias="invoiceNumber")
    external_reference_number: str | None = Field(default=None, alias="externalReferenceNumber")
    issued_date: str | None = Field(default=None, alias="issuedDate")
    state_name: str | None = Field(default=None, alias="stateName")
    customer: AtollonInvoiceCustomerRead | None = None
    rows: list[AtollonInvoiceRowRead] = Field(default_factory=list)
    totals: AtollonInvoiceTotalsRead | None = None


class AtollonSalesOrder(AtollonIssuedInvoice):
    """A received sales order as the documented ``GET order-received?id=`` answers it.

    The page documents this read only (orders are entered in Atollon by its users); its
    journal (``journalName`` "Sales Order") is not the issued invoices', so it cannot confirm
    that an invoice was recorded (that stays ``GET invoice-issued``, a sandbox convention).
    """

    journal_name: str | None = Field(default=None, alias="journalName")
    external_number: str | None = Field(default=None, alias="externalNumber")
    taxation_date: str | None = Field(default=None, alias="taxationDate")


_INVOICE_LIST = TypeAdapter(list[AtollonIssuedInvoice])


class AtollonInvoiceClient(AtollonClient):
    """The Atollon client with the issued-invoice requests."""

    def record_invoice(self, invoice: AtollonInvoiceInput) -> AtollonInvoiceResult:
        """``POST invoice-issued``: create the invoice (no guard against a second one)."""
        operation = "record_invoice"
        response = self._call("POST", "invoice-issued", operation, body=invoice.to_json())
        return self._model(AtollonInvoiceResult, response, operation)

    def set_invoice_state(self, invoice_id: str, state_name: str) -> None:
        """``PUT invoice-issued?id=``: set the invoice's state (by its ``invoice_status``
        name); setting the state it has changes nothing."""
        if not invoice_id:
            raise ValueError("invoice_id must not be empty")
        operation = "set_invoice_state"
        body = AtollonInvoiceStateUpdate(state_name=state_name).to_json()
        response = self._call(
            "PUT", "invoice-issued", operation, params={"id": invoice_id}, body=body
        )
        if response.content.strip():
            decode_json(response, table=self.errors, operation=operation)

    def get_order_received(self, order_id: str) -> AtollonSalesOrder:
        """``GET order-received?id=``: one received sales order (documented); an unknown id
        is Atollon's FAIL, classified like any other."""
        if not order_id:
            raise ValueError("order_id must not be empty")
        operation = "get_order_received"
        response = self._call("GET", "order-received", operation, params={"id": order_id})
        return self._model(AtollonSalesOrder, response, operation)

    def find_invoices(self, invoice_number: str) -> list[AtollonIssuedInvoice]:
        """The issued invoices with this number (an undocumented read; see the module)."""
        if not invoice_number:
            raise ValueError("invoice_number must not be empty")
        operation = "find_invoices"
        response = self._call(
            "GET", "invoice-issued", operation, params={"invoiceNumber": invoice_number}
        )
        return self._list(_INVOICE_LIST, response, operation)

    def iter_invoices(
        self, *, page_size: int = INVOICE_PAGE_SIZE
    ) -> Iterator[list[AtollonIssuedInvoice]]:
        """Every issued invoice, a page at a time (an undocumented read; see the module)."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        operation = "list_invoices"
        offset = 0
        while True:
            params = {"offset": str(offset), "limit": str(page_size)}
            response = self._call("GET", "invoice-issued", operation, params=params)
            page = self._list(_INVOICE_LIST, response, operation)
            if page:
                yield page
            if len(page) < page_size:
                return
            offset += len(page)
