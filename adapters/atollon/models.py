"""Atollon crawler import service payloads, field for field as the vendor documents them.

Python names are snake_case; the JSON names are the documented camelCase ones (aliases).
Inputs forbid unknown fields (a typo is a bug, not a silent no-op) and are sent without the
fields left unset (``None``); the contact and product inputs, which state a record's whole
content, send every field that was set, so that a value removed at the source is sent as
its absence (``""``, ``null`` or ``[]``: docs/sandbox-conventions.md). Reads allow extra
fields (Atollon adds fields freely) and accept numbers where the documentation shows
strings, since its own examples mix ``"id": "123"`` and ``"id": 723387101``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

#: A money or quantity value: exact in Python, a JSON number on the wire (as documented).
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]

#: A date-time sent in the documented ``YYYY-MM-DDTHH:MM`` form.
MinuteDateTime = Annotated[
    datetime,
    PlainSerializer(lambda value: value.strftime("%Y-%m-%dT%H:%M"), return_type=str),
]


class BillingStatus(enum.StrEnum):
    """The documented billing states (the names are what the API exchanges)."""

    SALES_ITEMS = "SalesItems"
    PENDING = "Pending"
    FOR_APPROVAL = "ForApproval"
    TO_BE_INVOICED = "ToBeInvoiced"
    BILLED = "Billed"
    APPROVED_BY_CLIENT = "ApprovedByClient"
    POSTPONED = "Postponed"
    CANCELLED = "Cancelled"


class BillingType(enum.IntEnum):
    """The documented billing item types."""

    BILLING_ITEMS = 1
    TIME_SHEET_ITEMS = 2


class _Input(BaseModel):
    """A request body: unknown fields refused, names or aliases accepted."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, frozen=True
    )

    def to_json(self) -> dict[str, Any]:
        """The documented JSON body: camelCase names, unset (None) fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Stated(_Input):
    """A request that states a record: every field set is sent, ``None`` as ``null``.

    A field left unset stays out of the body (the crawler keeps its stored value); one set
    to ``None``, ``""`` or ``[]`` is sent so, and empties the stored value.
    """

    def to_json(self) -> dict[str, Any]:
        """The documented JSON body: camelCase names, every field that was set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class _Read(BaseModel):
    """A response body: unknown fields kept, numeric ids read as strings."""

    model_config = ConfigDict(
        extra="allow",
        validate_by_name=True,
        validate_by_alias=True,
        coerce_numbers_to_str=True,
        frozen=True,
    )


class ExternalId(BaseModel):
    """One ``{system, id}`` pair; Atollon keeps ``system`` + ``id`` unique per contact."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, frozen=True)

    system: str
    id: str


def external_id_for(ids: Sequence[ExternalId] | None, system: str) -> str | None:
    """The id stored under ``system`` in an ``externalId`` list, or None."""
    for entry in ids or ():
        if entry.system == system:
            return entry.id
    return None


_DATE_FORMATS = ("%d.%m.%Y",)  # what fromisoformat does not read


def parse_datetime(value: str | None) -> datetime | None:
    """An Atollon date-time, whichever of its forms it takes; None when absent or unreadable.

    Reads keep dates as the vendor's text: its pages show ``2022-09-14T10:00``,
    ``2023-01-25T12:47:34.678428``, ``2024-04-26`` and ``26.04.2024``, and one odd date must
    not make a whole billing export unreadable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None


# --- contact ------------------------------------------------------------------------------


class AtollonCompanyPersonRelation(_Stated):
    """A person's employer: a company by external id, or by name (found or created)."""

    company_external_id: list[ExternalId] | None = Field(default=None, alias="companyExternalId")
    position_desc: str | None = Field(default=None, alias="positionDesc")
    company_name: str | None = Field(default=None, alias="companyName")
    department_name: str | None = Field(default=None, alias="departmentName")


class AtollonPerson(_Stated):
    """The ``person`` part: when present, the contact is a person contact."""

    first_name: str | None = Field(default=None, alias="firstName")
    last_name: str | None = Field(default=None, alias="lastName")
    prefix_title: str | None = Field(default=None, alias="prefixTitle")
    postfix_title: str | None = Field(default=None, alias="postfixTitle")
    company_person_relation: list[AtollonCompanyPersonRelation] | None = Field(
        default=None, alias="companyPersonRelation"
    )


class AtollonCompanyRelation(_Stated):
    """A company-to-company relation; the related company must already be in Atollon."""

    company_external_id: list[ExternalId] = Field(alias="companyExternalId")
    relation_type: str | None = Field(default=None, alias="relationType")

    @classmethod
    def to_parent(
        cls, system: str, parent_id: str, relation_type: str | None = None
    ) -> AtollonCompanyRelation:
        """A relation to the parent company known in Atollon as ``system``/``parent_id``."""
        return cls(
            company_external_id=[ExternalId(system=system, id=parent_id)],
            relation_type=relation_type,
        )


