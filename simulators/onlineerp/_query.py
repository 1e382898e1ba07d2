"""The OData-like query options of ``GET /Entity/<Name>``: parsing and evaluation.

Only what the vendor documents (VENDORS.md §4.4) and docs/sandbox-conventions.md pin down:
``$filter`` is ``<path> eq <literal>`` joined by ``and`` (parentheses allowed), literals are
``'text'`` (``''`` for a quote), numbers, ``true``, ``false`` and ``null``; ``$select`` and
``$orderby`` take dotted paths; ``$top`` is capped at :data:`MAX_TOP`. Anything else is a
:class:`QueryError`, which the simulator answers as **400** ``InvalidFilter``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: the server's page size limit: larger ``$top`` values are capped, and a list without
#: ``$top`` answers at most this many records
MAX_TOP = 1000

#: ``$expand`` is listed on the vendor's entity pages (``ExtendedProperties``); the sandbox
#: has nothing to expand, so it is accepted and ignored
IGNORED_OPTIONS = frozenset({"$expand"})
KNOWN_OPTIONS = frozenset({"$filter", "$select", "$orderby", "$top", "$skip"}) | IGNORED_OPTIONS

Path = tuple[str, ...]
Literal = str | int | float | bool | None

_UNSUPPORTED_OPERATORS = frozenset(
    {"ne", "gt", "ge", "lt", "le", "or", "not", "has", "in", "add", "sub", "mul", "div", "mod"}
)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<paren>[()])
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<name>[^\W\d]\w*(?:[./][^\W\d]\w*)*)
    """,
    re.VERBOSE,
)
_PATH = re.compile(r"[^\W\d]\w*(?:[./][^\W\d]\w*)*")
_INTEGER = re.compile(r"\d{1,9}")


class QueryError(ValueError):
    """A query option the sandbox cannot understand (answered as 400 ``InvalidFilter``)."""


@dataclass(frozen=True)
class Condition:
    """One ``<path> eq <literal>`` term of a filter."""

    path: Path
    value: Literal


@dataclass(frozen=True)
class SortKey:
    """One ``<path> [asc|desc]`` term of an ``$orderby``."""

    path: Path
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """The parsed query options of one list request."""

    conditions: tuple[Condition, ...] = ()
    select: tuple[Path, ...] | None = None
    orderby: tuple[SortKey, ...] = ()
    top: int = MAX_TOP
    skip: int = 0
    #: normalized text of the filter and ordering, for caching a result order
    signature: str = field(default="", compare=False)


def parse_query(
    params: Iterable[tuple[str, str]], known_field: Callable[[str], bool], entity: str
) -> Query:
    """Parse the query options; ``known_field`` says whether a top-level field exists."""
    seen: dict[str, str] = {}
    for name, value in params:
        if not name.startswith("$"):
            continue
        option = name.lower()
        if option not in KNOWN_OPTIONS:
            raise QueryError(f"The query option '{name}' is not supported.")
        if option in seen:
            raise QueryError(f"The query option '{name}' was specified more than once.")
        seen[option] = value

    def check(path: Path, option: str) -> Path:
        if not known_field(path[0]):
            raise QueryError(
                f"Could not find a property named '{path[0]}' on type '{entity}' ({option})."
            )
        return path

    conditions = tuple(
        Condition(check(c.path, "$filter"), c.value) for c in parse_filter(seen.get("$filter"))
    )
    select = _parse_select(seen.get("$select"))
    if select is not None:
        select = tuple(check(p, "$select") for p in select)
    orderby = tuple(
        SortKey(check(k.path, "$orderby"), k.descending)
        for k in _parse_orderby(seen.get("$orderby"))
    )
    top = min(_parse_count(seen.get("$top"), "$top", MAX_TOP), MAX_TOP)
    skip = _parse_count(seen.get("$skip"), "$skip", 0)
    signature = repr((conditions, orderby))
    return Query(conditions, select, orderby, top, skip, signature)


def parse_filter(text: str | None) -> list[Condition]:
    """The ``eq`` terms of a ``$filter``, all of which must hold."""
    if text is None:
        return []
    tokens = _tokenize(text)
    if not tokens:
        raise QueryError("The $filter is empty.")
    parser = _FilterParser(text, tokens)
    conditions = parser.expression()
    if parser.position < len(tokens):
        raise parser.error("'and' or the end of the filter")
    return conditions


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise QueryError(
                f"Syntax error at position {position} in $filter '{text}': unexpected "
                f"{text[position]!r}."
            )
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group(), position))
        position = match.end()
    return tokens


