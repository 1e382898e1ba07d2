"""What a producer keeps of each stream in Redis: its snapshot, cursor and poll state.

The **snapshot** (one hash per source and entity: record key -> fingerprint of the content
last published) is what a poll compares each page with (:meth:`Snapshots.compare`, one
script call a page that also extends the stream's lock), and advances only once the
changes are published. The **cursor** is a stream's bookmark; the **stream state** hash is
what ``erpsync status`` shows of its polls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from state.scripts import lua
from state.store import State

_COMPARE = lua("snapshot_compare")


def _positions(text: str) -> list[int]:
    """0-based positions from the 1-based comma-separated list the compare script returns."""
    return [int(i) - 1 for i in text.split(",")] if text else []


class Snapshots:
    """The producers' streams in Redis (see the module's docstring)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.keys = state.keys
        self._compare = state.redis.register_script(_COMPARE)

    def pipeline(self) -> Any:
        """A pipeline (no transaction) to queue several writes on, sent by ``execute()``."""
        return self.state.redis.pipeline(transaction=False)

    # -- poll state and cursor --------------------------------------------------------
    def note(self, source: str, entity: str, fields: Mapping[str, str]) -> None:
        """Write fields of the stream's state (``last_poll_started``, ``last_error``...)."""
        state_key = self.keys.stream_state(source, entity)
        self.state.redis.hset(state_key, mapping=dict(fields))  # type: ignore[arg-type]

    def cursor(self, source: str, entity: str) -> str | None:
        """The stream's bookmark, None when it has none."""
        value: str | None = self.state.redis.get(self.keys.cursor(source, entity))  # type: ignore[assignment]
        return value

    def set_cursor(self, source: str, entity: str, bookmark: str) -> None:
        """Move the stream's bookmark (also shown in its state)."""
        self.state.redis.set(self.keys.cursor(source, entity), bookmark)
        self.state.redis.hset(self.keys.stream_state(source, entity), "cursor", bookmark)

    def extend_lock(self, lock_key: str, lease_s: float) -> None:
        """Extend the stream's lock to ``lease_s`` from now."""
        self.state.redis.pexpire(lock_key, int(lease_s * 1000))

    # -- the snapshot -----------------------------------------------------------------
    def size(self, source: str, entity: str) -> int:
        """How many records the snapshot holds."""
        count: int = self.state.redis.hlen(self.keys.snapshot(source, entity))
        return count

    def known_keys(self, source: str, entity: str) -> Iterator[str]:
        """Every record key the snapshot holds (read in pages)."""
        for key, _ in self.state.redis.hscan_iter(self.keys.snapshot(source, entity), count=1000):
            yield str(key)

    def compare(
        self,
        source: str,
        entity: str,
        lock_key: str,
        lease_s: float,
        keys: Sequence[str],
        fingerprints: Sequence[str],
    ) -> tuple[list[int], set[int]]:
        """Positions whose fingerprint differs from the snapshot's (new keys included), and
        those of keys it lacks. One round trip, which also extends the stream's lock."""
        answer = self._compare(
            keys=[self.keys.snapshot(source, entity), lock_key],
            args=[int(lease_s * 1000), json.dumps([list(keys), list(fingerprints)])],
        )
        changed_text, _, missing_text = str(answer).partition(";")
        return _positions(changed_text), set(_positions(missing_text))

    def queue_update(
        self,
        pipe: Any,
        source: str,
        entity: str,
        *,
        upserts: Mapping[str, str],
        gone: Sequence[str],
    ) -> None:
        """Queue on ``pipe``: the snapshot takes these fingerprints and forgets ``gone``."""
        snapshot = self.keys.snapshot(source, entity)
        if upserts:
            pipe.hset(snapshot, mapping=dict(upserts))
        if gone:
            pipe.hdel(snapshot, *gone)

    def queue_latest(
        self, pipe: Any, source: str, entity: str, versions: Mapping[str, int]
    ) -> None:
        """Queue on ``pipe``: :meth:`State.set_latest` (the newest version per key)."""
        pipe.hset(self.keys.latest(source, entity), mapping=dict(versions))
