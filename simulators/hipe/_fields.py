"""HIPE record shapes: columns, request-body validation, and the custom field definitions.

Bodies are checked the way a NestJS ``ValidationPipe`` (class-validator, whitelist with
``forbidNonWhitelisted``) checks a DTO: every problem is listed in ``message`` as an array.
Custom field values are checked against ``GET /api/custom-field-nodes``: an unknown key, or
a value that is not one of the field's options, is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from simulators.hipe.crud import TableSpec

COMPANY_SPEC = TableSpec(
    alias="Company",
    columns={
        "id": "int",
        "name": "text",
        "externalId": "text",
        "parentId": "int",
        "managedById": "int",
        "currencyId": "int",
        "email": "text",
        "phone": "text",
        "vat": "text",
        "website": "text",
        "customFields": "json",
        "archived": "bool",
        "createdAt": "timestamp",
        "updatedAt": "timestamp",
    },
    indexed=("externalId",),
)

USER_SPEC = TableSpec(
    alias="User",
    columns={
        "id": "int",
        "email": "text",
        "firstName": "text",
        "lastName": "text",
        "phoneNumber": "text",
        "mobilePhone": "text",
        "job": "text",
        "externalId": "text",
        "role": "text",
        "customFields": "json",
        "archived": "bool",
        "createdAt": "timestamp",
        "updatedAt": "timestamp",
    },
    indexed=("externalId", "email", "role"),
)

IMPORT_SPEC = TableSpec(
    alias="Import",
    columns={
        "id": "text",
        "code": "int",
        "type": "text",
        "status": "int",
        "delimiter": "text",
        "createdById": "int",
        "fileId": "text",
        "dryRun": "bool",
        "allowDelete": "bool",
        "fileArchived": "bool",
        "stats": "json",
        "total": "int",
        "processed": "int",
        "created": "int",
        "updated": "int",
        "errors": "json",
        "createdAt": "timestamp",
        "updatedAt": "timestamp",
    },
)

CUSTOM_FIELD_NODES: list[dict[str, Any]] = [
    {
        "id": 1,
        "key": "segment",
        "label": "Segment",
        "type": "select",
        "options": [
            {"value": "retail", "label": "Retail"},
            {"value": "wholesale", "label": "Wholesale"},
            {"value": "industry", "label": "Industry"},
        ],
        "metaEntityContexts": [{"id": 1, "metaEntity": "COMPANIES"}],
    },
    {
        "id": 2,
        "key": "sectors",
        "label": "Sectors",
        "type": "multiselect",
        "options": [
            {"value": "food", "label": "Food"},
            {"value": "cosmetics", "label": "Cosmetics"},
            {"value": "pharma", "label": "Pharma"},
            {"value": "electronics", "label": "Electronics"},
        ],
        "metaEntityContexts": [{"id": 2, "metaEntity": "COMPANIES"}],
    },
    {
        "id": 3,
        "key": "vip",
        "label": "VIP",
        "type": "checkbox",
        "options": [{"value": True, "label": "Yes"}, {"value": False, "label": "No"}],
        "metaEntityContexts": [
            {"id": 3, "metaEntity": "COMPANIES"},
            {"id": 4, "metaEntity": "CONTACTS"},
        ],
    },
    {
        "id": 4,
        "key": "erpNote",
        "label": "ERP note",
        "type": "text",
        "metaEntityContexts": [
            {"id": 5, "metaEntity": "COMPANIES"},
            {"id": 6, "metaEntity": "CONTACTS"},
        ],
    },
    {
        "id": 5,
        "key": "customerSince",
        "label": "Customer since",
        "type": "date",
        "metaEntityContexts": [{"id": 7, "metaEntity": "COMPANIES"}],
    },
    {
        # the guide's PATCH example sets "myCustomFieldNumber": 10
        "id": 7,
        "key": "creditLimit",
        "label": "Credit limit",
        "type": "number",
        "metaEntityContexts": [
            {"id": 9, "metaEntity": "COMPANIES"},
            {"id": 10, "metaEntity": "CONTACTS"},
        ],
    },
    {
        "id": 6,
        "key": "preferredLanguage",
        "label": "Preferred language",
        "type": "select",
        "options": [{"value": "fr", "label": "Français"}, {"value": "en", "label": "English"}],
        "metaEntityContexts": [{"id": 8, "metaEntity": "CONTACTS"}],
    },
]

MetaEntity = Literal["COMPANIES", "CONTACTS"]


def custom_fields_for(entity: MetaEntity) -> dict[str, dict[str, Any]]:
    """The definitions linked to ``entity``, by key."""
    return {
        node["key"]: node
        for node in CUSTOM_FIELD_NODES
        if any(ctx["metaEntity"] == entity for ctx in node["metaEntityContexts"])
    }


class CustomFieldError(ValueError):
    """A custom field key or value the definitions refuse."""


def _is_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def check_custom_value(entity: MetaEntity, key: str, value: Any) -> Any:
    """The value to store for ``customFields[key]``; raises CustomFieldError when refused."""
    node = custom_fields_for(entity).get(key)
    if node is None:
        raise CustomFieldError(f"customFields.{key} is not a custom field of {entity.lower()}")
    if value is None:
        return None
    kind = node["type"]
    options = [option["value"] for option in node.get("options", [])]

    def allowed(item: Any) -> bool:
        return any(type(item) is type(o) and item == o for o in options)

    choices = ", ".join(str(o) for o in options)
    if kind in ("select", "radio", "checkbox"):
        if not allowed(value):
            raise CustomFieldError(f"customFields.{key} must be one of: {choices}")
        return value
    if kind in ("multiselect", "multiCheckBox"):
        if not isinstance(value, list) or not all(allowed(item) for item in value):
            raise CustomFieldError(f"customFields.{key} must be an array of: {choices}")
        return value
    if kind == "number":
        # a JSON number (class-validator's IsNumber: a numeric string is refused)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise CustomFieldError(f"customFields.{key} must be a number")
        return value
    if kind == "date":
        if not isinstance(value, str) or not _is_date(value):
            raise CustomFieldError(f"customFields.{key} must be an ISO 8601 date string")
        return value
    if not isinstance(value, str):
        raise CustomFieldError(f"customFields.{key} must be a string")
    return value


def merge_custom_fields(
    entity: MetaEntity, current: dict[str, Any], given: Any
) -> tuple[dict[str, Any], list[str]]:
    """``current`` with the keys of ``given`` applied (null removes a key), or the errors."""
    if not isinstance(given, dict):
        return current, ["customFields must be an object"]
    merged = dict(current)
    errors = []
    for key, value in given.items():
        try:
            checked = check_custom_value(entity, key, value)
        except CustomFieldError as exc:
            errors.append(str(exc))
            continue
        if checked is None:
            merged.pop(key, None)
        else:
            merged[key] = checked
    return merged, errors


@dataclass(frozen=True)
class FieldRule:
    """How one DTO property is validated."""

    kind: Literal["string", "int", "int_list", "uuid", "uuid_list"]
    required: bool = False


#: record ids HIPE may serve: integers (the sandbox's default) or UUIDs (the guide's
#: import answer shows ``"id": uuid``, ``"createdById": uuid``; docs/sandbox-conventions.md)
IdKind = Literal["int", "uuid"]
#: the columns and DTO properties that hold a company or user id
_ID_COLUMNS = ("id", "parentId", "managedById", "createdById")
_ID_PROPERTIES = ("parentId", "managedById", "collaboratorIds", "collaborationIds")


def spec_for(spec: TableSpec, ids: IdKind) -> TableSpec:
    """``spec`` with its id columns as text when ids are UUIDs."""
    if ids == "int":
        return spec
    columns = {k: ("text" if k in _ID_COLUMNS else v) for k, v in spec.columns.items()}
    if spec.alias == "Import":
        columns["id"] = "text"
    return replace(spec, columns=columns)


def dto_for(rules: dict[str, FieldRule], ids: IdKind) -> dict[str, FieldRule]:
    """``rules`` with their id properties as UUIDs when ids are UUIDs."""
    if ids == "int":
        return rules
    swapped = {"int": "uuid", "int_list": "uuid_list"}
    return {
        k: (FieldRule(swapped[r.kind], r.required) if k in _ID_PROPERTIES else r)  # type: ignore[arg-type]
        for k, r in rules.items()
    }


def as_uuid(value: Any) -> str | None:
    """A UUID string in its canonical form, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


