"""Canonical records: what erpsync moves between systems, independent of any vendor.

Producers map a source system's records onto these; each target's sink maps them onto the
target's API. Field mappings in the flow file can add custom fields (``custom``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Canonical(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Canonical):
    """A postal address."""

    line1: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2")


#: the code of a customer's invoice address, and the prefix of a delivery address's
#: (``delivery:<the source's code>``): the codes erpsync writes and owns in the targets
INVOICE_ADDRESS_CODE = "invoice"
DELIVERY_ADDRESS_PREFIX = "delivery:"
#: the kinds of a customer's address (Propeller's ``type``; HIPE and Atollon take any)
AddressType = Literal["invoice", "delivery"]


class CompanyAddress(Address):
    """One of a customer's addresses, keyed by a ``code`` stable for the customer.

    The code is what the targets match it on (Propeller's address ``code``; HIPE's address
    ``name``, which HIPE documents no key for): an address whose code is gone from the
    source is deleted in the targets.
    """

    code: str = Field(min_length=1)
    type: AddressType


class Company(_Canonical):
    """An ERP customer, which becomes a company in the commerce and CRM systems."""

    key: str = Field(min_length=1, description="the source system's key (NoClient)")
    name: str = Field(min_length=1)
    parent_key: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_number: str | None = None
    language: str | None = None
    active: bool = True
    address: Address | None = None
    #: every address of the customer (invoice and delivery), in the source's order
    addresses: list[CompanyAddress] = Field(default_factory=list)
    custom: dict[str, Any] = Field(default_factory=dict, description="mapped custom fields")


class Person(_Canonical):
    """A person of an ERP customer (an ERP contact): a HIPE contact, an Atollon person.

    Its employer is a customer (:class:`Company`) of the same source: the person waits for
    it in each target like a child for its parent (:data:`PARENT_ENTITIES`).
    """

    key: str = Field(min_length=1, description="the source system's key (NoContact)")
    employer_key: str = Field(min_length=1, description="the employer customer's key (NoClient)")
    #: the employer's name: Atollon binds the person by it when it does not know the
    #: employer's external id (its crawler's documented fallback)
    employer_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    job_title: str | None = None
    active: bool = True


#: entity -> the entity of its records' parent (``parent_key``), where it is not the entity
#: itself: a customer's parent is a customer, a person's is its employer, a customer
PARENT_ENTITIES: dict[str, str] = {"person": "customer"}


#: entity -> the canonical field that holds its parent's key, where it is not ``parent_key``
PARENT_FIELDS: dict[str, str] = {"person": "employer_key"}


def parent_entity(entity: str) -> str:
    """The entity of the parent (``parent_key``) of a record of ``entity``."""
    return PARENT_ENTITIES.get(entity, entity)


def parent_field(entity: str) -> str:
    """The canonical field of a record of ``entity`` that names its parent."""
    return PARENT_FIELDS.get(entity, "parent_key")


class Product(_Canonical):
    """A product or service sold."""

    key: str = Field(min_length=1, description="the source system's key (NoProduit)")
    name: str = Field(min_length=1)
    price: Decimal | None = None
    currency: str | None = None
    #: the VAT (tax) rate's name, as the target knows it (Atollon's ``vatRateName``)
    vat_rate: str | None = None
    #: the unit of sale (Atollon's ``unitsName``)
    units: str | None = None
    active: bool = True
    group: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


class InvoiceLine(_Canonical):
    """One line of an invoice: a product with quantity and price, or a text line."""

    product_key: str | None = None
    description: str
    quantity: Decimal = Decimal(1)
    unit_price: Decimal = Decimal(0)
    vat_rate: Decimal | None = None
    source_item_id: str | None = None


class Invoice(_Canonical):
    """A customer invoice to create in the ERP from billable work."""

    reference: str = Field(min_length=1, description="deterministic: same work, same reference")
    customer_key: str = Field(min_length=1)
    description: str = ""
    date: str = Field(description="ISO date of the invoice")
    currency: str | None = None
    lines: list[InvoiceLine] = Field(min_length=1)
    activity_id: str
    project_id: str | None = None
    billing_item_ids: list[str] = Field(default_factory=list)

    @property
    def total_before_tax(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), Decimal(0))
