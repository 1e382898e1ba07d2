"""Paging helpers for the simulators: a page costs O(page), not O(records).

A client reading 100,000 records 100 at a time asks for 1,000 pages; if each page filtered,
sorted or walked every record, reading them all would grow with the square of the count.
Two tools keep a page proportional to its size without changing any answer:

* :class:`ResultCache` keeps the filtered and sorted result of a query, per query key, until
  the next write (every write bumps a version counter);
* :class:`InsertionOrdered` is a dict that also keeps its keys in a list, in insertion order,
  so a page of "oldest first" is a list slice instead of a walk from the first record.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

#: distinct queries remembered at once (a paging client repeats one query per page)
CACHE_ENTRIES = 16


class ResultCache(Generic[T]):
    """Query results by key, forgotten as a whole on the next :meth:`bump` (any write)."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.version = 0
        self._entries = entries
        self._cache: dict[Hashable, T] = {}
        self._cache_version = 0

    def bump(self) -> None:
        """A write happened: every cached result is stale."""
        self.version += 1

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached result for ``key``, computing (and remembering) it when stale."""
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if key in self._cache:
            return self._cache[key]
        result = compute()
        if len(self._cache) >= self._entries:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = result
        return result


class InsertionOrdered(dict[K, V]):
    """A dict whose keys are also listed in insertion order, for O(page) slices.

    Replacing a value keeps its place (as a dict does). Removing a key is O(records): the
    simulators that use this only clear the whole store.
    """

    def __init__(self) -> None:
        super().__init__()
        self.order: list[K] = []

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self:
            self.order.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        super().__delitem__(key)
        self.order.remove(key)

    def pop(self, key: K, *default: V) -> V:  # type: ignore[override]
        if key in self:
            self.order.remove(key)
        return super().pop(key, *default)

    def clear(self) -> None:
        super().clear()
        self.order.clear()

    def setdefault(self, key: K, default: V) -> V:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("InsertionOrdered.update: assign keys one by one")

    def slice(self, start: int, stop: int) -> list[V]:
        """The values from the ``start``-th inserted key to before the ``stop``-th."""
        return [self[key] for key in self.order[max(start, 0) : max(stop, 0)]]
