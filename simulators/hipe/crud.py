"""The nestjsx/crud request query language, understood as HIPE's server understands it.

HIPE's list endpoints speak nestjsx/crud (``s=`` JSON search, ``filter``/``or``, ``sort``,
``fields``, ``limit``/``page``/``offset``). This module reproduces, layer by layer, a NestJS
server built on npm ``@nestjsx/crud`` + ``@nestjsx/crud-typeorm`` 4.6.2 behind Express 4 and
Postgres, so that a query string means here what it means there:

1. :func:`simulators.hipe._qs.parse_query_string`: Express's ``qs`` query parser.
2. :func:`parse_request`: ``RequestQueryParser.parseQuery`` (value parsing, validation and
   its error messages, in its order).
3. :func:`search_condition`: ``CrudRequestInterceptor.getSearch``. ``s`` present → ``filter``
   and ``or`` are ignored; filter only → AND; or only → OR; one of each → ``filter OR or``;
   several → ``(AND filters) OR (AND ors)``.
4. :class:`Table.query`: ``TypeOrmCrudService``. The search object is turned into a TypeORM
   where list exactly as ``setSearchCondition`` builds it, then evaluated with Postgres
   semantics: AND binds tighter than OR between the entries of one list; NULL matches no
   comparison (``$ne``, ``$notin``, ``$excl`` included); ``%`` and ``_`` inside a
   ``$cont``/``$starts``… value stay LIKE wildcards (the library does not escape them);
   ``$eqL``/``$inL`` lowercase the column but not the value; a value is sent as the ``pg``
   driver sends it and cast to the column's type (``"12"`` matches an integer column, ``"x"``
   makes the database fail: 500). Unknown columns also make the database fail (500).

Deliberate differences from the library, each because the project's research
(VENDORS.md §5) says so or because the database would be unspecified:

* an unknown operator inside ``s`` answers 400 "Invalid comparison operator…" (crud-typeorm
  4.6.2 would silently compile it to ``=``);
* rows without ``sort`` come back in primary-key order (Postgres promises no order);
* text compares by code point (Postgres with the C collation).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from simulators._pages import ResultCache
from simulators.hipe import _js
from simulators.hipe._js import JsDate

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
ColumnKind = Literal["int", "text", "bool", "timestamp", "json"]

DELIM = "||"
DELIM_STR = ","

DEPRECATED_OPERATORS = (
    "eq",
    "ne",
    "gt",
    "lt",
    "gte",
    "lte",
    "starts",
    "ends",
    "cont",
    "excl",
    "in",
    "notin",
    "isnull",
    "notnull",
    "between",
)
OPERATORS = (
    "$eq",
    "$ne",
    "$gt",
    "$lt",
    "$gte",
    "$lte",
    "$starts",
    "$ends",
    "$cont",
    "$excl",
    "$in",
    "$notin",
    "$isnull",
    "$notnull",
    "$between",
    "$eqL",
    "$neL",
    "$startsL",
    "$endsL",
    "$contL",
    "$exclL",
    "$inL",
    "$notinL",
)
COMPARISON_OPERATORS = DEPRECATED_OPERATORS + OPERATORS
_OPERATOR_LIST = ",".join(COMPARISON_OPERATORS)
_ARRAY_VALUE_OPERATORS = frozenset(
    {"in", "notin", "between", "$in", "$notin", "$between", "$inL", "$notinL"}
)
_EMPTY_VALUE_OPERATORS = frozenset({"isnull", "notnull", "$isnull", "$notnull"})

# crud-typeorm's checkSqlInjection only ever tests the first of its patterns.
_SQL_INJECTION = re.compile(r"(%27)|(')|(--)|(%23)|(#)", re.IGNORECASE)

PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "fields": ("fields", "select"),
    "search": ("s",),
    "filter": ("filter",),
    "or": ("or",),
    "join": ("join",),
    "sort": ("sort",),
    "limit": ("limit", "per_page"),
    "offset": ("offset",),
    "page": ("page",),
    "cache": ("cache",),
}


class CrudBadRequestError(Exception):
    """A ``RequestQueryException`` or ``BadRequestException``: HTTP 400 with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QueryFailedError(Exception):
    """What the database (or Node itself) would fail on: HTTP 500, "Internal server error"."""


