"""Validation of Propeller request bodies into typed inputs.

Propeller validates payloads with a JSON schema and reports every violation in the style of
the everit validator: ``#: extraneous key [company] is not permitted``,
``#/companies/0: required key [language] not found`` (vendor docs, code 10007). Schema
failures reject the whole request; business failures (a missing parent, a company in the
recycle bin) are decided later, per company.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from simulators.propeller.errors import PropellerError

#: most companies (and addresses) one bulk call may carry (sandbox conventions)
BULK_MAX_ITEMS = 1000
#: page size of a search when the body names none (vendor docs: 12 on most endpoints)
DEFAULT_PAGE_SIZE = 12
#: the largest page size a search accepts (undocumented: "maximum varies"; see the report)
MAX_PAGE_SIZE = 1000

DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")

Errors = list[str]
Checker = Callable[[Any, str, Errors], Any]


class Missing:
    """A field that the payload does not carry (unlike an explicit ``null``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()


@dataclass(frozen=True)
class ParentById:
    """``parent: {"id": …}``."""

    id: int


@dataclass(frozen=True)
class ParentBySource:
    """``parent: {"sourceId": …, "source": …}``."""

    source: str
    source_id: str


ParentRef = ParentById | ParentBySource


@dataclass
class AddressInput:
    """A validated company address payload."""

    fields: dict[str, Any]

    @property
    def code(self) -> str | None:
        code = self.fields.get("code")
        return code if isinstance(code, str) and code else None


@dataclass
class CompanyInput:
    """A validated company payload (create, patch or one bulk item)."""

    fields: dict[str, Any] = field(default_factory=dict)
    #: (source, sourceId) pairs, from the flat fields or the ``sources`` list; None: not given
    sources: list[tuple[str, str]] | None = None
    #: a parent reference, None to detach, MISSING when not given
    parent: ParentRef | Missing | None = MISSING
    addresses: list[AddressInput] | None = None
    #: attribute values by name (a bulk item's ``attributes``); None: not given
    attributes: dict[str, str | None] | None = None
    #: the ``id`` of a ``bulk/id`` item
    id: int | None = None


@dataclass(frozen=True)
class Directives:
    """The bulk directives, whichever of the two documented shapes carried them."""

    skip_if_not_empty: frozenset[str] = frozenset()
    skip_move_on_update: bool = False
    skip_create: bool = False
    merge_translations_on_update: bool = False


@dataclass
class BulkRequest:
    """A validated ``POST /companies/bulk/{lookupKey}`` body."""

    companies: list[CompanyInput]
    directives: Directives


@dataclass
class DateRange:
    """A DateFilter: ``from`` and ``to`` inclusive, either may be absent."""

    start: str | None = None
    end: str | None = None

    def contains(self, value: str) -> bool:
        """Whether a ``YYYY-MM-DDTHH:MM:SS`` stamp lies in the range (fixed width: text order)."""
        return (self.start is None or value >= self.start) and (
            self.end is None or value <= self.end
        )


@dataclass
class SearchRequest:
    """A validated ``POST /companies/search`` body."""

    date_created: DateRange | None = None
    date_modified: DateRange | None = None
    debtor_ids: frozenset[str] | None = None
    page: int = 1
    offset: int = DEFAULT_PAGE_SIZE


# --- primitive checks -------------------------------------------------------------------


def type_name(value: Any) -> str:
    """The everit name of a JSON value's type."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    return "JSONObject"


def _expected(path: str, expected: str, value: Any) -> str:
    return f"{path}: expected type: {expected}, found: {type_name(value)}"


def string(*, nullable: bool = True, min_length: int = 0) -> Checker:
    """A string (or null when ``nullable``)."""

    def check(value: Any, path: str, errors: Errors) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            errors.append(_expected(path, "String", value))
            return None
        if len(value) < min_length:
            errors.append(f"{path}: expected minLength: {min_length}, actual: {len(value)}")
        return value

    return check


def string_or_integer(*, nullable: bool = True, min_length: int = 0) -> Checker:
    """A string, or an integer read as its decimal text (older docs type ids as numbers)."""

    def check(value: Any, path: str, errors: Errors) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            errors.append(_expected(path, "one of [String, Integer]", value))
            return None
        if len(value) < min_length:
            errors.append(f"{path}: expected minLength: {min_length}, actual: {len(value)}")
        return value

    return check


def enum(*values: str, nullable: bool = False) -> Checker:
    """One of the given strings."""

    def check(value: Any, path: str, errors: Errors) -> Any:
        if value is None and nullable:
            return None
        if value not in values:
            errors.append(f"{path}: {value} is not a valid enum value")
            return None
        return value

    return check


def pattern(regex: re.Pattern[str], *, nullable: bool, upper: bool = False) -> Checker:
    """A string matching ``regex`` (upper-cased when ``upper``)."""

    def check(value: Any, path: str, errors: Errors) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            errors.append(_expected(path, "String", value))
            return None
        if not regex.match(value):
            errors.append(f"{path}: string [{value}] does not match pattern {regex.pattern}")
            return None
        return value.upper() if upper else value

    return check


def integer(value: Any, path: str, errors: Errors) -> int | None:
    """An integer (booleans are not)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    errors.append(_expected(path, "Integer", value))
    return None


def check_keys(
    value: dict[str, Any],
    path: str,
    allowed: Iterable[str],
    required: Iterable[str],
    errors: Errors,
) -> None:
    """Extraneous and missing keys of an object."""
    allowed_set = set(allowed)
    errors.extend(
        f"{path}: extraneous key [{key}] is not permitted"
        for key in value
        if key not in allowed_set
    )
    errors.extend(f"{path}: required key [{key}] not found" for key in required if key not in value)


def require_object(value: Any, path: str) -> dict[str, Any]:
    """The body must be a JSON object (10007 otherwise)."""
    if not isinstance(value, dict):
        raise PropellerError(10007, _expected(path, "JSONObject", value))
    return value


def raise_if(errors: Errors) -> None:
    """Reject the request with every schema violation found."""
    if errors:
        raise PropellerError(10007, *errors)


# --- companies ----------------------------------------------------------------------------

YES_NO = ("Y", "N")

COMPANY_FIELDS: dict[str, Checker] = {
    "name": string(),
    "language": pattern(_LANGUAGE_RE, nullable=True, upper=True),
    "taxNumber": string(),
    "cocNumber": string(),
    "debtorId": string_or_integer(),
    "phone": string(),
    "email": string(),
    "department": string(),
    "office": string(),
    "notes": string(),
    "inheritProductList": enum(*YES_NO),
    "inheritOrderList": enum(*YES_NO),
    "budget": enum("Y", "H", "N"),
    "budgetInherit": enum(*YES_NO),
    "orderListAllowAll": enum("N", "Y", "A", "U", "P"),
}

_SOURCE_KEYS = ("source", "sourceId")
_SOURCE_ID = string_or_integer(nullable=False, min_length=1)
_SOURCE_NAME = string(nullable=False, min_length=1)

CREATE_KEYS = (*COMPANY_FIELDS, "parent", *_SOURCE_KEYS)
#: company fields a single write takes but the endpoint reference's bulk field list leaves
#: out (doc 002's table, VENDORS §2.7), while the integration guide's bulk example names
#: ``email`` in ``skipIfNotEmpty``: taken by default (the guide's reading), refused with
#: 10007 "extraneous key" by a strict sandbox (the reference's reading)
NOT_IN_BULK = ("phone", "email")
BULK_SOURCE_ID_KEYS = (*CREATE_KEYS, "sources", "addresses", "attributes")
BULK_ID_KEYS = ("id", *BULK_SOURCE_ID_KEYS)
#: bulk modes of the sandbox: ``guide`` takes e-mail and phone in items, ``strict`` refuses
BULK_MODES = ("guide", "strict")


def parse_parent(value: Any, path: str, errors: Errors) -> ParentRef | None:
    """``{id}`` or ``{sourceId, source}``; ``null`` detaches."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(_expected(path, "JSONObject", value))
        return None
    if "id" in value:
        check_keys(value, path, ("id",), ("id",), errors)
        parent_id = integer(value["id"], f"{path}/id", errors)
        return None if parent_id is None else ParentById(parent_id)
    if not value:
        errors.append(f"{path}: required key [id] not found")
        return None
    before = len(errors)
    check_keys(value, path, _SOURCE_KEYS, _SOURCE_KEYS, errors)
    source_id = _SOURCE_ID(value.get("sourceId", ""), f"{path}/sourceId", errors)
    source = _SOURCE_NAME(value.get("source", ""), f"{path}/source", errors)
    if len(errors) > before:
        return None
    return ParentBySource(source, source_id)


def _objects(value: Any, path: str, errors: Errors) -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects of a JSON array, each with its path; other items are violations."""
    if not isinstance(value, list):
        errors.append(_expected(path, "JSONArray", value))
        return
    for index, item in enumerate(value):
        item_path = f"{path}/{index}"
        if isinstance(item, dict):
            yield item_path, item
        else:
            errors.append(_expected(item_path, "JSONObject", item))


def _parse_sources(value: Any, path: str, errors: Errors) -> list[tuple[str, str]]:
    """The integration guide's ``sources: [{"name", "id"}]``."""
    if isinstance(value, list) and not value:
        errors.append(f"{path}: expected minimum item count: 1, found: 0")
    pairs: list[tuple[str, str]] = []
    for item_path, item in _objects(value, path, errors):
        before = len(errors)
        check_keys(item, item_path, ("name", "id"), ("name", "id"), errors)
        name = _SOURCE_NAME(item.get("name", ""), f"{item_path}/name", errors)
        source_id = _SOURCE_ID(item.get("id", ""), f"{item_path}/id", errors)
        if len(errors) == before and (name, source_id) not in pairs:
            pairs.append((name, source_id))
    return pairs


def parse_company(
    value: Any, path: str, allowed: Iterable[str], required: Iterable[str], errors: Errors
) -> CompanyInput:
    """One company payload; violations go to ``errors``."""
    result = CompanyInput()
    if not isinstance(value, dict):
        errors.append(_expected(path, "JSONObject", value))
        return result
    allowed = tuple(allowed)
    check_keys(value, path, allowed, required, errors)
    for key, item in value.items():
        checker = COMPANY_FIELDS.get(key)
        if checker is not None:
            result.fields[key] = checker(item, f"{path}/{key}", errors)
    if "parent" in value and "parent" in allowed:
        result.parent = parse_parent(value["parent"], f"{path}/parent", errors)
    has_flat = any(key in value for key in _SOURCE_KEYS)
    if "sources" in value and "sources" in allowed:
        if has_flat:
            errors.append(f"{path}: [sources] cannot be combined with [source] and [sourceId]")
        else:
            result.sources = _parse_sources(value["sources"], f"{path}/sources", errors)
    elif has_flat:
        # Each requires the other (vendor docs: source is required when sourceId is given).
        errors.extend(
            f"{path}: required key [{key}] not found" for key in _SOURCE_KEYS if key not in value
        )
        if all(key in value for key in _SOURCE_KEYS):
            source = _SOURCE_NAME(value["source"], f"{path}/source", errors)
            source_id = _SOURCE_ID(value["sourceId"], f"{path}/sourceId", errors)
            if source is not None and source_id is not None:
                result.sources = [(source, source_id)]
    if "addresses" in value and "addresses" in allowed:
        result.addresses = parse_addresses(value["addresses"], f"{path}/addresses", errors)
    if "attributes" in value and "attributes" in allowed:
        result.attributes = parse_attributes(value["attributes"], f"{path}/attributes", errors)
    if "id" in value and "id" in allowed:
        result.id = integer(value["id"], f"{path}/id", errors)
    return result


_ATTRIBUTE_NAME = string(nullable=False, min_length=1)
_ATTRIBUTE_VALUE = string()


def parse_attributes(value: Any, path: str, errors: Errors) -> dict[str, str | None]:
    """``[{"name": …, "value": …}]`` (sandbox convention): text values by attribute name;
    a ``null`` or ``""`` value clears the attribute."""
    attributes: dict[str, str | None] = {}
    for item_path, item in _objects(value, path, errors):
        before = len(errors)
        check_keys(item, item_path, ("name", "value"), ("name", "value"), errors)
        if len(errors) > before:
            continue
        name = _ATTRIBUTE_NAME(item["name"], f"{item_path}/name", errors)
        text = _ATTRIBUTE_VALUE(item["value"], f"{item_path}/value", errors)
        if len(errors) == before and name is not None:
            attributes[name] = text or None
    return attributes


def parse_create(body: Any) -> CompanyInput:
    """``POST /companies``."""
    errors: Errors = []
    company = parse_company(require_object(body, "#"), "#", CREATE_KEYS, (), errors)
    raise_if(errors)
    return company


def parse_patch(body: Any) -> CompanyInput:
    """``PATCH /companies/{lookupKey}/{lookupValue}``: any subset of the create fields."""
    return parse_create(body)


# --- directives ---------------------------------------------------------------------------

DIRECTIVE_NAMES = ("skipIfNotEmpty", "skipMoveOnUpdate", "skipCreate", "mergeTranslationsOnUpdate")


def _field_names(value: Any, path: str, errors: Errors) -> list[str]:
    if not isinstance(value, list):
        errors.append(_expected(path, "JSONArray", value))
        return []
    names: list[str] = []
    for index, name in enumerate(value):
        if isinstance(name, str):
            names.append(name)
        else:
            errors.append(_expected(f"{path}/{index}", "String", name))
    return names


def parse_directives(value: Any, path: str, errors: Errors) -> Directives:
    """Both documented shapes.

    The core-concepts page keys directives by name (``{"skipIfNotEmpty": ["name"]}``), the
    integration guide lists operations (``[{"operation": "skipIfNotEmpty", "fields": […]}]``);
    the real server's choice is unknown, so both are accepted.
    """
    if value is None:
        return Directives()
    given: dict[str, list[str]] = {}
    if isinstance(value, dict):
        check_keys(value, path, DIRECTIVE_NAMES, (), errors)
        for name, fields in value.items():
            if name in DIRECTIVE_NAMES:
                given[name] = _field_names(fields, f"{path}/{name}", errors)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            item_path = f"{path}/{index}"
            if not isinstance(item, dict):
                errors.append(_expected(item_path, "JSONObject", item))
                continue
            check_keys(item, item_path, ("operation", "fields"), ("operation",), errors)
            operation = enum(*DIRECTIVE_NAMES)(
                item.get("operation"), f"{item_path}/operation", errors
            )
            fields = _field_names(item.get("fields", []), f"{item_path}/fields", errors)
            if operation is not None:
                given.setdefault(operation, []).extend(fields)
    else:
        errors.append(_expected(path, "one of [JSONObject, JSONArray]", value))
    return Directives(
        skip_if_not_empty=frozenset(given.get("skipIfNotEmpty", ())),
        skip_move_on_update="skipMoveOnUpdate" in given,
        skip_create="skipCreate" in given,
        merge_translations_on_update="mergeTranslationsOnUpdate" in given,
    )


# --- bulk ---------------------------------------------------------------------------------


def _carries_lookup_key(item: Any, lookup_key: str) -> bool:
    if not isinstance(item, dict):
        return True  # a non-object is a schema violation, reported as such
    if lookup_key == "id":
        return item.get("id") is not None
    sources = item.get("sources")
    return item.get("sourceId") is not None or (isinstance(sources, list) and bool(sources))


def _check_size(items: list[Any], path: str) -> None:
    if len(items) > BULK_MAX_ITEMS:
        raise PropellerError(
            10007, f"{path}: expected maximum item count: {BULK_MAX_ITEMS}, found: {len(items)}"
        )


def parse_bulk(body: Any, lookup_key: str, *, strict: bool = False) -> BulkRequest:
    """``POST /companies/bulk/{id|sourceId}``: ``{"companies": […], "directives": …}``.

    ``strict``: items follow the endpoint reference's field list (no e-mail, no phone)."""
    errors: Errors = []
    obj = require_object(body, "#")
    check_keys(obj, "#", ("companies", "directives"), ("companies",), errors)
    raise_if(errors)
    items = obj["companies"]
    if not isinstance(items, list):
        raise PropellerError(10007, _expected("#/companies", "JSONArray", items))
    _check_size(items, "#/companies")
    missing = [
        f"Lookup key [{lookup_key}] not found in #/companies/{index}"
        for index, item in enumerate(items)
        if not _carries_lookup_key(item, lookup_key)
    ]
    if missing:
        raise PropellerError(10016, *missing)
    directives = parse_directives(obj.get("directives"), "#/directives", errors)
    if lookup_key == "id":
        allowed, required = BULK_ID_KEYS, ("id",)
    else:
        # Bulk by sourceId identifies companies by sourceId + source + language.
        allowed, required = BULK_SOURCE_ID_KEYS, ("language",)
    if strict:
        allowed = tuple(key for key in allowed if key not in NOT_IN_BULK)
    companies = [
        parse_company(item, f"#/companies/{index}", allowed, required, errors)
        for index, item in enumerate(items)
    ]
    for index, company in enumerate(companies):
        if lookup_key == "sourceId" and company.fields.get("language", "") is None:
            errors.append(_expected(f"#/companies/{index}/language", "String", None))
    raise_if(errors)
    return BulkRequest(companies, directives)


# --- addresses ----------------------------------------------------------------------------

ADDRESS_TYPES = ("delivery", "invoice")

ADDRESS_FIELDS: dict[str, Checker] = {
    "type": enum(*ADDRESS_TYPES),
    "code": string(),
    "company": string(),
    "firstName": string(),
    "middleName": string(),
    "lastName": string(),
    "gender": enum("M", "F", "U"),
    "street": string(nullable=False, min_length=1),
    "number": string_or_integer(),
    "numberExtension": string(),
    "postalCode": string(),
    "city": string(nullable=False, min_length=1),
    "region": string(),
    "country": pattern(_COUNTRY_RE, nullable=False),
    "icp": enum(*YES_NO),
    "phone": string(),
    "mobile": string(),
    "email": string(),
    "url": string(),
    "isDefault": enum(*YES_NO),
    "notes": string(),
}
ADDRESS_REQUIRED = ("type", "street", "city", "country")


def parse_address(value: Any, path: str, errors: Errors, *, partial: bool = False) -> AddressInput:
    """One address payload (``partial``: an update, nothing required)."""
    if not isinstance(value, dict):
        errors.append(_expected(path, "JSONObject", value))
        return AddressInput({})
    check_keys(value, path, ADDRESS_FIELDS, () if partial else ADDRESS_REQUIRED, errors)
    return AddressInput(
        {
            key: ADDRESS_FIELDS[key](item, f"{path}/{key}", errors)
            for key, item in value.items()
            if key in ADDRESS_FIELDS
        }
    )


def parse_addresses(value: Any, path: str, errors: Errors) -> list[AddressInput]:
    """A list of full address payloads."""
    if not isinstance(value, list):
        errors.append(_expected(path, "JSONArray", value))
        return []
    _check_size(value, path)
    return [parse_address(item, f"{path}/{index}", errors) for index, item in enumerate(value)]


def parse_address_body(body: Any, *, partial: bool = False) -> AddressInput:
    """``POST`` (or ``PATCH``) of one company address."""
    errors: Errors = []
    address = parse_address(require_object(body, "#"), "#", errors, partial=partial)
    raise_if(errors)
    return address


def parse_address_bulk(body: Any) -> list[AddressInput]:
    """``POST …/addresses/bulk``: ``{"addresses": […]}``."""
    errors: Errors = []
    obj = require_object(body, "#")
    check_keys(obj, "#", ("addresses",), ("addresses",), errors)
    raise_if(errors)
    addresses = parse_addresses(obj["addresses"], "#/addresses", errors)
    raise_if(errors)
    return addresses


def parse_address_type(value: str | None) -> str | None:
    """The ``type`` query filter of ``GET …/addresses``."""
    if value is None:
        return None
    if value not in ADDRESS_TYPES:
        raise PropellerError(10007, f"#/type: {value} is not a valid enum value")
    return value


# --- search -------------------------------------------------------------------------------

SEARCH_KEYS = ("dateCreated", "dateModified", "debtorIds", "page", "offset")


def _valid_date(value: str) -> bool:
    try:
        datetime.strptime(value, DATE_FORMAT)  # the API's stamps carry no zone
    except ValueError:
        return False
    return True


def _date(value: Any, path: str, errors: Errors) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(_expected(path, "String", value))
        return None
    if not _DATE_RE.match(value) or not _valid_date(value):
        errors.append(f"{path}: [{value}] is not a valid date-time (expected YYYY-MM-DDTHH:MM:SS)")
        return None
    return value


def _date_range(value: Any, path: str, errors: Errors) -> DateRange | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(_expected(path, "JSONObject", value))
        return None
    check_keys(value, path, ("from", "to"), (), errors)
    return DateRange(
        _date(value.get("from"), f"{path}/from", errors),
        _date(value.get("to"), f"{path}/to", errors),
    )


def _page_number(value: Any, name: str, maximum: int | None) -> int:
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if valid and (maximum is None or value <= maximum):
        return int(value)
    bound = f"between 1 and {maximum}" if maximum is not None else "a positive integer"
    raise PropellerError(10015, f"Invalid {name} [{value}]: {name} must be {bound}")


def parse_search(body: Any) -> SearchRequest:
    """``POST /companies/search``."""
    errors: Errors = []
    obj = require_object(body, "#")
    check_keys(obj, "#", SEARCH_KEYS, (), errors)
    request = SearchRequest(
        date_created=_date_range(obj.get("dateCreated"), "#/dateCreated", errors),
        date_modified=_date_range(obj.get("dateModified"), "#/dateModified", errors),
    )
    if obj.get("debtorIds") is not None:
        ids = obj["debtorIds"]
        if isinstance(ids, list):
            checker = string_or_integer(nullable=False)
            request.debtor_ids = frozenset(
                checker(item, f"#/debtorIds/{index}", errors) for index, item in enumerate(ids)
            )
        else:
            errors.append(_expected("#/debtorIds", "JSONArray", ids))
    raise_if(errors)
    if "page" in obj:
        request.page = _page_number(obj["page"], "page", None)
    if "offset" in obj:
        request.offset = _page_number(obj["offset"], "offset", MAX_PAGE_SIZE)
    return request