class _FilterParser:
    """Recursive descent over ``term ('and' term)*``, ``term = '(' expr ')' | path eq literal``."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int]]) -> None:
        self.text = text
        self.tokens = tokens
        self.position = 0

    def error(self, expected: str) -> QueryError:
        if self.position >= len(self.tokens):
            where = f"at the end of $filter '{self.text}'"
        else:
            _, value, offset = self.tokens[self.position]
            where = f"at position {offset} in $filter '{self.text}' (found '{value}')"
        return QueryError(f"Syntax error {where}: expected {expected}.")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def expression(self) -> list[Condition]:
        conditions = self.term()
        while (token := self.peek()) is not None and token[0] == "name":
            word = token[1].lower()
            if word == "and":
                self.position += 1
                conditions.extend(self.term())
            elif word in _UNSUPPORTED_OPERATORS:
                raise QueryError(f"The operator '{token[1]}' is not supported in $filter.")
            else:
                raise self.error("'and' or the end of the filter")
        return conditions

    def term(self) -> list[Condition]:
        token = self.peek()
        if token is None:
            raise self.error("a condition")
        kind, value, _ = token
        if kind == "paren" and value == "(":
            self.position += 1
            inner = self.expression()
            closing = self.peek()
            if closing is None or closing[1] != ")":
                raise self.error("')'")
            self.position += 1
            return inner
        if kind != "name" or value.lower() in {"and", "true", "false", "null"}:
            raise self.error("a property name")
        self.position += 1
        path = _split_path(value)
        operator = self.peek()
        if operator is not None and operator[0] == "paren" and operator[1] == "(":
            raise QueryError(f"The function '{value}' is not supported in $filter.")
        if operator is None or operator[0] != "name":
            raise self.error("'eq'")
        word = operator[1].lower()
        if word in _UNSUPPORTED_OPERATORS:
            raise QueryError(f"The operator '{operator[1]}' is not supported in $filter.")
        if word != "eq":
            raise self.error("'eq'")
        self.position += 1
        return [Condition(path, self.literal())]

    def literal(self) -> Literal:
        token = self.peek()
        if token is None:
            raise self.error("a value")
        kind, value, _ = token
        self.position += 1
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            if any(c in value for c in ".eE"):
                return float(value)
            return int(value)
        if kind == "name":
            word = value.lower()
            if word == "true":
                return True
            if word == "false":
                return False
            if word == "null":
                return None
        self.position -= 1
        raise self.error("a value ('text', a number, true, false or null)")


def _split_path(text: str) -> Path:
    return tuple(re.split(r"[./]", text))


def _parse_select(text: str | None) -> tuple[Path, ...] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if items == ["*"]:
        return None
    paths: list[Path] = []
    for item in items:
        if not _PATH.fullmatch(item):
            raise QueryError(f"The $select item '{item}' is not a property path.")
        paths.append(_split_path(item))
    return tuple(paths)


def _parse_orderby(text: str | None) -> list[SortKey]:
    if text is None:
        return []
    keys: list[SortKey] = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or not _PATH.fullmatch(words[0]):
            raise QueryError(f"The $orderby item '{item.strip()}' is not '<property> [asc|desc]'.")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in {"asc", "desc"}:
            raise QueryError(f"The $orderby direction '{words[1]}' is not asc or desc.")
        keys.append(SortKey(_split_path(words[0]), direction == "desc"))
    return keys


def _parse_count(text: str | None, option: str, default: int) -> int:
    if text is None:
        return default
    value = text.strip()
    if not _INTEGER.fullmatch(value):
        raise QueryError(f"The value of {option} must be a non-negative integer, not '{text}'.")
    return int(value)


def resolve(record: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path`` (None when a step is missing or not an object)."""
    value: Any = record
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def equals(value: Any, literal: Literal) -> bool:
    """OData ``eq`` without implicit conversions: ``true`` never equals ``1``."""
    if literal is None:
        return value is None
    if isinstance(literal, bool):
        return isinstance(value, bool) and value is literal
    if isinstance(literal, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool) and value == literal
    return isinstance(value, str) and value == literal


def matches(record: Mapping[str, Any], conditions: Iterable[Condition]) -> bool:
    """Whether every condition holds for ``record``."""
    return all(equals(resolve(record, c.path), c.value) for c in conditions)


def sort_value(value: Any) -> tuple[int, Any]:
    """A total order over JSON values: null, booleans, numbers, text, then the rest."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, repr(value))


def project(record: Mapping[str, Any], select: tuple[Path, ...]) -> dict[str, Any]:
    """The record reduced to the selected paths, nested as in the record."""
    out: dict[str, Any] = {}
    for path in select:
        source: Any = record
        target = out
        for depth, step in enumerate(path):
            value = source.get(step, None) if isinstance(source, dict) else None
            if depth == len(path) - 1:
                target[step] = value
                break
            if not isinstance(value, dict):
                target.setdefault(step, None)
                break
            child = target.get(step)
            if not isinstance(child, dict):
                child = {}
                target[step] = child
            target = child
            source = value
    return out