COMPANY_DTO: dict[str, FieldRule] = {
    "name": FieldRule("string", required=True),
    "externalId": FieldRule("string"),
    "parentId": FieldRule("int"),
    "managedById": FieldRule("int"),
    "currencyId": FieldRule("int"),
    "collaboratorIds": FieldRule("int_list"),
    "email": FieldRule("string"),
    "phone": FieldRule("string"),
    "vat": FieldRule("string"),
    "website": FieldRule("string"),
}

CONTACT_DTO: dict[str, FieldRule] = {
    "email": FieldRule("string"),
    "firstName": FieldRule("string"),
    "lastName": FieldRule("string"),
    "phoneNumber": FieldRule("string"),
    "mobilePhone": FieldRule("string"),
    "job": FieldRule("string"),
    "externalId": FieldRule("string"),
    "collaborationIds": FieldRule("int_list"),
}


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def validate_dto(
    body: Any, rules: dict[str, FieldRule], *, partial: bool
) -> tuple[dict[str, Any], list[str]]:
    """class-validator on a DTO: the accepted values (ints from numeric strings) and errors.

    ``customFields`` is passed through untouched (it is checked against the definitions).
    """
    if not isinstance(body, dict):
        body = {}
    errors: list[str] = []
    values: dict[str, Any] = {}
    for key in body:
        if key not in rules and key != "customFields":
            errors.append(f"property {key} should not exist")
    for key, rule in rules.items():
        if key not in body:
            if rule.required and not partial:
                errors.extend([f"{key} should not be empty", f"{key} must be a string"])
            continue
        value = body[key]
        if rule.kind == "string":
            if rule.required and (value is None or value == ""):
                errors.append(f"{key} should not be empty")
                if not isinstance(value, str):
                    errors.append(f"{key} must be a string")
                continue
            if value is not None and not isinstance(value, str):
                errors.append(f"{key} must be a string")
                continue
            values[key] = value
        elif rule.kind == "int":
            number = None if value is None else _as_int(value)
            if value is not None and number is None:
                errors.append(f"{key} must be an integer number")
                continue
            values[key] = number
        elif rule.kind == "uuid":
            text = None if value is None else as_uuid(value)
            if value is not None and text is None:
                errors.append(f"{key} must be a UUID")
                continue
            values[key] = text
        elif rule.kind == "uuid_list":
            texts = [as_uuid(item) for item in value] if isinstance(value, list) else [None]
            if any(t is None for t in texts):
                errors.append(f"each value in {key} must be a UUID")
                continue
            values[key] = texts
        else:
            if not isinstance(value, list):
                errors.append(f"{key} must be an array")
                continue
            numbers = [_as_int(item) for item in value]
            if any(n is None for n in numbers):
                errors.append(f"each value in {key} must be an integer number")
                continue
            values[key] = numbers
    if "customFields" in body:
        values["customFields"] = body["customFields"]
    return values, errors
