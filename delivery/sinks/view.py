"""What a target shows of a record, field by field: the contract between sinks and reconcile.

A sink that can be reconciled (:class:`ViewableSink`) answers two questions with the same
vocabulary of *view fields* (canonical paths such as ``name``, ``email``, ``parent_key``,
``active``, ``address.city``, and ``custom.<target field>`` for mapped custom fields):

* :meth:`ViewableSink.expected`: what the target should hold for a canonical record, as the
  sink's own mapping writes it (so the two can never disagree on what "equal" means);
* :meth:`ViewableSink.observed`: every record of the target that carries erpsync's external
  id, read page by page, normalised to the same view fields.

Values are normalised on both sides: an absent, ``None`` or blank value is ``None``; text is
stripped. A field the vendor documents no way to write (or clear) is listed by
:meth:`ViewableSink.known_limits` and never reported as drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

#: the view of one record: view field -> normalised value
View = dict[str, Any]


def normalise(value: Any) -> Any:
    """The comparable form of a value: blank text and empty containers are ``None``; a
    whole number is an ``int`` whatever its type (``10``, ``10.0``, ``Decimal("10.00")``),
    another number a ``float``, so a number read back compares equal to the one sent."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, list | tuple | dict | set) and not value:
        return None
    if isinstance(value, float | Decimal) and math.isfinite(value):
        return int(value) if value == int(value) else float(value)
    return value


def view(fields: Mapping[str, Any]) -> View:
    """A view with every value normalised."""
    return {name: normalise(value) for name, value in fields.items()}


@dataclass(frozen=True)
class Observed:
    """One target record that carries erpsync's external id for ``key``."""

    key: str
    target_id: str
    fields: View = field(default_factory=dict)


@runtime_checkable
class ViewableSink(Protocol):
    """A sink whose target can be read back and compared with the source."""

    target: str

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What the target should show for a canonical record (``active`` included)."""
        ...

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every target record carrying erpsync's external id, read page by page."""
        ...

    def known_limits(self, entity: str) -> list[str]:
        """View fields the vendor documents no way to write or clear (never drift)."""
        ...