@dataclass
class QueryFilter:
    """One ``filter``/``or`` condition as the parser returns it."""

    field: str
    operator: str
    value: Any


@dataclass
class ParsedRequest:
    """``RequestQueryParser.getParsed()`` (without the route's params and auth)."""

    fields: list[str] = field(default_factory=list)
    search: Any = None
    filter: list[QueryFilter] = field(default_factory=list)
    or_: list[QueryFilter] = field(default_factory=list)
    join: list[dict[str, Any]] = field(default_factory=list)
    sort: list[tuple[str, str]] = field(default_factory=list)
    limit: float | None = None
    offset: float | None = None
    page: float | None = None
    cache: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The parse as the library's ``JSON.stringify(getParsed())`` writes it."""
        body: dict[str, Any] = {
            "fields": list(self.fields),
            "paramsFilter": [],
            "filter": [_filter_json(f) for f in self.filter],
            "or": [_filter_json(f) for f in self.or_],
            "join": [{k: v for k, v in j.items() if v is not None} for j in self.join],
            "sort": [{"field": f, "order": o} for f, o in self.sort],
        }
        if self.search is not None:
            body["search"] = _js.to_json(self.search)
        for name in ("limit", "offset", "page", "cache"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


def _filter_json(condition: QueryFilter) -> dict[str, Any]:
    return {
        "field": condition.field,
        "operator": condition.operator,
        "value": _js.to_json(condition.value),
    }


# --------------------------------------------------------------------------- parsing


def _param_values(query: Mapping[str, Any], kind: str, parser: Callable[[Any], Any]) -> list[Any]:
    """``parseQueryParam``: every parameter spelled as ``kind``, in the query's order."""
    names = PARAM_NAMES[kind]
    values: list[Any] = []
    for name in query:
        if name not in names:
            continue
        value = query[name]
        if isinstance(value, str) and value:
            values.append(parser(value))
        elif isinstance(value, list) and value:
            values.extend(parser(item) for item in value)
    return values


def _require_text(data: Any) -> str:
    if not isinstance(data, str):
        # Node: "data.split is not a function", a TypeError, answered as a 500.
        raise QueryFailedError("a query parameter held a nested value")
    return data


def _parse_search(data: Any) -> Any:
    if data is None:
        return None
    try:
        parsed = _js.json_parse(_js.coerce_to_string(data))
    except ValueError:
        parsed = None
    if not _js.is_object(parsed):
        raise CrudBadRequestError("Invalid search param. JSON expected")
    return parsed


def _parse_condition(kind: str, data: Any) -> QueryFilter:
    parts = _require_text(data).split(DELIM)
    name = parts[0]
    operator = parts[1] if len(parts) > 1 else None
    raw: Any = parts[2] if len(parts) > 2 and parts[2] else ""
    if operator in _ARRAY_VALUE_OPERATORS:
        raw = raw.split(DELIM_STR)
    value = [_js.parse_value(v) for v in raw] if isinstance(raw, list) else _js.parse_value(raw)
    if operator not in _EMPTY_VALUE_OPERATORS and not _js.has_value(value):
        raise CrudBadRequestError(f"Invalid {kind} value")
    if not name:
        raise CrudBadRequestError(f"Invalid field type in {kind} condition. String expected")
    if operator not in COMPARISON_OPERATORS:
        raise CrudBadRequestError(f"Invalid comparison operator. {_OPERATOR_LIST} expected")
    return QueryFilter(name, operator, value)


def _parse_fields(data: Any) -> list[str]:
    return _require_text(data).split(DELIM_STR)


def _parse_join(data: Any) -> dict[str, Any]:
    parts = _require_text(data).split(DELIM)
    select = parts[1].split(DELIM_STR) if len(parts) > 1 and parts[1] else None
    if not parts[0]:
        raise CrudBadRequestError("Invalid join field. String expected")
    if select is not None and not all(select):
        raise CrudBadRequestError("Invalid join select. Array of strings expected")
    return {"field": parts[0], "select": select}


def _parse_sort(data: Any) -> tuple[str, str]:
    parts = _require_text(data).split(DELIM_STR)
    order = parts[1] if len(parts) > 1 else None
    if not parts[0]:
        raise CrudBadRequestError("Invalid sort field. String expected")
    if order not in ("ASC", "DESC"):
        raise CrudBadRequestError("Invalid sort order. ASC,DESC expected")
    return parts[0], order


def _numeric(name: str) -> Callable[[Any], float]:
    def parse(data: Any) -> float:
        value = _js.parse_value(data)
        if not _js.is_number(value):
            raise CrudBadRequestError(f"Invalid {name}. Number expected")
        number: float = value
        return number

    return parse


def parse_request(query: Mapping[str, Any]) -> ParsedRequest:
    """``RequestQueryParser.parseQuery`` on a qs-parsed query; raises the library's errors."""
    parsed = ParsedRequest()
    if not query:
        return parsed
    search_names = [name for name in query if name in PARAM_NAMES["search"]]
    parsed.search = _parse_search(query[search_names[0]] if search_names else None)
    if parsed.search is None:
        parsed.filter = _param_values(query, "filter", lambda d: _parse_condition("filter", d))
        parsed.or_ = _param_values(query, "or", lambda d: _parse_condition("or", d))
    fields = _param_values(query, "fields", _parse_fields)
    parsed.fields = fields[0] if fields else []
    parsed.join = _param_values(query, "join", _parse_join)
    parsed.sort = _param_values(query, "sort", _parse_sort)
    for name in ("limit", "offset", "page", "cache"):
        values = _param_values(query, name, _numeric(name))
        setattr(parsed, name, values[0] if values else None)
    return parsed


def parse_param_id(raw: str) -> float:
    """A numeric route param (``:id``) as crud parses it: 400 when it is not a number."""
    value = _js.parse_value(raw)
    if not _js.is_number(value):
        raise CrudBadRequestError("Invalid param id. Number expected")
    number: float = value
    return number


# --------------------------------------------------------------------------- combination


def convert_filter_to_search(condition: QueryFilter) -> dict[str, Any]:
    """``RequestQueryParser.convertFilterToSearch``."""
    value = True if condition.operator in ("isnull", "notnull") else condition.value
    return {condition.field: {condition.operator: value}}


def search_condition(
    parsed: ParsedRequest,
    params_search: Iterable[dict[str, Any]] = (),
    options_filter: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``CrudRequestInterceptor``: the one search object the service will apply."""
    search: list[Any]
    if parsed.search is not None:
        search = [parsed.search]
    elif parsed.filter and parsed.or_:
        if len(parsed.filter) == 1 and len(parsed.or_) == 1:
            search = [
                {
                    "$or": [
                        convert_filter_to_search(parsed.filter[0]),
                        convert_filter_to_search(parsed.or_[0]),
                    ]
                }
            ]
        else:
            search = [
                {
                    "$or": [
                        {"$and": [convert_filter_to_search(f) for f in parsed.filter]},
                        {"$and": [convert_filter_to_search(f) for f in parsed.or_]},
                    ]
                }
            ]
    elif parsed.filter:
        search = [convert_filter_to_search(f) for f in parsed.filter]
    elif len(parsed.or_) == 1:
        search = [convert_filter_to_search(parsed.or_[0])]
    elif parsed.or_:
        search = [{"$or": [convert_filter_to_search(f) for f in parsed.or_]}]
    else:
        search = []
    filters = list(options_filter) or [{}]
    # The leading None is the auth filter the interceptor always puts first (undefined).
    return {"$and": [None, *params_search, *filters, *search]}


# --------------------------------------------------------------------------- values and SQL


class _SqlError(Exception):
    """Postgres refusing the statement (bad cast, unknown column, LIKE on a number…)."""


def _pg_text(value: Any) -> str | None:
    """A parameter as the ``pg`` driver sends it (None is SQL NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _js.number_to_string(value)
    if isinstance(value, str):
        return value
    if isinstance(value, JsDate):
        text = value.pg()
        if text is None:
            raise _SqlError("invalid date")
        return text
    if isinstance(value, list):
        return _pg_array(value)
    return json.dumps(_js.to_json(value), separators=(",", ":"), ensure_ascii=False)


def _pg_array(items: list[Any]) -> str:
    out = []
    for item in items:
        if item is None:
            out.append("NULL")
        elif isinstance(item, list):
            out.append(_pg_array(item))
        else:
            text = _pg_text(item) or ""
            out.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(out) + "}"


_INT = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_BOOL_WORDS = (("true", True), ("false", False), ("yes", True), ("no", False))


def _cast_int(text: str) -> int:
    if not _INT.match(text):
        raise _SqlError(f'invalid input syntax for type integer: "{text}"')
    number = int(text)
    if not -(2**31) <= number < 2**31:
        raise _SqlError(f'value "{text}" is out of range for type integer')
    return number


def _cast_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "on"):
        return True
    if word in ("0", "of", "off"):
        return False
    for full, meaning in _BOOL_WORDS:
        if word and full.startswith(word):
            return meaning
    raise _SqlError(f'invalid input syntax for type boolean: "{text}"')


def _cast_timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise _SqlError(f'invalid input syntax for type timestamp: "{text}"') from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@lru_cache(maxsize=65536)
def stored_timestamp(text: str) -> datetime:
    """A stored ``createdAt``/``updatedAt`` string as an instant."""
    return datetime.fromisoformat(text)


def _cast_json(text: str) -> Any:
    try:
        return _js.json_parse(text)
    except ValueError as exc:
        raise _SqlError("invalid input syntax for type json") from exc


def _cast(kind: ColumnKind, value: Any) -> Any:
    """Cast a parameter to the column's type as Postgres casts an untyped literal."""
    text = _pg_text(value)
    if text is None:
        return None
    if kind == "text":
        return text
    if kind == "int":
        return _cast_int(text)
    if kind == "bool":
        return _cast_bool(text)
    if kind == "timestamp":
        return _cast_timestamp(text)
    return _cast_json(text)


def like_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A SQL LIKE pattern (``%``, ``_``, backslash escapes) as a regular expression."""
    out = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise _SqlError("LIKE pattern must not end with escape character")
            out.append(re.escape(escaped))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(out), flags)


# --------------------------------------------------------------------------- where lists


@dataclass
class _Atom:
    pred: Predicate
    hint: tuple[str, Any] | None = None


@dataclass
class _Group:
    wheres: list[tuple[str, _Atom | _Group]]


class _Builder:
    """The part of a TypeORM query builder ``setSearchCondition`` drives."""

    def __init__(self) -> None:
        self.wheres: list[tuple[str, _Atom | _Group]] = []

    def and_where(self, node: _Atom | _Group) -> None:
        self.wheres.append(("and", node))

    def or_where(self, node: _Atom | _Group) -> None:
        self.wheres.append(("or", node))


def _never(row: Row) -> bool:
    return False


@dataclass
class TableSpec:
    """The entity behind a crud controller: its alias (for 404s) and typed columns."""

    alias: str
    columns: dict[str, ColumnKind]
    primary: str = "id"
    indexed: tuple[str, ...] = ()


class _SearchCompiler:
    """``setSearchCondition`` and friends, mirrored call for call (quirks included)."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.sql_errors: list[str] = []

    # setSearchCondition
    def set_search_condition(self, builder: _Builder, search: Any, condition: str = "$and") -> None:
        if not _js.is_object(search):
            return
        keys = _js.object_keys(search)
        if not keys:
            return
        and_items = _js.get_property(search, "$and")
        or_items = _js.get_property(search, "$or")
        if isinstance(and_items, list) and and_items:
            if len(and_items) == 1:
                self.set_search_condition(builder, and_items[0], condition)
            else:

                def each_and(qb: _Builder) -> None:
                    for item in and_items:
                        self.set_search_condition(qb, item, "$and")

                self.add_brackets(builder, condition, each_and)
        elif isinstance(or_items, list) and or_items:
            if len(keys) == 1:
                if len(or_items) == 1:
                    self.set_search_condition(builder, or_items[0], condition)
                else:

                    def each_or(qb: _Builder) -> None:
                        for item in or_items:
                            self.set_search_condition(qb, item, "$or")

                    self.add_brackets(builder, condition, each_or)
            else:

                def fields_and_or(qb: _Builder) -> None:
                    for name in keys:
                        if name != "$or":
                            self.set_field(qb, "$and", name, _js.get_property(search, name))
                        elif len(or_items) == 1:
                            # crud-typeorm adds this one to the OUTER builder, not to qb.
                            self.set_search_condition(builder, or_items[0], "$and")
                        else:

                            def each_or2(qb2: _Builder) -> None:
                                for item in or_items:
                                    self.set_search_condition(qb2, item, "$or")

                            self.add_brackets(qb, "$and", each_or2)

                self.add_brackets(builder, condition, fields_and_or)
        elif len(keys) == 1:
            self.set_field(builder, condition, keys[0], _js.get_property(search, keys[0]))
        else:

            def each_field(qb: _Builder) -> None:
                for name in keys:
                    self.set_field(qb, "$and", name, _js.get_property(search, name))

            self.add_brackets(builder, condition, each_field)

    def set_field(self, builder: _Builder, condition: str, name: str, value: Any) -> None:
        if not _js.is_object(value):
            self.set_where(builder, condition, name, value)
        else:
            self.set_field_object(builder, condition, name, value)

    # builderAddBrackets: TypeORM runs the factory before it appends the bracket.
    def add_brackets(
        self, builder: _Builder, condition: str, factory: Callable[[_Builder], None]
    ) -> None:
        inner = _Builder()
        factory(inner)
        group = _Group(inner.wheres)
        if condition == "$and":
            builder.and_where(group)
        else:
            builder.or_where(group)

    # builderSetWhere
    def set_where(
        self, builder: _Builder, condition: str, name: str, value: Any, operator: str = "$eq"
    ) -> None:
        if operator not in COMPARISON_OPERATORS:
            raise CrudBadRequestError(f"Invalid comparison operator. {_OPERATOR_LIST} expected")
        atom = self.atom(name, "$isnull" if value is None else operator, value)
        if condition == "$and":
            builder.and_where(atom)
        else:
            builder.or_where(atom)

    # setSearchFieldObjectCondition
    def set_field_object(self, builder: _Builder, condition: str, name: str, obj: Any) -> None:
        operators = _js.object_keys(obj)
        if len(operators) == 1:
            nested_or = _js.get_property(obj, "$or")
            if _js.is_object(nested_or):
                or_keys = _js.object_keys(nested_or)
                self.set_field_object(
                    builder, condition if len(or_keys) == 1 else "$or", name, nested_or
                )
            else:
                self.set_where(
                    builder, condition, name, _js.get_property(obj, operators[0]), operators[0]
                )
        elif len(operators) > 1:

            def each_operator(qb: _Builder) -> None:
                for operator in operators:
                    value = _js.get_property(obj, operator)
                    if operator != "$or":
                        # note: ``condition``, not "$and": inside an $or these are ORed
                        self.set_where(qb, condition, name, value, operator)
                    elif len(_js.object_keys(value)) == 1:
                        self.set_field_object(qb, condition, name, value)
                    else:

                        def nested(qb2: _Builder, value: Any = value) -> None:
                            self.set_field_object(qb2, "$or", name, value)

                        self.add_brackets(qb, condition, nested)

            self.add_brackets(builder, condition, each_operator)

    # mapOperatorsToQuery + what Postgres makes of it
    def atom(self, name: str, operator: str, value: Any) -> _Atom:
        op = operator if operator.startswith("$") else "$" + operator
        if op in ("$in", "$notin", "$inL", "$notinL") and not (isinstance(value, list) and value):
            raise CrudBadRequestError(f"Invalid column '{name}' value")
        if op == "$between" and not (isinstance(value, list) and len(value) == 2):
            raise CrudBadRequestError(f"Invalid column '{name}' value")
        kind = self.spec.columns.get(name)
        if kind is None:
            self.sql_errors.append(f'column "{name}" does not exist')
            return _Atom(_never)
        try:
            return _compile_atom(name, kind, op, value)
        except _SqlError as exc:
            self.sql_errors.append(str(exc))
            return _Atom(_never)


def _compile_atom(name: str, kind: ColumnKind, op: str, value: Any) -> _Atom:
    if op == "$isnull":
        return _Atom(lambda r: r.get(name) is None)
    if op == "$notnull":
        return _Atom(lambda r: r.get(name) is not None)
    read = _reader(name, kind)
    lowered = op.endswith("L")
    if lowered or op in ("$starts", "$ends", "$cont", "$excl"):
        if kind != "text":
            raise _SqlError(f"operator does not exist for a {kind} column")
        return _compile_text_atom(name, op, value)
    if op in ("$in", "$notin"):
        items = [_cast(kind, item) for item in value]
        present = [item for item in items if item is not None]
        if op == "$in":
            allowed = _members(present)
            hint = (name, present) if name else None
            return _Atom(lambda r: (v := read(r)) is not None and _member(v, allowed), hint)
        if len(present) != len(items):
            return _Atom(_never)  # x NOT IN (…, NULL) is never true
        banned = _members(present)
        return _Atom(lambda r: (v := read(r)) is not None and not _member(v, banned))
    if op == "$between":
        low, high = _cast(kind, value[0]), _cast(kind, value[1])
        if low is None or high is None or kind == "json":
            if kind == "json":
                raise _SqlError("jsonb has no BETWEEN here")
            return _Atom(_never)
        return _Atom(lambda r: (v := read(r)) is not None and low <= v <= high)
    param = _cast(kind, value)
    if param is None:
        return _Atom(_never)
    if kind == "json" and op not in ("$eq", "$ne"):
        raise _SqlError("operator does not exist: jsonb")
    compare = _COMPARISONS.get(op, _COMPARISONS["$eq"])
    hint = (name, [param]) if op == "$eq" else None
    return _Atom(lambda r: (v := read(r)) is not None and compare(v, param), hint)


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: bool(a == b),
    "$ne": lambda a, b: bool(a != b),
    "$gt": lambda a, b: bool(a > b),
    "$lt": lambda a, b: bool(a < b),
    "$gte": lambda a, b: bool(a >= b),
    "$lte": lambda a, b: bool(a <= b),
}


def _members(items: list[Any]) -> Any:
    try:
        return frozenset(items)
    except TypeError:  # json values (dicts) are not hashable
        return items


def _member(value: Any, members: Any) -> bool:
    try:
        return value in members
    except TypeError:
        return False


def _reader(name: str, kind: ColumnKind) -> Callable[[Row], Any]:
    if kind == "timestamp":

        def read_timestamp(row: Row) -> Any:
            text = row.get(name)
            return None if text is None else stored_timestamp(text)

        return read_timestamp
    return lambda row: row.get(name)


def _compile_text_atom(name: str, op: str, value: Any) -> _Atom:
    def lower(row: Row) -> str | None:
        text = row.get(name)
        return None if text is None else str(text).lower()

    if op in ("$eqL", "$neL"):
        param = _cast("text", value)
        if param is None:
            return _Atom(_never)
        if op == "$eqL":
            return _Atom(lambda r: (v := lower(r)) is not None and v == param)
        return _Atom(lambda r: (v := lower(r)) is not None and v != param)
    if op in ("$inL", "$notinL"):
        items = [_cast("text", item) for item in value]
        present = frozenset(item for item in items if item is not None)
        if op == "$inL":
            return _Atom(lambda r: (v := lower(r)) is not None and v in present)
        if len(present) != len(items) or None in items:
            return _Atom(_never)
        return _Atom(lambda r: (v := lower(r)) is not None and v not in present)
    text = _js.to_string(value)
    base = op.rstrip("L")
    pattern = {
        "$starts": f"{text}%",
        "$ends": f"%{text}",
        "$cont": f"%{text}%",
        "$excl": f"%{text}%",
    }[base]
    regex = like_regex(pattern, ignore_case=op.endswith("L"))
    read: Callable[[Row], Any] = lower if op.endswith("L") else (lambda r: r.get(name))
    if base == "$excl":
        return _Atom(lambda r: (v := read(r)) is not None and regex.fullmatch(v) is None)
    return _Atom(lambda r: (v := read(r)) is not None and regex.fullmatch(v) is not None)


def _compile_wheres(wheres: list[tuple[str, _Atom | _Group]]) -> Predicate | None:
    """A where list as SQL reads it: AND binds tighter than OR; None when it is empty."""
    terms: list[list[Predicate]] = []
    for kind, node in wheres:
        pred = node.pred if isinstance(node, _Atom) else _compile_wheres(node.wheres)
        if pred is None:
            continue  # an empty bracket adds nothing
        if kind == "or" and terms:
            terms.append([pred])
        elif terms:
            terms[-1].append(pred)
        else:
            terms.append([pred])
    if not terms:
        return None
    if len(terms) == 1 and len(terms[0]) == 1:
        return terms[0][0]
    compiled = [tuple(term) for term in terms]
    return lambda row: any(all(p(row) for p in term) for term in compiled)


def _required_hints(wheres: list[tuple[str, _Atom | _Group]]) -> Iterator[tuple[str, Any]]:
    """Index hints of the atoms every matching row must satisfy (pure-AND chains only)."""
    nodes = [
        (kind, node)
        for kind, node in wheres
        if isinstance(node, _Atom) or _compile_wheres(node.wheres) is not None
    ]
    if any(kind == "or" for kind, _ in nodes[1:]):
        return
    for _, node in nodes:
        if isinstance(node, _Atom):
            if node.hint is not None:
                yield node.hint
        else:
            yield from _required_hints(node.wheres)


# --------------------------------------------------------------------------- the table


@dataclass
class CrudOptions:
    """The controller's ``@Crud({query: …})`` options that matter here."""

    limit: int | None = None
    max_limit: int | None = None
    always_paginate: bool = False
    filter: list[dict[str, Any]] = field(default_factory=list)


def _pg_round(value: float) -> int:
    """LIMIT/OFFSET take a bigint: Postgres rounds a fractional value half away from zero."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


class Table:
    """Rows of one entity, with hash indexes for ``$eq``/``$in`` on chosen columns."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows: dict[Any, dict[str, Any]] = {}
        self.indexes: dict[str, dict[Any, dict[Any, None]]] = {c: {} for c in spec.indexed}
        #: each list query's matched and sorted rows, until the next write: a page is O(page)
        self._results: ResultCache[list[dict[str, Any]]] = ResultCache()

    def clear(self) -> None:
        """Forget every row."""
        self._results.bump()
        self.rows.clear()
        for index in self.indexes.values():
            index.clear()

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace a row (rows are replaced whole, never mutated in place)."""
        key = row[self.spec.primary]
        old = self.rows.get(key)
        self._results.bump()
        for column, index in self.indexes.items():
            if old is not None:
                bucket = index.get(old.get(column))
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del index[old.get(column)]
            index.setdefault(row.get(column), {})[key] = None
        self.rows[key] = row

    def find(self, column: str, value: Any) -> list[dict[str, Any]]:
        """Rows whose indexed ``column`` equals ``value``, in primary-key order."""
        keys = self.indexes[column].get(value, {})
        return [self.rows[k] for k in sorted(keys)]

    def _candidates(self, wheres: list[tuple[str, _Atom | _Group]]) -> Iterable[dict[str, Any]]:
        chosen: set[Any] | None = None
        for column, values in _required_hints(wheres):
            if column == self.spec.primary:
                keys = {v for v in values if v in self.rows}
            elif column in self.indexes:
                index = self.indexes[column]
                keys = {k for v in values for k in index.get(v, ())}
            else:
                continue
            chosen = keys if chosen is None else chosen & keys
        if chosen is None:
            return self.rows.values()
        return [self.rows[k] for k in sorted(chosen)]

    def _run(
        self,
        parsed: ParsedRequest,
        options: CrudOptions,
        params_search: Iterable[dict[str, Any]],
        *,
        cached: bool = False,
    ) -> tuple[list[dict[str, Any]], int, float | None, float | None]:
        """``createBuilder`` then the statement: (page rows, total matches, take, skip).

        With ``cached``, the matched and sorted rows are kept (per search and sort) until
        the next write, so paging through a list costs O(page) per page.
        """
        search = search_condition(parsed, params_search, options.filter)
        compiler = _SearchCompiler(self.spec)
        builder = _Builder()
        compiler.set_search_condition(builder, search)
        sort = self._sort_columns(parsed, compiler)
        take = _get_take(parsed, options)
        skip = _get_skip(parsed, take)
        if (take is not None and take < 0) or (skip is not None and skip < 0):
            compiler.sql_errors.append("LIMIT/OFFSET must not be negative")
        if compiler.sql_errors:
            raise QueryFailedError(compiler.sql_errors[0])
        predicate = _compile_wheres(builder.wheres)

        def match() -> list[dict[str, Any]]:
            candidates = self._candidates(builder.wheres)
            matched = [r for r in candidates if predicate is None or predicate(r)]
            for column, order in reversed(sort):
                matched.sort(key=_sort_key(column), reverse=order == "DESC")
            return matched

        key = _search_key(search, sort) if cached else None
        matched = match() if key is None else self._results.get(key, match)
        start = _pg_round(skip) if skip else 0
        stop = start + _pg_round(take) if take else None
        data = [self._select(r, parsed.fields) for r in matched[start:stop]]
        return data, len(matched), take, skip

    def query(
        self,
        parsed: ParsedRequest,
        options: CrudOptions,
        params_search: Iterable[dict[str, Any]] = (),
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """``TypeOrmCrudService.getMany``: a bare array, or the paginated envelope.

        The envelope comes when the controller sets ``alwaysPaginate``, or when the request
        has ``page`` or ``offset`` and there is a page size (``limit`` or a server default).
        """
        data, total, take, skip = self._run(parsed, options, params_search, cached=True)
        paginate = options.always_paginate or (
            (parsed.page is not None or parsed.offset is not None) and bool(take)
        )
        if not paginate:
            return data
        limit = take or total
        offset = skip or 0
        return {
            "data": data,
            "count": len(data),
            "total": total,
            "page": math.floor(offset / limit) + 1 if limit else 1,
            "pageCount": math.ceil(total / limit) if limit and total else 1,
        }

    def get_one(
        self, parsed: ParsedRequest, key: float, options: CrudOptions | None = None
    ) -> dict[str, Any] | None:
        """``getOneOrFail``: the first row with this key that the whole query keeps, or None.

        The route's ``:id`` comes first in the search; crud-typeorm 4.6.2 builds the get-one
        statement like a list (sort, limit, offset included), so ``?offset=1`` finds nothing.
        """
        data, _, _, _ = self._run(
            parsed, options or CrudOptions(), [{self.spec.primary: {"$eq": key}}]
        )
        return data[0] if data else None

    def _sort_columns(
        self, parsed: ParsedRequest, compiler: _SearchCompiler
    ) -> list[tuple[str, str]]:
        by_field: dict[str, str] = {}
        for name, order in parsed.sort:
            parts = name.split(".")
            aliased = (
                f"{self.spec.alias}.{name}"
                if len(parts) == 1
                else name
                if len(parts) == 2
                else ".".join(parts[-2:])
            )
            if _SQL_INJECTION.search(aliased):
                raise CrudBadRequestError(f'SQL injection detected: "{aliased}"')
            by_field[aliased] = order
        columns = []
        for aliased, order in by_field.items():
            alias, _, column = aliased.partition(".")
            if alias != self.spec.alias or column not in self.spec.columns:
                compiler.sql_errors.append(f'missing column "{aliased}"')
                continue
            columns.append((column, order))
        return columns

    def _select(self, row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        if not fields:
            return row
        wanted = set(fields)
        wanted.add(self.spec.primary)
        return {c: row.get(c) for c in self.spec.columns if c in wanted}


def _get_take(parsed: ParsedRequest, options: CrudOptions) -> float | None:
    """``CrudService.getTake``."""
    cap = options.max_limit
    if parsed.limit:
        return parsed.limit if not cap or parsed.limit <= cap else cap
    if options.limit:
        return options.limit if not cap or options.limit <= cap else cap
    return cap or None


def _get_skip(parsed: ParsedRequest, take: float | None) -> float | None:
    """``CrudService.getSkip``: ``page`` wins over ``offset``."""
    if parsed.page and take:
        return take * (parsed.page - 1)
    return parsed.offset or None


def _search_key(search: Any, sort: list[tuple[str, str]]) -> tuple[str, tuple[Any, ...]] | None:
    """A cache key for a search and sort, or None when the search is not plain JSON."""
    try:
        return json.dumps(search), tuple(sort)
    except (TypeError, ValueError):
        return None


def _sort_key(column: str) -> Callable[[Row], tuple[int, Any]]:
    """Postgres order: NULLs last when ascending (first when descending)."""

    def key(row: Row) -> tuple[int, Any]:
        value = row.get(column)
        if value is None:
            return (1, 0)
        if isinstance(value, dict | list):
            return (0, json.dumps(value, sort_keys=True))
        return (0, value)

    return key
