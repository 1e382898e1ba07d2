"""HIPE company addresses, as the address guide and the official n8n node use them.

* ``POST /api/companies/{companyId}/addresses`` takes a JSON **array** of addresses (the
  guide's body; one object is taken too) and answers 201 with the created ones. Required:
  ``address``, ``city``, ``country``, ``zipCode``; optional: ``companyId`` (the path's, if
  given), ``name``, ``firstComplementaryAddress``, ``secondComplementaryAddress``, ``state``.
* ``GET /api/companies/{companyId}/addresses``: the company's addresses (a bare array).
* ``GET|PATCH|DELETE /api/addresses/{id}`` (the n8n node's calls): one address; PATCH
  changes the fields given (a required one cannot be emptied), DELETE removes it and
  answers it.

An unknown field is refused (400), as NestJS's whitelisting validation does; an unknown
company or address is 404. The guide documents no key for an address: erpsync keeps its
code in ``name`` (docs/sandbox-conventions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REQUIRED = ("address", "city", "country", "zipCode")
OPTIONAL = ("name", "firstComplementaryAddress", "secondComplementaryAddress", "state")
FIELDS = (*REQUIRED, *OPTIONAL)


class AddressError(Exception):
    """A refused address call: the HTTP status and NestJS's message(s)."""

    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


def _values(item: Any, company_id: Any, *, partial: bool) -> dict[str, Any]:
    """The checked fields of one address body (``partial``: a PATCH)."""
    if not isinstance(item, dict):
        raise AddressError(400, "each address must be an object")
    problems: list[str] = []
    for name in item:
        if name not in (*FIELDS, "companyId"):
            problems.append(f"property {name} should not exist")
    if "companyId" in item and str(item["companyId"]) != str(company_id):
        problems.append("companyId must be the company of the path")
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name not in item:
            if name in REQUIRED and not partial:
                problems.append(f"{name} should not be empty")
            continue
        value = item[name]
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be a string")
        elif name in REQUIRED and (value is None or not value.strip()):
            problems.append(f"{name} should not be empty")
        else:
            values[name] = value
    if problems:
        raise AddressError(400, problems)
    return values


class Addresses:
    """The addresses of every company, in memory (the caller holds the simulator's lock)."""

    def __init__(self, now: Callable[[], str]) -> None:
        self.now = now
        self.rows: dict[int, dict[str, Any]] = {}
        #: address ids by company, oldest first: a company's list is O(its addresses)
        self.by_company: dict[Any, dict[int, None]] = {}
        self.next_id = 1

    def clear(self) -> None:
        self.rows.clear()
        self.by_company.clear()
        self.next_id = 1

    def of_company(self, company_id: Any) -> list[dict[str, Any]]:
        return [self.rows[i] for i in self.by_company.get(company_id, ())]

    def create(self, company_id: Any, body: Any) -> list[dict[str, Any]]:
        """Create every address of the body (all or none: each is checked first)."""
        items = body if isinstance(body, list) else [body]
        checked = [_values(item, company_id, partial=False) for item in items]
        created = []
        for values in checked:
            now = self.now()
            address = {
                "id": self.next_id,
                "companyId": company_id,
                **dict.fromkeys(OPTIONAL),
                **values,
                "createdAt": now,
                "updatedAt": now,
            }
            self.next_id += 1
            self.rows[address["id"]] = address
            self.by_company.setdefault(company_id, {})[address["id"]] = None
            created.append(address)
        return created

    def one(self, raw_id: str) -> dict[str, Any]:
        found = self.rows.get(int(raw_id)) if raw_id.isdigit() else None
        if found is None:
            raise AddressError(404, "Address not found")
        return found

    def update(self, raw_id: str, body: Any) -> dict[str, Any]:
        current = self.one(raw_id)
        values = _values(body, current["companyId"], partial=True)
        current.update(values, updatedAt=self.now())
        return current

    def delete(self, raw_id: str) -> dict[str, Any]:
        found = self.one(raw_id)
        del self.rows[found["id"]]
        ids = self.by_company[found["companyId"]]
        del ids[found["id"]]
        if not ids:
            del self.by_company[found["companyId"]]
        return found

    def forget_company(self, company_id: Any) -> None:
        for address_id in self.by_company.pop(company_id, ()):
            del self.rows[address_id]
