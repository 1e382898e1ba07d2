"""Atollon billing payloads (``crawler/billing``: activities, items, status updates) and the
invoice states of ``crawler/invoice_status``, field for field as the vendor documents them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pydantic import Field

from adapters.atollon._base import (
    BillingStatus,
    ExternalId,
    _Input,
    _Read,
    external_id_for,
    parse_datetime,
)


class _Dated(_Read):
    created: str | None = None
    modified: str | None = None


class AtollonActivity(_Dated):
    """The service activity that holds the billing items."""

    id: str
    name: str | None = None
    ref_id: str | None = Field(default=None, alias="refId")
    status_name: str | None = Field(default=None, alias="statusName")
    description: str | None = None


class AtollonProject(_Dated):
    """The project the activity belongs to."""

    id: str
    name: str | None = None
    ref_id: str | None = Field(default=None, alias="refId")
    status_name: str | None = Field(default=None, alias="statusName")
    description: str | None = None


class AtollonFolderRef(_Read):
    """A folder (or customer folder) by name and reference."""

    name: str | None = None
    ref_id: str | None = Field(default=None, alias="refId")


class AtollonPersonName(_Read):
    """A person as the billing export shows it."""

    first_name: str | None = Field(default=None, alias="firstName")
    last_name: str | None = Field(default=None, alias="lastName")


class AtollonCompanyName(_Read):
    """A company as the billing export shows it."""

    company_name: str | None = Field(default=None, alias="companyName")


class AtollonContactRef(_Read):
    """A contact as the billing export shows it; ``external_id_for`` finds our key."""

    person: AtollonPersonName | None = None
    company: AtollonCompanyName | None = None
    external_id: list[ExternalId] = Field(default_factory=list, alias="externalId")
    reg_no: str | None = Field(default=None, alias="regNo")
    vat_no: str | None = Field(default=None, alias="vatNo")

    def external_id_for(self, system: str) -> str | None:
        """The id this contact carries for ``system``."""
        return external_id_for(self.external_id, system)


class AtollonBillingItem(_Read):
    """One billing item of an activity."""

    id: str
    product_name: str | None = Field(default=None, alias="productName")
    product_refid: str | None = Field(default=None, alias="productRefid")
    name: str | None = None
    description: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = Field(default=None, alias="unitPrice")
    vat_value: Decimal | None = Field(default=None, alias="vatValue")
    currency: str | None = None
    billing_date: str | None = Field(default=None, alias="billingDate")
    billing_status: str | None = Field(default=None, alias="billingStatus")
    billing_type: int | None = Field(default=None, alias="billingType")
    product_external_id: list[ExternalId] = Field(default_factory=list, alias="productExternalId")

    @property
    def billing_datetime(self) -> datetime | None:
        """``billing_date`` as a date-time (None when absent or unreadable)."""
        return parse_datetime(self.billing_date)

    def product_external_id_for(self, system: str) -> str | None:
        """The product's id for ``system`` (our ERP product key, when it came from us)."""
        return external_id_for(self.product_external_id, system)


class AtollonDocument(_Read):
    """A document attached to the activity (fetch it with ``download_document``)."""

    id: str
    name: str | None = None


class AtollonBillingActivity(_Read):
    """One activity of ``GET crawler/billing``, with the billing items in the asked status."""

    activity: AtollonActivity
    project: AtollonProject | None = None
    folder: AtollonFolderRef | None = None
    contact: AtollonContactRef | None = None
    customer: AtollonFolderRef | None = None
    customer_contact: AtollonContactRef | None = Field(default=None, alias="customerContact")
    billing_items: list[AtollonBillingItem] = Field(default_factory=list, alias="billingItems")
    documents: list[AtollonDocument] = Field(default_factory=list)


class AtollonStatusRef(_Input):
    """An activity or project to update: its id and, optionally, a new custom status name."""

    id: str
    status_name: str | None = Field(default=None, alias="statusName")


class AtollonBillingItemStatus(_Input):
    """A billing item's new status."""

    id: str
    billing_status: str = Field(alias="billingStatus")


class AtollonBillingUpdate(_Input):
    """One element of ``PUT crawler/billing``: new statuses for an activity's items."""

    activity: AtollonStatusRef
    project: AtollonStatusRef | None = None
    billing_items: list[AtollonBillingItemStatus] = Field(alias="billingItems")

    @classmethod
    def mark(
        cls,
        activity_id: str,
        item_ids: Sequence[str],
        status: str = BillingStatus.BILLED,
    ) -> AtollonBillingUpdate:
        """Set ``status`` (Billed by default) on the given items of one activity."""
        return cls(
            activity=AtollonStatusRef(id=activity_id),
            billing_items=[
                AtollonBillingItemStatus(id=item, billing_status=str(status)) for item in item_ids
            ],
        )


# --- invoice statuses ---------------------------------------------------------------------


class AtollonInvoiceStatus(_Read):
    """One invoice state of ``GET crawler/invoice_status``."""

    state_id: str = Field(alias="stateId")
    name: str
    priority: int | None = None
    enabled: int | None = None
    acl: str | None = None
    tree_handle: str | None = Field(default=None, alias="treeHandle")
