"""An entity's records kept in key order, so paging by key costs O(page size).

Benchmarks page through 100,000 customers with ``$top``/``$skip``: a sort or a full scan
per page would make the simulator, not the code under test, the bottleneck. Records live
in a dict and their keys in a sorted list (kept with :mod:`bisect`); a page without a
filter is a slice of that list. A filtered or otherwise ordered result is computed once by
a scan and cached until the next write, so paging through it is cheap too.

Stored records are never mutated: an update stores a new dict, so a reader may serialize
records it took under the lock after releasing it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

from simulators.onlineerp._query import Path, Query, SortKey, matches, resolve, sort_value

_CACHE_ENTRIES = 16


class EntityStore:
    """The records of one entity, ordered by their key field."""

    def __init__(
        self, name: str, key_field: str, fields: Iterable[str], indexed: Iterable[Path] = ()
    ) -> None:
        self.name = name
        self.key_field = key_field
        self.fields = frozenset(fields)
        self.records: dict[str, dict[str, Any]] = {}
        self.keys: list[str] = []
        #: top-level fields seen on stored records beyond the documented ones
        self.extra_fields: set[str] = set()
        self.indexes: dict[Path, dict[Any, str]] = {path: {} for path in indexed}
        self.version = 0
        self._cache: dict[str, list[str]] = {}
        self._cache_version = 0

    def __len__(self) -> int:
        return len(self.records)

    def known_field(self, name: str) -> bool:
        """Whether a query may name this top-level field."""
        return name in self.fields or name in self.extra_fields

    def get(self, key: str) -> dict[str, Any] | None:
        """The record with this key, if any."""
        return self.records.get(key)

    def find(self, path: Path, value: Any) -> dict[str, Any] | None:
        """The record whose indexed ``path`` holds ``value``, if any."""
        found = self.indexes[path].get(value)
        return None if found is None else self.records[found]

    def put(self, record: dict[str, Any]) -> None:
        """Insert or replace the record under its key."""
        key = record[self.key_field]
        old = self.records.get(key)
        if old is None:
            bisect.insort(self.keys, key)
        else:
            self._unindex(old)
        self.records[key] = record
        self._index(record)
        self.extra_fields.update(name for name in record if name not in self.fields)
        self.version += 1

    def delete(self, key: str) -> dict[str, Any] | None:
        """Remove and return the record with this key, if any."""
        old = self.records.pop(key, None)
        if old is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]
            self._unindex(old)
            self.version += 1
        return old

    def load(self, records: Iterable[dict[str, Any]]) -> None:
        """Replace every record at once (one sort instead of one insertion each)."""
        self.clear()
        for record in records:
            self.records[record[self.key_field]] = record
            self._index(record)
            self.extra_fields.update(name for name in record if name not in self.fields)
        self.keys = sorted(self.records)

    def clear(self) -> None:
        """Forget every record."""
        self.records = {}
        self.keys = []
        self.extra_fields = set()
        for index in self.indexes.values():
            index.clear()
        self.version += 1

    def all(self) -> list[dict[str, Any]]:
        """Every record in key order."""
        return [self.records[key] for key in self.keys]

    def page(self, query: Query) -> list[dict[str, Any]]:
        """The records of one page of a list request."""
        start, stop = query.skip, query.skip + query.top
        if not query.conditions and query.orderby in ((), (SortKey((self.key_field,)),)):
            keys = self.keys[start:stop]
        elif not query.conditions and query.orderby == (SortKey((self.key_field,), True),):
            end = len(self.keys) - start
            keys = self.keys[max(0, end - query.top) : max(0, end)][::-1]
        else:
            keys = self._ordered(query)[start:stop]
        return [self.records[key] for key in keys]

    def _ordered(self, query: Query) -> list[str]:
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        cached = self._cache.get(query.signature)
        if cached is not None:
            return cached
        records = self.records
        candidates = self._candidates(query)
        selected = [key for key in candidates if matches(records[key], query.conditions)]
        if query.orderby == (SortKey((self.key_field,), True),):
            selected.reverse()
        elif query.orderby != (SortKey((self.key_field,)),):
            # Stable sorts from the last key to the first; equal values keep key order.
            for sort_key in reversed(query.orderby):
                selected.sort(key=_sort_by(records, sort_key.path), reverse=sort_key.descending)
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[query.signature] = selected
        return selected

    def _candidates(self, query: Query) -> list[str]:
        """Keys that may match, in key order: one lookup when a condition pins the key."""
        for condition in query.conditions:
            if condition.path == (self.key_field,) and isinstance(condition.value, str):
                return [condition.value] if condition.value in self.records else []
            index = self.indexes.get(condition.path)
            if index is not None and condition.value in index:
                return [index[condition.value]]
            if index is not None:
                return []
        return self.keys

    def _index(self, record: dict[str, Any]) -> None:
        for path, index in self.indexes.items():
            value = resolve(record, path)
            if value is not None:
                index[value] = record[self.key_field]

    def _unindex(self, record: dict[str, Any]) -> None:
        for path, index in self.indexes.items():
            value = resolve(record, path)
            if value is not None and index.get(value) == record[self.key_field]:
                del index[value]


def _sort_by(records: dict[str, dict[str, Any]], path: Path) -> Callable[[str], tuple[int, Any]]:
    def value(key: str) -> tuple[int, Any]:
        return sort_value(resolve(records[key], path))

    return value
