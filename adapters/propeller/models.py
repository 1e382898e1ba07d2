"""Propeller REST v2 records as pydantic models: inputs we send, records we read back.

Python names are snake_case; the JSON names are Propeller's camelCase (``sourceId``,
``taxNumber``…), set as aliases. Inputs are strict (``extra="forbid"``, documented enums as
``Literal``) so a mapping mistake fails here, before a call. Read models are lenient
(unknown fields ignored, enums as plain strings, numbers accepted where the docs say
"integer string") because Propeller adds fields and the docs disagree on some types.

Writes use ONE shape, whatever the docs' variants (VENDORS.md §2.7):

* sources are the flat ``source`` + ``sourceId`` pair (the create and bulk references),
  not the integration guide's ``sources: [{name, id}]`` array; reads accept both;
* a parent is ``{"sourceId", "source"}`` (or ``{"id"}``), as the field tables say;
* directives: see :class:`PropellerDirective`.

Clearing a value (the ERP removed an e-mail, a phone, a tax number) is sent in the form the
field table allows: text fields are typed ``string``, so a cleared one is ``""`` (a JSON
``null`` is not a string and a schema validator may refuse it with 10007); an enum field has
no empty value, so a cleared one goes back to its documented default
(:data:`CLEARED_DEFAULTS`). Reads accept ``""`` and ``null`` alike (both mean "no value").
Detaching a parent is not documented at all: see :meth:`PropellerClient.detach_parent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from erpsync.errors import SyncError

YesNo = Literal["Y", "N"]
Budget = Literal["Y", "H", "N"]
OrderListAllowAll = Literal["N", "Y", "A", "U", "P"]
AddressType = Literal["delivery", "invoice"]
Gender = Literal["M", "F", "U"]
DirectiveName = Literal[
    "skipIfNotEmpty", "skipMoveOnUpdate", "skipCreate", "mergeTranslationsOnUpdate"
]


def _to_str(value: Any) -> Any:
    """Numbers become strings: the docs type ``debtorId`` and ``sourceId`` both ways."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


def _utc(value: Any) -> Any:
    """Propeller dates carry no zone (``YYYY-MM-DDTHH:MM:SS``); the convention is UTC."""
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Str = Annotated[str, BeforeValidator(_to_str)]

#: the value a cleared enum field takes: its documented default (field tables, VENDORS §2.6)
CLEARED_DEFAULTS: dict[str, str] = {
    "inherit_product_list": "Y",
    "inherit_order_list": "Y",
    "budget": "N",
    "budget_inherit": "Y",
    "order_list_allow_all": "U",
}
#: the company fields typed ``string`` that a write may clear with ``""``
CLEARABLE_TEXT = frozenset(
    {
        "name",
        "tax_number",
        "coc_number",
        "debtor_id",
        "phone",
        "email",
        "department",
        "office",
        "notes",
    }
)
#: the fields a single company write takes but ``bulk/sourceId`` items do not: the bulk
#: field lists (doc 002, VENDORS §2.7) leave them out, and Propeller refuses an item with an
#: undocumented key (10007 "extraneous key")
NOT_IN_BULK = frozenset({"phone", "email"})
UtcDatetime = Annotated[datetime, BeforeValidator(_utc)]


