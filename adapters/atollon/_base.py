"""The shapes every Atollon payload builds on: request and response bases, ids, amounts, dates.

See :mod:`adapters.atollon.models` for the rules they carry (inputs forbid unknown fields,
reads keep them and read numbers as strings).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

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


def _list_or_empty(value: Any) -> Any:
    """A list read from Atollon: ``null`` is an empty list."""
    return [] if value is None else value


#: a list in an answer, where Atollon may write ``null`` for "none"
_ReadList = BeforeValidator(_list_or_empty)