class AtollonCompany(_Stated):
    """The ``company`` part of a contact."""

    company_name: str = Field(alias="companyName", min_length=1)
    company_company_relation: list[AtollonCompanyRelation] | None = Field(
        default=None, alias="companyCompanyRelation"
    )


class AtollonAddress(_Stated):
    """One address; ``address_type`` names the type configured in Atollon."""

    street: str | None = None
    city: str | None = None
    zip: str | None = None
    region: str | None = None
    country: str | None = None
    address_type: str | None = Field(default=None, alias="addressType")


class AtollonContactInfo(_Stated):
    """One e-mail, phone, mobile or web entry."""

    contact: str
    contact_info_type_name: str | None = Field(default=None, alias="contactInfoTypeName")


class AtollonContacts(_Stated):
    """The ``contacts`` part: lists of e-mails, phones, mobiles and web sites."""

    email: list[AtollonContactInfo] | None = None
    phone: list[AtollonContactInfo] | None = None
    mobile: list[AtollonContactInfo] | None = None
    web: list[AtollonContactInfo] | None = None


class AtollonContactGroup(_Stated):
    """A contact group, found by name or created (``Inactive`` records a deactivation)."""

    name: str
    description: str | None = None


class AtollonParentFolder(_Stated):
    """The parent of a contact folder."""

    category: str | None = None
    ref_id: str | None = Field(default=None, alias="refId")
    contact_external_id: list[ExternalId] | None = Field(default=None, alias="contactExternalId")


class AtollonResponsibleUser(_Stated):
    """A user responsible for a contact folder."""

    user_name: str = Field(alias="userName")
    user_role_name: str | None = Field(default=None, alias="userRoleName")
    primary: bool | None = None


class AtollonContactFolder(_Stated):
    """A contact folder (client, supplier, lead, partner…) identified by its category."""

    category: str
    ref_id: str | None = Field(default=None, alias="refId")
    parent_folder: AtollonParentFolder | None = Field(default=None, alias="parentFolder")
    responsible_user: list[AtollonResponsibleUser] | None = Field(
        default=None, alias="responsibleUser"
    )


class AtollonIndustry(_Stated):
    """An industry the contact belongs to."""

    name: str
    description: str | None = None


class AtollonContactInput(_Stated):
    """Body of ``POST crawler/contact``: a company contact, or a person contact."""

    person: AtollonPerson | None = None
    company: AtollonCompany | None = None
    address: list[AtollonAddress] | None = None
    contacts: AtollonContacts | None = None
    description: str | None = None
    contact_group: list[AtollonContactGroup] | None = Field(default=None, alias="contactGroup")
    contact_folder: list[AtollonContactFolder] | None = Field(default=None, alias="contactFolder")
    external_id: list[ExternalId] = Field(default_factory=list, alias="externalId")
    reg_no: str | None = Field(default=None, alias="regNo")
    vat_no: str | None = Field(default=None, alias="vatNo")
    tracking_code: str | None = Field(default=None, alias="trackingCode")
    source: str | None = None
    industries: list[AtollonIndustry] | None = None

    @model_validator(mode="after")
    def _company_or_surname(self) -> AtollonContactInput:
        # The documented rule: "either company or person surname is required".
        has_surname = self.person is not None and bool((self.person.last_name or "").strip())
        if not has_surname and self.company is None:
            raise ValueError("a contact needs a company name or a person's last name")
        return self

    def external_id_for(self, system: str) -> str | None:
        """The id this contact carries for ``system``."""
        return external_id_for(self.external_id, system)


class _ExternalIds(_Read):
    external_id: list[ExternalId] = Field(default_factory=list, alias="externalId")


class AtollonContactResult(_Read):
    """Answer of a successful contact import."""

    result: str | None = None
    contact_id: str = Field(alias="contactId")
    folder_id: str | None = Field(default=None, alias="folderId")
    contact: _ExternalIds | None = None

    def external_id_for(self, system: str) -> str | None:
        """The id Atollon stored for ``system`` on this contact."""
        return external_id_for(self.contact.external_id if self.contact else None, system)


def _list_or_empty(value: Any) -> Any:
    """A list read from Atollon: ``null`` is an empty list."""
    return [] if value is None else value


#: a list in an answer, where Atollon may write ``null`` for "none"
_ReadList = BeforeValidator(_list_or_empty)


class AtollonRelationRecord(_Read):
    """A company relation as the contact read shows it."""

    company_external_id: Annotated[list[ExternalId], _ReadList] = Field(
        default_factory=list, alias="companyExternalId"
    )
    relation_type: str | None = Field(default=None, alias="relationType")


class AtollonCompanyRecord(_Read):
    """The ``company`` part of a contact read."""

    company_name: str | None = Field(default=None, alias="companyName")
    company_company_relation: Annotated[list[AtollonRelationRecord], _ReadList] = Field(
        default_factory=list, alias="companyCompanyRelation"
    )