class _Input(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def to_json(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """The JSON body Propeller expects: camelCase names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


class _Output(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class PropellerCompanyRef(_Input):
    """A reference to a company: ``{"sourceId", "source"}`` or ``{"id"}`` (a parent)."""

    id: int | None = None
    source_id: Str | None = Field(default=None, alias="sourceId")
    source: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> PropellerCompanyRef:
        if self.id is None and not (self.source_id and self.source):
            raise ValueError("a company reference needs id, or sourceId together with source")
        return self


class PropellerDirective(_Input):
    """One bulk directive, sent as ``{"operation": ..., "fields": [...]}``.

    The docs show two shapes: an object keyed by directive name (core-concepts page) and an
    array of ``{operation, fields}`` (integration guide). The endpoint reference types
    ``directives`` as ``object[]``, which only the array matches, so two sources of three
    agree on it: the adapter always sends the array.
    """

    operation: DirectiveName
    fields: list[str] = Field(default_factory=list)


class PropellerAttributeValue(_Input):
    """One attribute value of a company, as bulk company items carry them (``attributes``).

    The docs name ``attributes`` in the bulk fields and link their shape elsewhere; the shape
    ``{"name", "value"}`` (a text attribute) is the sandbox convention
    (docs/sandbox-conventions.md). ``value`` ``""`` clears it.
    """

    name: str = Field(min_length=1)
    value: str


class PropellerAddressInput(_Input):
    """A company address to create, or to upsert in bulk by ``code`` (no code: create)."""

    type: AddressType
    street: str
    city: str
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    code: Str | None = None
    number: Str | None = None
    number_extension: str | None = Field(default=None, alias="numberExtension")
    postal_code: Str | None = Field(default=None, alias="postalCode")
    region: str | None = None
    company: str | None = None
    first_name: str | None = Field(default=None, alias="firstName")
    middle_name: str | None = Field(default=None, alias="middleName")
    last_name: str | None = Field(default=None, alias="lastName")
    gender: Gender | None = None
    icp: YesNo | None = None
    phone: str | None = None
    mobile: str | None = None
    email: str | None = None
    url: str | None = None
    is_default: YesNo | None = Field(default=None, alias="isDefault")
    notes: str | None = None


class PropellerAddress(_Output):
    """A company address as Propeller returns it."""

    id: int
    type: str | None = None
    code: Str | None = None
    name: str | None = None
    company: str | None = None
    first_name: str | None = Field(default=None, alias="firstName")
    middle_name: str | None = Field(default=None, alias="middleName")
    last_name: str | None = Field(default=None, alias="lastName")
    gender: str | None = None
    street: str | None = None
    number: Str | None = None
    number_extension: Str | None = Field(default=None, alias="numberExtension")
    postal_code: Str | None = Field(default=None, alias="postalCode")
    city: str | None = None
    region: str | None = None
    country: str | None = None
    icp: str | None = None
    phone: Str | None = None
    mobile: Str | None = None
    fax: Str | None = None
    email: str | None = None
    url: str | None = None
    is_default: str | None = Field(default=None, alias="isDefault")
    active: str | bool | None = None
    notes: str | None = None


class PropellerCompanyInput(_Input):
    """A company to create, update or bulk-upsert, identified by ``sourceId`` + ``source``.

    ``source`` and ``language`` default to the client's settings when left out, so the
    record is written under the same key :meth:`PropellerClient.get_company` looks up.
    ``addresses`` are sent inline by the bulk call only (the docs document them there);
    single calls refuse a non-empty list (use the address operations) rather than drop it
    silently.
    """

    source_id: Str = Field(alias="sourceId", min_length=1)
    source: str | None = None
    language: str | None = Field(default=None, min_length=2, max_length=2)
    name: str | None = None
    parent: PropellerCompanyRef | None = None
    tax_number: str | None = Field(default=None, alias="taxNumber")
    coc_number: str | None = Field(default=None, alias="cocNumber")
    debtor_id: Str | None = Field(default=None, alias="debtorId")
    phone: str | None = None
    email: str | None = None
    department: str | None = None
    office: str | None = None
    notes: str | None = None
    inherit_product_list: YesNo | None = Field(default=None, alias="inheritProductList")
    inherit_order_list: YesNo | None = Field(default=None, alias="inheritOrderList")
    budget: Budget | None = None
    budget_inherit: YesNo | None = Field(default=None, alias="budgetInherit")
    order_list_allow_all: OrderListAllowAll | None = Field(default=None, alias="orderListAllowAll")
    addresses: list[PropellerAddressInput] | None = None
    attributes: list[PropellerAttributeValue] | None = None

    @classmethod
    def writing(cls, values: Mapping[str, Any]) -> PropellerCompanyInput:
        """An input that writes every field of ``values``, a ``None`` value as a clear.

        ``values`` holds python or JSON names; a ``None`` text field becomes ``""``, a ``None``
        enum field its documented default (:data:`CLEARED_DEFAULTS`), so the field is sent
        and the company ends without the value instead of keeping the old one. A ``None``
        ``parent`` is left out: detaching takes :meth:`PropellerClient.detach_parent`.
        """
        given: dict[str, Any] = {}
        for name, value in values.items():
            field = python_name(name)
            if value is None and field in CLEARABLE_TEXT:
                value = ""
            elif value is None and field in CLEARED_DEFAULTS:
                value = CLEARED_DEFAULTS[field]
            given[field] = value
        return cls.model_validate({k: v for k, v in given.items() if v is not None})


def python_name(name: str) -> str:
    """The python name of a :class:`PropellerCompanyInput` field given by either name."""
    if name in PropellerCompanyInput.model_fields:
        return name
    for field, info in PropellerCompanyInput.model_fields.items():
        if info.alias == name:
            return field
    return name


class PropellerSource(_Output):
    """One ``{source, sourceId}`` pair of a company (``?expands=sources``)."""

    source: str | None = None
    source_id: Str | None = Field(default=None, alias="sourceId")

    @model_validator(mode="before")
    @classmethod
    def _guide_shape(cls, value: Any) -> Any:
        """The integration guide writes sources as ``{name, id}``; read that shape too."""
        if isinstance(value, dict) and "source" not in value and "name" in value:
            return {"source": value.get("name"), "sourceId": value.get("id")}
        return value


def _ref(value: Any) -> Any:
    return {"id": value} if isinstance(value, int) and not isinstance(value, bool) else value


class PropellerParent(_Output):
    """The parent of a company as read back (an id, and the source key when expanded)."""

    id: int | None = None
    source_id: Str | None = Field(default=None, alias="sourceId")
    source: str | None = None
    name: str | None = None


class PropellerAttribute(_Output):
    """An attribute value of a company as read back (``expands=attributes``, convention)."""

    name: str
    value: Str | None = None


class PropellerCompany(_Output):
    """A company as Propeller returns it (lookups, creates, updates and search).

    Which fields a reply carried is in ``model_fields_set``: the documented search results
    leave out ``email``, ``phone`` and ``parent``, which a per-company read returns.
    """

    id: int
    name: str | None = None
    language: str | None = None
    parent: Annotated[PropellerParent | None, BeforeValidator(_ref)] = None
    source_id: Str | None = Field(default=None, alias="sourceId")
    source: str | None = None
    sources: list[PropellerSource] = Field(default_factory=list)
    tax_number: Str | None = Field(default=None, alias="taxNumber")
    coc_number: Str | None = Field(default=None, alias="cocNumber")
    debtor_id: Str | None = Field(default=None, alias="debtorId")
    phone: Str | None = None
    email: str | None = None
    department: str | None = None
    office: str | None = None
    notes: str | None = None
    inherit_product_list: str | None = Field(default=None, alias="inheritProductList")
    inherit_order_list: str | None = Field(default=None, alias="inheritOrderList")
    budget: str | None = None
    budget_inherit: str | None = Field(default=None, alias="budgetInherit")
    order_list_allow_all: str | None = Field(default=None, alias="orderListAllowAll")
    date_created: UtcDatetime | None = Field(default=None, alias="dateCreated")
    date_modified: UtcDatetime | None = Field(default=None, alias="dateModified")
    attributes: list[PropellerAttribute] | None = None

    def attribute(self, name: str) -> str | None:
        """The value of one attribute, None when absent or empty (or not read)."""
        for attribute in self.attributes or ():
            if attribute.name == name:
                return attribute.value or None
        return None

    def source_id_for(self, source: str) -> str | None:
        """The company's ``sourceId`` under ``source`` (flat fields or ``sources``)."""
        if self.source_id is not None and self.source in (None, source):
            return self.source_id
        for entry in self.sources:
            if entry.source == source:
                return entry.source_id
        return None


class BulkOutcome(BaseModel):
    """What happened to one item of a bulk call: applied (action, id) or a classified error.

    The error is a :class:`~erpsync.errors.SyncError` instance, not raised: the other items
    of the call were applied, so the worker routes each failed item on its own.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    index: int = Field(description="position of the item in the input sequence")
    key: str | None = Field(description="the item's lookup value (sourceId, or address code)")
    action: Literal["create", "update"] | None = None
    id: int | None = None
    error: SyncError | None = None

    @property
    def ok(self) -> bool:
        """True when Propeller applied the item."""
        return self.error is None
