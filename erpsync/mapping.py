"""Field mappings from the flow file: where a target's (custom) field takes its value.

A mapping names a *path* into the canonical record: ``name``, ``address.city``,
``custom.segment``. Source-side, a flow's ``source_fields`` copies extra fields of the
source record (for example an ERP custom field ``Secteur``) into ``custom``; target-side,
``custom_fields`` fills the target's custom fields and ``fields`` overrides a mapped field.

    [flows.customers.source_fields]
    segment = "Secteur"                    # canonical custom.segment <- ERP field Secteur

    [flows.customers.mapping.hipe.custom_fields]
    erpSegment = "custom.segment"          # HIPE customFields.erpSegment <- custom.segment
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from erpsync.models import Company, Person, Product

#: the canonical models each flow entity maps onto
ENTITY_MODELS: dict[str, type[BaseModel]] = {
    "customer": Company,
    "person": Person,
    "product": Product,
}


#: canonical fields that are lists of records (a customer's addresses): no mapping path
UNMAPPABLE = frozenset({"addresses"})


class TargetMapping(BaseModel):
    """How one target's fields are filled for one flow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    custom_fields: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict)


def resolve(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a record (None when any step is missing)."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def check_path(entity: str, path: str) -> str | None:
    """A problem with a canonical path, or None when it is valid for ``entity``."""
    model = ENTITY_MODELS.get(entity)
    if model is None:
        return None
    head, _, rest = path.partition(".")
    if head == "custom":
        return None if rest else "'custom' needs a field name: custom.<name>"
    if head in UNMAPPABLE:
        return f"{path!r} is a list: each target writes it itself, not through a mapping"
    field = model.model_fields.get(head)
    if field is None:
        names = ", ".join(sorted(set(model.model_fields) - UNMAPPABLE))
        return f"{path!r} is not a field of {entity} (fields: {names}, custom.<name>)"
    if rest and head != "address":
        return f"{head!r} has no sub-fields"
    return None


def target_mapping(raw: Mapping[str, Any] | None) -> TargetMapping:
    return TargetMapping.model_validate(raw or {})


def apply_custom(mapping: TargetMapping, record: Mapping[str, Any]) -> dict[str, Any]:
    """The target's custom fields for a canonical record, every mapped one.

    A field whose value is unset in the record is there as ``None``: the sink sends it as
    the target's "no value" (HIPE: ``null`` in JSON, an empty cell in a CSV import), so a
    value removed at the source is removed in the target too.
    """
    return {target_key: resolve(record, path) for target_key, path in mapping.custom_fields.items()}
