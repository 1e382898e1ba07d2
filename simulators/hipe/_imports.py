"""CSV import of type 16 (companies matched by external id), one row at a time.

Columns (docs/sandbox-conventions.md): ``externalId`` (required), ``name`` (required to
create), ``parentExternalId``, ``email``, ``phone``, ``vat``, ``website``,
``customFields.<key>``. A row updates the one company with its ``externalId`` or creates it;
several companies with that ``externalId`` is a row error. Rows apply in file order, so a
parent earlier in the file exists for a child later in it.

Where the conventions are silent, this reading: a column that is absent leaves the field
alone; an empty cell empties it (``null``; a custom field key is removed), except ``name``,
which cannot be emptied (an empty ``name`` keeps the current one, and is an error on a
create); a checkbox cell is ``true``/``false`` (also ``1``/``0``, ``yes``/``no``); a
multiselect cell lists option values separated by ``|``; a number cell is a decimal number
(``10``, ``-2.5``), stored as a JSON number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulators.hipe._fields import CustomFieldError, check_custom_value, custom_fields_for
from simulators.hipe.crud import Table

IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID = "16"
DELIMITERS = (",", ";")
TEXT_COLUMNS = ("email", "phone", "vat", "website")
KNOWN_COLUMNS = ("externalId", "name", "parentExternalId", *TEXT_COLUMNS)
CUSTOM_PREFIX = "customFields."

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class UnreadableFileError(Exception):
    """The file cannot be read at all: the import ends with status 7 (CRASH)."""


@dataclass
class CsvFile:
    """A readable import file: its header and its non-blank data rows."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


def read_csv(data: bytes, delimiter: str) -> CsvFile:
    """Decode and split the file; raises UnreadableFileError when it cannot be read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError("The file is not UTF-8 text") from exc
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise UnreadableFileError(f"The file is not valid CSV: {exc}") from exc
    records = [r for r in records if any(cell != "" for cell in r)]
    if not records:
        raise UnreadableFileError("The file is empty")
    header = [cell.strip() for cell in records[0]]
    if "externalId" not in header:
        raise UnreadableFileError("The column externalId is missing")
    if len(set(header)) != len(header):
        raise UnreadableFileError("A column appears twice in the header")
    known_custom = custom_fields_for("COMPANIES")
    for column in header:
        if column in KNOWN_COLUMNS:
            continue
        if column.startswith(CUSTOM_PREFIX) and column[len(CUSTOM_PREFIX) :] in known_custom:
            continue
        raise UnreadableFileError(f"Unknown column {column!r}")
    return CsvFile(header, records[1:])


class RowError(Exception):
    """A row the import refuses; the other rows still apply."""


def _number_cell(key: str, cell: str) -> int | float:
    """A number cell: an integer when it has no fraction (``10``), else a float."""
    text = cell.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise RowError(f"customFields.{key} must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise RowError(f"customFields.{key} must be a number")
    return number


def _custom_cell(key: str, cell: str) -> Any:
    node = custom_fields_for("COMPANIES")[key]
    kind = node["type"]
    value: Any = cell
    if kind == "checkbox":
        word = cell.strip().lower()
        if word not in _TRUE | _FALSE:
            raise RowError(f"customFields.{key} must be true or false")
        value = word in _TRUE
    elif kind in ("multiselect", "multiCheckBox"):
        value = [part.strip() for part in cell.split("|") if part.strip()]
    elif kind == "number":
        value = _number_cell(key, cell)
    try:
        return check_custom_value("COMPANIES", key, value)
    except CustomFieldError as exc:
        raise RowError(str(exc)) from exc


def _one_company(companies: Table, external_id: str, role: str) -> dict[str, Any] | None:
    found = companies.find("externalId", external_id)
    if len(found) > 1:
        raise RowError(f"{len(found)} companies have the {role}externalId {external_id}")
    return found[0] if found else None


def _is_ancestor_or_self(companies: Table, company_id: int, parent: dict[str, Any]) -> bool:
    cursor: dict[str, Any] | None = parent
    seen: set[int] = set()
    while cursor is not None and cursor["id"] not in seen:
        if cursor["id"] == company_id:
            return True
        seen.add(cursor["id"])
        parent_id = cursor["parentId"]
        cursor = companies.rows.get(parent_id) if parent_id is not None else None
    return False


def apply_row(
    companies: Table,
    header: list[str],
    cells: list[str],
    *,
    next_id: Callable[[], int],
    now: str,
) -> str:
    """Apply one data row; returns ``"created"`` or ``"updated"``, raises RowError."""
    if len(cells) != len(header):
        raise RowError(f"The row has {len(cells)} cells; the header has {len(header)}")
    row = dict(zip(header, cells, strict=True))
    external_id = row["externalId"]
    if not external_id:
        raise RowError("externalId should not be empty")
    current = _one_company(companies, external_id, "")
    changes: dict[str, Any] = {}
    if row.get("name"):
        changes["name"] = row["name"]
    elif current is None:
        raise RowError("name should not be empty")
    if "parentExternalId" in row:
        parent_key = row["parentExternalId"]
        if not parent_key:
            changes["parentId"] = None
        else:
            parent = _one_company(companies, parent_key, "parent ")
            if parent is None:
                raise RowError(f"The parent company {parent_key} was not found")
            if current is not None and _is_ancestor_or_self(companies, current["id"], parent):
                raise RowError("The parent would make the company its own ancestor")
            changes["parentId"] = parent["id"]
    for column in TEXT_COLUMNS:
        if column in row:
            changes[column] = row[column] or None
    custom = dict(current["customFields"]) if current is not None else {}
    for column in header:
        if not column.startswith(CUSTOM_PREFIX):
            continue
        key = column[len(CUSTOM_PREFIX) :]
        if row[column] == "":
            custom.pop(key, None)
        else:
            custom[key] = _custom_cell(key, row[column])
    changes["customFields"] = custom
    if current is not None:
        companies.put({**current, **changes, "updatedAt": now})
        return "updated"
    companies.put(
        new_company({"externalId": external_id, **changes}, company_id=next_id(), now=now)
    )
    return "created"


def new_company(values: dict[str, Any], *, company_id: int, now: str) -> dict[str, Any]:
    """A company record with every column, in HIPE's field order."""
    return {
        "id": company_id,
        "name": values.get("name"),
        "externalId": values.get("externalId"),
        "parentId": values.get("parentId"),
        "managedById": values.get("managedById"),
        "collaboratorIds": values.get("collaboratorIds", []),
        "currencyId": values.get("currencyId"),
        "email": values.get("email"),
        "phone": values.get("phone"),
        "vat": values.get("vat"),
        "website": values.get("website"),
        "customFields": values.get("customFields", {}),
        "archived": False,
        "createdAt": now,
        "updatedAt": now,
    }
