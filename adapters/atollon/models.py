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

from decimal import Decimal
from typing import Annotated

from pydantic import Field, model_validator

from adapters.atollon._base import (
    Amount,
    BillingStatus,
    BillingType,
    ExternalId,
    MinuteDateTime,
    _Read,
    _ReadList,
    _Stated,
    external_id_for,
    parse_datetime,
)
from adapters.atollon.billing import (
    AtollonActivity,
    AtollonBillingActivity,
    AtollonBillingItem,
    AtollonBillingItemStatus,
    AtollonBillingUpdate,
    AtollonCompanyName,
    AtollonContactRef,
    AtollonDocument,
    AtollonFolderRef,
    AtollonInvoiceStatus,
    AtollonPersonName,
    AtollonProject,
    AtollonStatusRef,
)

__all__ = [
    "Amount",
    "AtollonActivity",
    "AtollonAddress",
    "AtollonAddressRecord",
    "AtollonBillingActivity",
    "AtollonBillingItem",
    "AtollonBillingItemStatus",
    "AtollonBillingUpdate",
    "AtollonCompany",
    "AtollonCompanyName",
    "AtollonCompanyPersonRelation",
    "AtollonCompanyRecord",
    "AtollonCompanyRelation",
    "AtollonContact",
    "AtollonContactFolder",
    "AtollonContactGroup",
    "AtollonContactInfo",
    "AtollonContactInfoRecord",
    "AtollonContactInput",
    "AtollonContactRef",
    "AtollonContactResult",
    "AtollonContacts",
    "AtollonContactsRecord",
    "AtollonDocument",
    "AtollonFolderRecord",
    "AtollonFolderRef",
    "AtollonGroupRecord",
    "AtollonIndustry",
    "AtollonInvoiceStatus",
    "AtollonParentFolder",
    "AtollonPerson",
    "AtollonPersonName",
    "AtollonPersonRecord",
    "AtollonPersonRelationRecord",
    "AtollonProduct",
    "AtollonProductInput",
    "AtollonProductResult",
    "AtollonProject",
    "AtollonRelationRecord",
    "AtollonResponsibleUser",
    "AtollonStatusRef",
    "BillingStatus",
    "BillingType",
    "ExternalId",
    "MinuteDateTime",
    "external_id_for",
    "parse_datetime",
]


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


class AtollonFolderRecord(_Read):
    """A contact folder as the contact read shows it."""

    folder_id: str | None = Field(default=None, alias="folderId")
    category: str | None = None
    type_name: str | None = Field(default=None, alias="typeName")


class AtollonPersonRelationRecord(_Read):
    """A person's employer as the contact read shows it (``companyPersonRelation[]``)."""

    company_external_id: Annotated[list[ExternalId], _ReadList] = Field(
        default_factory=list, alias="companyExternalId"
    )
    company_name: str | None = Field(default=None, alias="companyName")
    position_desc: str | None = Field(default=None, alias="positionDesc")


class AtollonPersonRecord(AtollonPersonName):
    """The ``person`` part of a contact read: the name and the employers."""

    company_person_relation: Annotated[list[AtollonPersonRelationRecord], _ReadList] = Field(
        default_factory=list, alias="companyPersonRelation"
    )


class AtollonContact(_Read):
    """A contact as the (undocumented) read ``GET crawler/contact`` lists it.

    The shape is the contact request's, plus the contact's id (docs/sandbox-conventions.md).
    """

    contact_id: str | None = Field(default=None, alias="contactId")
    person: AtollonPersonRecord | None = None
    company: AtollonCompanyRecord | None = None
    address: Annotated[list[AtollonAddressRecord], _ReadList] = Field(default_factory=list)
    contacts: AtollonContactsRecord | None = None
    description: str | None = None
    contact_group: Annotated[list[AtollonGroupRecord], _ReadList] = Field(
        default_factory=list, alias="contactGroup"
    )
    contact_folder: Annotated[list[AtollonFolderRecord], _ReadList] = Field(
        default_factory=list, alias="contactFolder"
    )
    external_id: Annotated[list[ExternalId], _ReadList] = Field(
        default_factory=list, alias="externalId"
    )
    reg_no: str | None = Field(default=None, alias="regNo")
    vat_no: str | None = Field(default=None, alias="vatNo")

    def external_id_for(self, system: str) -> str | None:
        """The id this contact carries for ``system``."""
        return external_id_for(self.external_id, system)

    def has_folder(self, category: str) -> bool:
        """True when the contact has a contact folder of ``category``."""
        return any(folder.category == category for folder in self.contact_folder)


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
    vat_rate_name: str | None = Field(default=None, alias="vatRateName")
    units_name: str | None = Field(default=None, alias="unitsName")
    status_name: str | None = Field(default=None, alias="statusName")
    external_id: Annotated[list[ExternalId], _ReadList] = Field(
        default_factory=list, alias="externalId"
    )

    def external_id_for(self, system: str) -> str | None:
        """The id this product carries for ``system``."""
        return external_id_for(self.external_id, system)
