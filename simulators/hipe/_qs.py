"""Express 4's "extended" query-string parser (npm ``qs``), as a NestJS server applies it.

What matters for the crud language: ``+`` is a space; ``%XX`` escapes are UTF-8 and a value
with a malformed escape is kept as it came (``decodeURIComponent`` threw); repeated keys
become arrays; ``key[]=`` and ``key[0]=`` build arrays (``RequestQueryBuilder`` writes
``sort[0]=…&filter[0]=…``, with the brackets percent-encoded); any other bracket makes an
object, which the crud parser then ignores or refuses. At most 1000 parameters are read.
"""

from __future__ import annotations

import re
from typing import Any

_PARAMETER_LIMIT = 1000
_ARRAY_LIMIT = 20
_DEPTH = 5
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


class QsObject(dict[str, Any]):
    """A value qs turned into a plain object (``a[b]=c``): never a string or an array."""


class _Sparse:
    """A JavaScript array under construction: indexes may have holes until compacted."""

    def __init__(self, items: dict[int, Any] | None = None, length: int = 0) -> None:
        self.items: dict[int, Any] = items or {}
        self.length = max(length, max(self.items, default=-1) + 1)

    def push(self, value: Any) -> None:
        self.items[self.length] = value
        self.length += 1

    def compact(self) -> list[Any]:
        return [_compact(self.items[i]) for i in sorted(self.items)]


def decode_uri_component(text: str) -> str:
    """``decodeURIComponent``; raises ValueError where JavaScript throws a URIError."""
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        raise ValueError("malformed escape")

    def run(match: re.Match[str]) -> str:
        raw = bytes(int(match[0][i + 1 : i + 3], 16) for i in range(0, len(match[0]), 3))
        return raw.decode("utf-8")  # strict: a broken sequence is a URIError

    try:
        return _ESCAPES.sub(run, text)
    except UnicodeDecodeError as exc:
        raise ValueError("malformed UTF-8") from exc


def _decode(text: str) -> str:
    without_plus = text.replace("+", " ")
    try:
        return decode_uri_component(without_plus)
    except ValueError:
        return without_plus


def _combine(target: Any, source: Any) -> Any:
    """qs ``utils.combine`` for duplicate keys: ``[].concat(a, b)``."""
    left = target if isinstance(target, list) else [target]
    right = source if isinstance(source, list) else [source]
    return [*left, *right]


_BRACKET = re.compile(r"\[[^[\]]*\]")


def _segments(key: str) -> list[str]:
    """qs ``parseKeys``: the parent, then up to five ``[…]`` segments, then the rest."""
    first = _BRACKET.search(key)
    parent = key[: first.start()] if first else key
    segments = [parent] if parent else []
    rest_at = -1
    for count, match in enumerate(_BRACKET.finditer(key)):
        if count == _DEPTH:
            rest_at = match.start()
            break
        segments.append(match[0])
    if rest_at >= 0:
        segments.append("[" + key[rest_at:] + "]")
    return segments


def _build(segments: list[str], leaf: Any) -> Any:
    value = leaf
    for root in reversed(segments):
        if root == "[]":
            value = _Sparse(dict(enumerate(value if isinstance(value, list) else [value])))
            continue
        clean = root[1:-1] if root.startswith("[") and root.endswith("]") else root
        is_index = (
            root != clean and clean.isascii() and clean.isdigit() and str(int(clean)) == clean
        )
        if is_index and int(clean) <= _ARRAY_LIMIT:
            value = _Sparse({int(clean): value})
        elif clean == "__proto__":
            value = QsObject()
        else:
            value = QsObject({clean: value})
    return value


def _merge(target: Any, source: Any) -> Any:
    """qs ``utils.merge`` for the shapes a query string can produce."""
    if target is None:
        return source
    if isinstance(source, str):
        if isinstance(target, _Sparse):
            target.push(source)
            return target
        if isinstance(target, list):
            return [*target, source]
        if isinstance(target, QsObject):
            target.setdefault(source, True)
            return target
        return [target, source]
    if isinstance(target, str | list):
        items = target if isinstance(target, list) else [target]
        if isinstance(source, _Sparse):
            shifted = {len(items) + i: v for i, v in source.items.items()}
            return _Sparse({**dict(enumerate(items)), **shifted}, len(items) + source.length)
        if isinstance(source, list):
            return [*items, *source]
        return QsObject({**{str(i): v for i, v in enumerate(items)}, **source})
    if isinstance(target, _Sparse) and isinstance(source, _Sparse):
        for index, item in source.items.items():
            if index in target.items:
                existing = target.items[index]
                if isinstance(existing, _Sparse | QsObject) and isinstance(
                    item, _Sparse | QsObject
                ):
                    target.items[index] = _merge(existing, item)
                else:
                    target.push(item)
            else:
                target.items[index] = item
                target.length = max(target.length, index + 1)
        return target
    if isinstance(target, _Sparse):
        target = QsObject({str(i): v for i, v in target.items.items()})
    if isinstance(target, QsObject):
        pairs: list[tuple[Any, Any]] = (
            list(source.items.items()) if isinstance(source, _Sparse) else list(source.items())
        )
        for raw_key, item in pairs:
            key = str(raw_key)
            target[key] = _merge(target.get(key), item) if key in target else item
        return target
    return source


def _compact(value: Any) -> Any:
    if isinstance(value, _Sparse):
        return value.compact()
    if isinstance(value, QsObject):
        return QsObject({k: _compact(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def parse_query_string(raw: str) -> dict[str, Any]:
    """``qs.parse(raw)``: each value is a str, a list (of values) or a :class:`QsObject`."""
    if not raw:
        return {}
    clean = re.sub("%5D", "]", re.sub("%5B", "[", raw, flags=re.IGNORECASE), flags=re.IGNORECASE)
    flat: dict[str, Any] = {}
    for part in clean.split("&")[:_PARAMETER_LIMIT]:
        bracket_equals = part.find("]=")
        pos = part.find("=") if bracket_equals < 0 else bracket_equals + 1
        if pos < 0:
            key, value = _decode(part), ""
        else:
            key, value = _decode(part[:pos]), _decode(part[pos + 1 :])
        flat[key] = _combine(flat[key], value) if key in flat else value
    result: dict[str, Any] = {}
    for key, value in flat.items():
        if not key:
            continue
        built = _build(_segments(key), value)
        entries: list[tuple[Any, Any]] = (
            list(built.items.items()) if isinstance(built, _Sparse) else list(built.items())
        )
        for index_or_name, item in entries:
            name = str(index_or_name)
            result[name] = _merge(result[name], item) if name in result else item
    return {k: _compact(v) for k, v in result.items()}
