"""Propeller's companies and company addresses, in memory, with O(1) lookups.

Companies are indexed by id and by (source, sourceId, language): bulk upserts of thousands
of companies and hundreds of single upserts per second must never scan. A deleted company
stays in the store (the recycle bin): lookups and searches no longer see it, and its keys
cannot be reused (40008), as in the real backoffice, where only a restore brings it back.

The store knows nothing of HTTP; its operations raise :class:`PropellerError`. Callers hold
the simulator's lock around every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from simulators._pages import ResultCache
from simulators.propeller.errors import PropellerError
from simulators.propeller.schema import (
    ADDRESS_FIELDS,
    COMPANY_FIELDS,
    AddressInput,
    CompanyInput,
    DateRange,
    Directives,
    Missing,
    ParentById,
    ParentBySource,
    ParentRef,
    SearchRequest,
)

SourceKey = tuple[str, str, str | None]  # (source, sourceId, language)

LOOKUP_KEYS = ("id", "sourceId")

COMPANY_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(COMPANY_FIELDS),
    "inheritProductList": "Y",
    "inheritOrderList": "Y",
    "budget": "N",
    "budgetInherit": "Y",
    "orderListAllowAll": "U",
}
#: read-only fields the search reference lists; the sandbox never sets them
READ_ONLY_COMPANY_FIELDS = ("authorizeId", "orderListManagerId", "userManagerId", "defaultobjectId")

ADDRESS_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(ADDRESS_FIELDS),
    "gender": "U",
    "icp": "N",
    "isDefault": "N",
}

FIRST_COMPANY_ID = 9000
FIRST_ADDRESS_ID = 106000


@dataclass(eq=False)
class Company:
    """One company (a usergroup in Propeller's older model)."""

    id: int
    fields: dict[str, Any]
    sources: list[tuple[str, str]]
    parent_id: int | None
    date_created: str
    date_modified: str
    #: text attribute values by name (a cleared attribute is absent)
    attributes: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    date_deleted: str | None = None

    @property
    def language(self) -> str | None:
        """The company's language, part of its identity for ``sourceId`` lookups."""
        language: str | None = self.fields.get("language")
        return language

    def source_keys(self) -> list[SourceKey]:
        """Its (source, sourceId, language) index keys."""
        return [(source, source_id, self.language) for source, source_id in self.sources]


@dataclass(eq=False)
class Address:
    """One company address."""

    id: int
    company_id: int
    fields: dict[str, Any]


def _not_empty(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _merge_sources(
    current: list[tuple[str, str]], given: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """A given source replaces the company's id in that source, or is added."""
    merged = list(current)
    for source, source_id in given:
        names = [name for name, _ in merged]
        if source in names:
            merged[names.index(source)] = (source, source_id)
        else:
            merged.append((source, source_id))
    return merged


class CompanyStore:
    """Companies and addresses with their indexes."""

    def __init__(self, now: Callable[[], str]) -> None:
        self._now = now
        #: the searches' filtered and sorted results, until the next write to a company
        self._searches: ResultCache[list[Company]] = ResultCache()
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self.companies: dict[int, Company] = {}
        self.live_keys: dict[SourceKey, int] = {}
        self.binned_keys: dict[SourceKey, int] = {}
        self.live_by_source_id: dict[str, set[int]] = {}
        self.addresses: dict[int, Address] = {}
        self.company_addresses: dict[int, list[int]] = {}
        self.next_company_id = FIRST_COMPANY_ID
        self.next_address_id = FIRST_ADDRESS_ID
        self._searches.bump()

    # --- lookups --------------------------------------------------------------------------

    def find(
        self,
        lookup_key: str,
        lookup_value: str,
        *,
        source: str | None = None,
        language: str | None = None,
        sub_resource: bool = False,
    ) -> Company:
        """The one live company a lookup key names.

        ``sourceId`` may be narrowed by ``source`` and ``language``; when several companies
        still match, the answer is 40005 (vendor docs: lookup keys). Under a company
        sub-resource (addresses) a missing company is 40007, ParentCompanyNotFound.
        """
        if lookup_key not in LOOKUP_KEYS:
            raise PropellerError(
                10006,
                f"Invalid lookup key [{lookup_key}], key must contain one of the following "
                "values: [id,sourceId,]",
            )
        if lookup_key == "id":
            company = self.companies.get(int(lookup_value)) if lookup_value.isdigit() else None
            matches = [company] if company is not None and not company.deleted else []
        else:
            matches = [
                candidate
                for candidate in (
                    self.companies[i] for i in self.live_by_source_id.get(lookup_value, ())
                )
                if (language is None or candidate.language == language)
                and (
                    source is None
                    or any(s == source and sid == lookup_value for s, sid in candidate.sources)
                )
            ]
        if not matches:
            if sub_resource:
                raise PropellerError(
                    40007, f"Parent resource [Company] with {lookup_key} [{lookup_value}] not found"
                )
            raise PropellerError(40006, f"Company with {lookup_key} [{lookup_value}] not found")
        if len(matches) > 1:
            raise PropellerError(
                40005,
                f"Multiple companies found with {lookup_key} [{lookup_value}]. "
                "Please provide additional filters (source, language)",
            )
        return matches[0]

    def _resolve_parent(self, ref: ParentRef, child_language: str | None) -> int:
        if isinstance(ref, ParentById):
            parent = self.companies.get(ref.id)
            if parent is None or parent.deleted:
                raise PropellerError(
                    40007, f"Parent resource [Company] with id [{ref.id}] not found"
                )
            return parent.id
        candidates = [
            self.companies[i]
            for i in self.live_by_source_id.get(ref.source_id, ())
            if (ref.source, ref.source_id) in self.companies[i].sources
        ]
        if len(candidates) > 1:
            # A parent reference carries no language: prefer the child's own.
            candidates = [c for c in candidates if c.language == child_language] or candidates
        if not candidates:
            raise PropellerError(
                40007,
                f"Parent resource [Company] with sourceId [{ref.source_id}] and source "
                f"[{ref.source}] not found",
            )
        if len(candidates) > 1:
            raise PropellerError(
                40005,
                f"Multiple parent companies found with sourceId [{ref.source_id}] and source "
                f"[{ref.source}]. Please provide additional filters",
            )
        return candidates[0].id

    def _check_no_cycle(self, company_id: int, parent_id: int) -> None:
        seen: set[int] = set()
        current: int | None = parent_id
        while current is not None and current not in seen:
            if current == company_id:
                raise PropellerError(
                    10017, f"Company [{company_id}] cannot be a descendant of itself"
                )
            seen.add(current)
            parent = self.companies.get(current)
            current = parent.parent_id if parent is not None else None

    def _check_keys_free(self, company_id: int | None, keys: Iterable[SourceKey]) -> None:
        for key in keys:
            source, source_id, _ = key
            holder = self.live_keys.get(key)
            if holder is not None and holder != company_id:
                raise PropellerError(
                    40004,
                    f"Company with sourceId [{source_id}] and source [{source}] already exists",
                )
            binned = self.binned_keys.get(key)
            if holder is None and binned is not None and binned != company_id:
                raise PropellerError(
                    40008,
                    f"Company with sourceId [{source_id}] and source [{source}] is in the "
                    "recycle bin and cannot be used",
                )

    def _index(self, company: Company) -> None:
        for key in company.source_keys():
            self.live_keys[key] = company.id
            self.live_by_source_id.setdefault(key[1], set()).add(company.id)

    def _unindex(self, company: Company) -> None:
        for key in company.source_keys():
            if self.live_keys.get(key) == company.id:
                del self.live_keys[key]
            ids = self.live_by_source_id.get(key[1])
            if ids is not None:
                ids.discard(company.id)
                if not ids:
                    del self.live_by_source_id[key[1]]

    # --- writes ---------------------------------------------------------------------------

    def create(self, given: CompanyInput) -> Company:
        """A new company (40004 / 40008 when its source key is taken, 40007 parentless)."""
        fields = {**COMPANY_DEFAULTS, **given.fields}
        sources = list(given.sources or [])
        language: str | None = fields["language"]
        self._check_keys_free(None, [(s, sid, language) for s, sid in sources])
        parent_id = None
        if isinstance(given.parent, ParentById | ParentBySource):
            parent_id = self._resolve_parent(given.parent, language)
        now = self._now()
        company = Company(
            id=self.next_company_id,
            fields=fields,
            sources=sources,
            parent_id=parent_id,
            date_created=now,
            date_modified=now,
            attributes={k: v for k, v in (given.attributes or {}).items() if v is not None},
        )
        self.next_company_id += 1
        self._searches.bump()
        self.companies[company.id] = company
        self._index(company)
        if given.addresses:
            self.upsert_addresses(company, given.addresses)
        return company

    def update(
        self, company: Company, given: CompanyInput, directives: Directives | None = None
    ) -> Company:
        """Apply a partial payload; nothing changes when any check fails."""
        directives = directives or Directives()
        skip = directives.skip_if_not_empty
        fields = {
            key: value
            for key, value in given.fields.items()
            if not (key in skip and _not_empty(company.fields.get(key)))
        }
        language = fields.get("language", company.language)
        sources = (
            _merge_sources(company.sources, given.sources) if given.sources else company.sources
        )
        new_keys = [(s, sid, language) for s, sid in sources]
        self._check_keys_free(company.id, new_keys)
        parent_id = company.parent_id
        moving = not isinstance(given.parent, Missing) and not directives.skip_move_on_update
        if moving and not ("parent" in skip and company.parent_id is not None):
            if isinstance(given.parent, ParentById | ParentBySource):
                parent_id = self._resolve_parent(given.parent, language)
                self._check_no_cycle(company.id, parent_id)
            else:
                parent_id = None
        self._unindex(company)
        self._searches.bump()
        company.fields.update(fields)
        company.sources = sources
        company.parent_id = parent_id
        for name, value in (given.attributes or {}).items():
            if value is None:
                company.attributes.pop(name, None)
            else:
                company.attributes[name] = value
        company.date_modified = self._now()
        self._index(company)
        if given.addresses:
            self.upsert_addresses(company, given.addresses)
        return company

    def delete(self, company: Company) -> None:
        """Move a company to the recycle bin."""
        self._unindex(company)
        for key in company.source_keys():
            self.binned_keys[key] = company.id
        self._searches.bump()
        company.deleted = True
        company.date_deleted = company.date_modified = self._now()

    def restore(self, company: Company) -> None:
        """Take a company out of the recycle bin (the backoffice's restore; no API has it)."""
        for key in company.source_keys():
            if self.binned_keys.get(key) == company.id:
                del self.binned_keys[key]
        self._searches.bump()
        company.deleted = False
        company.date_deleted = None
        company.date_modified = self._now()
        self._index(company)

    def bulk(
        self, lookup_key: str, items: list[CompanyInput], directives: Directives
    ) -> list[dict[str, Any]]:
        """Upsert each item in order; one outcome per item, failures do not stop the rest."""
        outcomes: list[dict[str, Any]] = []
        for item in items:
            key: Any = item.id if lookup_key == "id" else (item.sources or [("", "")])[0][1]
            try:
                action, company = self._bulk_one(lookup_key, item, directives)
            except PropellerError as exc:
                outcomes.append(
                    {
                        "key": key,
                        "lookupKey": lookup_key,
                        "success": False,
                        "action": None,
                        "id": None,
                        "error": exc.item_error(),
                    }
                )
                continue
            outcomes.append(
                {
                    "action": action,
                    "id": company.id,
                    "key": key,
                    "lookupKey": lookup_key,
                    "success": True,
                }
            )
        return outcomes

    def _bulk_one(
        self, lookup_key: str, item: CompanyInput, directives: Directives
    ) -> tuple[str, Company]:
        existing: Company | None = None
        if lookup_key == "id":
            if item.id is None:
                raise PropellerError(10016, "Lookup key [id] not found")
            existing = self.companies.get(item.id)
            if existing is not None and existing.deleted:
                raise PropellerError(
                    40008, f"Company with id [{item.id}] is in the recycle bin and cannot be used"
                )
            missing = f"Company with id [{item.id}] not found"
        else:
            if not item.sources:
                raise PropellerError(10016, "Lookup key [sourceId] not found")
            source, source_id = item.sources[0]
            language = item.fields.get("language")
            found = self.live_keys.get((source, source_id, language))
            existing = self.companies[found] if found is not None else None
            missing = f"Company with sourceId [{source_id}] not found"
        if existing is not None:
            return "update", self.update(existing, item, directives)
        if directives.skip_create:
            raise PropellerError(40006, f"{missing} (skipCreate)")
        return "create", self.create(item)

    # --- addresses ------------------------------------------------------------------------

    def list_addresses(self, company: Company, type_: str | None = None) -> list[Address]:
        """A company's addresses, oldest first, optionally of one type."""
        found = (self.addresses[i] for i in self.company_addresses.get(company.id, ()))
        return [a for a in found if type_ is None or a.fields["type"] == type_]

    def add_address(self, company: Company, given: AddressInput) -> Address:
        """A new address for a company."""
        address = Address(self.next_address_id, company.id, {**ADDRESS_DEFAULTS, **given.fields})
        self.next_address_id += 1
        self.addresses[address.id] = address
        self.company_addresses.setdefault(company.id, []).append(address.id)
        return address

    def get_address(self, company: Company, address_id: str) -> Address:
        """One of a company's addresses (90006 otherwise)."""
        address = self.addresses.get(int(address_id)) if address_id.isdigit() else None
        if address is None or address.company_id != company.id:
            raise PropellerError(
                90006,
                f"Address with id [{address_id}] not found for [Companies] with id [{company.id}]",
            )
        return address

    def delete_address(self, address: Address) -> None:
        """Remove an address."""
        del self.addresses[address.id]
        self.company_addresses[address.company_id].remove(address.id)

    def upsert_addresses(
        self, company: Company, items: list[AddressInput]
    ) -> list[tuple[str, Address]]:
        """Update the address with the same ``code``, or create one (always without a code)."""
        outcomes: list[tuple[str, Address]] = []
        by_code = {
            a.fields["code"]: a for a in reversed(self.list_addresses(company)) if a.fields["code"]
        }
        for item in items:
            existing = by_code.get(item.code) if item.code else None
            if existing is not None:
                existing.fields.update(item.fields)
                outcomes.append(("update", existing))
                continue
            address = self.add_address(company, item)
            if item.code:
                by_code[item.code] = address
            outcomes.append(("create", address))
        return outcomes

    # --- search and representation --------------------------------------------------------

    def search(self, request: SearchRequest) -> tuple[list[Company], int]:
        """One page of live companies matching the filters, by dateModified then id.

        The filtered and sorted list is kept until the next write, so a page costs O(page).
        """
        key = (
            _range_key(request.date_modified),
            _range_key(request.date_created),
            request.debtor_ids,
        )
        matches = self._searches.get(key, lambda: self._matches(request))
        start = (request.page - 1) * request.offset
        return matches[start : start + request.offset], len(matches)

    def _matches(self, request: SearchRequest) -> list[Company]:
        matches = [
            c
            for c in self.companies.values()
            if not c.deleted
            and (request.date_modified is None or request.date_modified.contains(c.date_modified))
            and (request.date_created is None or request.date_created.contains(c.date_created))
            and (request.debtor_ids is None or c.fields["debtorId"] in request.debtor_ids)
        ]
        matches.sort(key=lambda c: (c.date_modified, c.id))
        return matches

    def represent(self, company: Company, expands: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A company as the API answers it (``expands``: ``sources``, ``parent``, and
        ``attributes`` by the sandbox convention)."""
        body: dict[str, Any] = {"id": company.id, **company.fields}
        body["parent"] = None if company.parent_id is None else {"id": company.parent_id}
        if "parent" in expands and company.parent_id is not None:
            parent = self.companies.get(company.parent_id)
            if parent is not None:
                body["parent"] = self.represent(parent)
        if "sources" in expands:
            body["sources"] = [{"source": s, "sourceId": sid} for s, sid in company.sources]
        if "attributes" in expands:
            body["attributes"] = [
                {"name": name, "value": value} for name, value in company.attributes.items()
            ]
        body["dateCreated"] = company.date_created
        body["dateModified"] = company.date_modified
        body.update(dict.fromkeys(READ_ONLY_COMPANY_FIELDS))
        return body

    @staticmethod
    def represent_address(address: Address) -> dict[str, Any]:
        """An address as the API answers it (reads add ``active``, ``fax`` and ``name``)."""
        return {"id": address.id, **address.fields, "active": "Y", "fax": None, "name": None}


def _range_key(dates: DateRange | None) -> tuple[str | None, str | None] | None:
    return None if dates is None else (dates.start, dates.end)
