"""HIPE records as the adapter hands them out and takes them in (pydantic, snake_case).

Field names follow Python; the JSON names (camelCase, as HIPE sends them) are aliases.
Records read from HIPE ignore fields this adapter does not use, so a HIPE release that
adds fields breaks nothing; inputs forbid unknown fields, so a typo fails at once.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

#: A HIPE record id: an integer, or a UUID string (the guide shows both forms: imports and
#: users as UUIDs; docs/sandbox-conventions.md). Opaque to erpsync: compared, stored as
#: text in the ledger, sent back as it came.
HipeId = int | str


def hipe_id(text: str | int) -> HipeId:
    """An id kept as text (the ledger's ``target_id``) back in HIPE's own form: all
    digits is an integer HIPE's id, sent as a number as before; anything else (a UUID)
    goes as the text it is."""
    if isinstance(text, int):
        return text
    value = text.strip()
    return int(value) if value.isascii() and value.isdigit() and str(int(value)) == value else value


class _Record(BaseModel):
    """A record read from HIPE."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, validate_by_name=True, coerce_numbers_to_str=True
    )


class _Input(BaseModel):
    """A record sent to HIPE; only the fields that were set are sent."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON body: camelCase names, only fields set explicitly (``None`` clears)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class HipeCompany(_Record):
    """A HIPE company."""

    id: HipeId
    name: str | None = None
    external_id: str | None = Field(default=None, alias="externalId")
    parent_id: HipeId | None = Field(default=None, alias="parentId")
    email: str | None = None
    phone: str | None = None
    vat: str | None = None
    website: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict, alias="customFields")
    archived: bool = False
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")


class HipeCompanyInput(_Input):
    """Fields to create a company with (``name`` required there) or to PATCH."""

    name: str | None = None
    external_id: str | None = Field(default=None, alias="externalId")
    parent_id: HipeId | None = Field(default=None, alias="parentId")
    email: str | None = None
    phone: str | None = None
    vat: str | None = None
    website: str | None = None
    custom_fields: dict[str, Any] | None = Field(default=None, alias="customFields")


class HipeContact(_Record):
    """A HIPE contact (a user with the contact role)."""

    id: HipeId
    email: str | None = None
    first_name: str | None = Field(default=None, alias="firstName")
    last_name: str | None = Field(default=None, alias="lastName")
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    mobile_phone: str | None = Field(default=None, alias="mobilePhone")
    job: str | None = None
    external_id: str | None = Field(default=None, alias="externalId")
    collaboration_ids: list[HipeId] = Field(default_factory=list, alias="collaborationIds")
    custom_fields: dict[str, Any] = Field(default_factory=dict, alias="customFields")
    archived: bool = False
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")


class HipeContactInput(_Input):
    """Fields to create or PATCH a contact; ``collaboration_ids`` links companies."""

    email: str | None = None
    first_name: str | None = Field(default=None, alias="firstName")
    last_name: str | None = Field(default=None, alias="lastName")
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    mobile_phone: str | None = Field(default=None, alias="mobilePhone")
    job: str | None = None
    external_id: str | None = Field(default=None, alias="externalId")
    collaboration_ids: list[HipeId] | None = Field(default=None, alias="collaborationIds")
    custom_fields: dict[str, Any] | None = Field(default=None, alias="customFields")


class HipeCustomFieldOption(_Record):
    """One choice of a select, multiselect, checkbox, radio or multiCheckBox field."""

    value: Any = None
    label: str | None = None


class HipeCustomFieldNode(_Record):
    """A custom field definition (``GET /api/custom-field-nodes``)."""

    id: int | str
    key: str | None = Field(default=None, validation_alias=AliasChoices("key", "fieldKey"))
    label: str | None = None
    type: str | None = None
    options: list[HipeCustomFieldOption] = Field(default_factory=list)
    meta_entity_contexts: list[dict[str, Any]] = Field(
        default_factory=list, alias="metaEntityContexts"
    )


CsvScalar = str | int | float | bool | None


class HipeCompanyImportRow(BaseModel):
    """One company row of a CSV import of type 16 (companies matched by external id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    external_id: str = Field(min_length=1)
    name: str | None = None
    parent_external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    vat: str | None = None
    website: str | None = None
    custom_fields: dict[str, CsvScalar] = Field(default_factory=dict)


class HipeImportStatus(enum.IntEnum):
    """Import statuses (the guide's list, plus 8 = success as the official n8n node reads it)."""

    REQUESTED = 1
    IN_PROGRESS = 2
    ABORTED = 3
    SENT = 4
    CRASH = 7
    SUCCESS = 8


class HipeImportRowError(_Record):
    """One row HIPE refused, mapped back to the external id of the row that was sent."""

    row: int = Field(description="1-based data row (the header is row 0)")
    external_id: str | None = Field(default=None, alias="externalId")
    message: str = ""


class HipeImport(_Record):
    """An import job as ``POST /api/imports`` and ``GET /api/imports/{id}`` return it."""

    id: int | str
    type: int | str | None = None
    status: int
    total: int | None = None
    processed: int | None = None
    created: int | None = None
    updated: int | None = None
    errors: list[HipeImportRowError] = Field(default_factory=list)


class HipeImportResult(BaseModel):
    """The end of an import: how many rows were created, updated, and which failed."""

    model_config = ConfigDict(frozen=True)

    import_id: int | str | None
    status: int
    total: int
    created: int
    updated: int
    errors: list[HipeImportRowError] = Field(default_factory=list)

    @property
    def failed_external_ids(self) -> list[str]:
        """The external ids of the refused rows, in file order."""
        return [e.external_id for e in self.errors if e.external_id is not None]


class HipeAddress(_Record):
    """A company address (address guide; ``name`` carries erpsync's code for it)."""

    id: HipeId
    company_id: HipeId | None = Field(default=None, alias="companyId")
    name: str | None = None
    address: str | None = None
    first_complementary_address: str | None = Field(default=None, alias="firstComplementaryAddress")
    second_complementary_address: str | None = Field(
        default=None, alias="secondComplementaryAddress"
    )
    city: str | None = None
    state: str | None = None
    zip_code: str | None = Field(default=None, alias="zipCode")
    country: str | None = None


class HipeAddressInput(_Input):
    """An address to create (``address``, ``city``, ``country``, ``zipCode`` required by
    the guide) or the fields to PATCH."""

    name: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = Field(default=None, alias="zipCode")
    country: str | None = None
