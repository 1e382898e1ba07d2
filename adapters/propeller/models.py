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
"""

from __future__ import annotations

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


class PropellerCompany(_Output):
    """A company as Propeller returns it (lookups, creates, updates and search)."""

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