class AtollonAddressRecord(_Read):
    """One address of a contact read."""

    street: str | None = None
    city: str | None = None
    zip: str | None = None
    region: str | None = None
    country: str | None = None
    address_type: str | None = Field(default=None, alias="addressType")


class AtollonContactInfoRecord(_Read):
    """One e-mail, phone, mobile or web entry of a contact read."""

    contact: str | None = None
    contact_info_type_name: str | None = Field(default=None, alias="contactInfoTypeName")


class AtollonContactsRecord(_Read):
    """The ``contacts`` part of a contact read."""

    email: Annotated[list[AtollonContactInfoRecord], _ReadList] = Field(default_factory=list)
    phone: Annotated[list[AtollonContactInfoRecord], _ReadList] = Field(default_factory=list)
    mobile: Annotated[list[AtollonContactInfoRecord], _ReadList] = Field(default_factory=list)
    web: Annotated[list[AtollonContactInfoRecord], _ReadList] = Field(default_factory=list)


class AtollonGroupRecord(_Read):
    """A contact group the contact is assigned to."""

    name: str | None = None
    description: str | None = None


class AtollonContact(_Read):
    """A contact as the (undocumented) read ``GET crawler/contact`` lists it.

    The shape is the contact request's, plus the contact's id (docs/sandbox-conventions.md).
    """

    contact_id: str | None = Field(default=None, alias="contactId")
    person: AtollonPersonName | None = None
    company: AtollonCompanyRecord | None = None
    address: Annotated[list[AtollonAddressRecord], _ReadList] = Field(default_factory=list)
    contacts: AtollonContactsRecord | None = None
    description: str | None = None
    contact_group: Annotated[list[AtollonGroupRecord], _ReadList] = Field(
        default_factory=list, alias="contactGroup"
    )
    external_id: Annotated[list[ExternalId], _ReadList] = Field(
        default_factory=list, alias="externalId"
    )
    reg_no: str | None = Field(default=None, alias="regNo")
    vat_no: str | None = Field(default=None, alias="vatNo")

    def external_id_for(self, system: str) -> str | None:
        """The id this contact carries for ``system``."""
        return external_id_for(self.external_id, system)


# --- product ------------------------------------------------------------------------------


class AtollonProductInput(_Stated):
    """Body of ``POST crawler/product``: found by externalId, else code + name, else created.

    ``name`` may be left out to change an existing product found by its externalId (its
    status, say) and keep the rest; creating a product needs it.
    """

    name: str | None = Field(default=None, min_length=1)
    ref_id: str | None = Field(default=None, alias="refId")
    description: str | None = None
    type_name: str | None = Field(default=None, alias="typeName")
    default_quantity: Amount | None = Field(default=None, alias="defaultQuantity")
    unit_price: Amount | None = Field(default=None, alias="unitPrice")
    unit_price_currency_name: str | None = Field(default=None, alias="unitPriceCurrencyName")
    status_name: str | None = Field(default=None, alias="statusName")
    units_name: str | None = Field(default=None, alias="unitsName")
    vat_rate_name: str | None = Field(default=None, alias="vatRateName")
    opening_balance_qty: Amount | None = Field(default=None, alias="openingBalanceQty")
    opening_balance_date: MinuteDateTime | None = Field(default=None, alias="openingBalanceDate")
    external_id: list[ExternalId] = Field(default_factory=list, alias="externalId")

    def external_id_for(self, system: str) -> str | None:
        """The id this product carries for ``system``."""
        return external_id_for(self.external_id, system)


class AtollonProductResult(_Read):
    """Answer of a successful product import."""

    result: str | None = None
    product_id: str = Field(alias="productId")
    product_name: str | None = Field(default=None, alias="productName")
    product_refid: str | None = Field(default=None, alias="productRefid")
    product: _ExternalIds | None = None

    def external_id_for(self, system: str) -> str | None:
        """The id Atollon stored for ``system`` on this product."""
        return external_id_for(self.product.external_id if self.product else None, system)


class AtollonProduct(_Read):
    """A product as the (undocumented) read ``GET crawler/product`` lists it."""

    product_id: str | None = Field(default=None, alias="productId")
    name: str | None = None
    ref_id: str | None = Field(default=None, alias="refId")
    unit_price: Decimal | None = Field(default=None, alias="unitPrice")
    unit_price_currency_name: str | None = Field(default=None, alias="unitPriceCurrencyName")
    status_name: str | None = Field(default=None, alias="statusName")
    external_id: Annotated[list[ExternalId], _ReadList] = Field(
        default_factory=list, alias="externalId"
    )

    def external_id_for(self, system: str) -> str | None:
        """The id this product carries for ``system``."""
        return external_id_for(self.external_id, system)


# --- billing ------------------------------------------------------------------------------


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
