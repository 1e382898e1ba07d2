"""The reconcile's files: each stream spilled to SQLite and read back in key order, and the
drift found, which the report lists and a repair reads (:mod:`producers.reconcile`)."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

#: rows written to SQLite per statement
CHUNK = 1000
#: each spill's SQLite page cache, KiB (the default is 2,000)
_CACHE_KIB = 512


#: one row of a spilled stream: (key, the target's id or None, body, extra)
Row = tuple[str, str | None, Any, Any]


class Spill:
    """Rows ``(key, ref, body, extra)`` of one stream in a SQLite file, read back in key
    order (SQLite's sorter: sequential reads, its memory bounded, spilling to temp files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        # written and read in sequence: a small page cache (and sorter) is all it needs
        self.db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self.db.execute("CREATE TABLE rows (key TEXT NOT NULL, ref TEXT, body, extra)")

    def add(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)", rows)
        self.db.execute("COMMIT")
        self.count += len(rows)

    def groups(self) -> Iterator[tuple[str, list[Row]]]:
        """``(key, [row, …])`` in key order (several rows for a duplicated key)."""
        cursor = self.db.execute("SELECT key, ref, body, extra FROM rows ORDER BY key, ref")
        for key, rows in itertools.groupby(cursor, key=lambda row: str(row[0])):
            yield key, list(rows)

    def close(self) -> None:
        self.db.close()


class Findings:
    """Every drift found, in a SQLite file: what the report lists and a repair reads."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE drift (target TEXT, kind TEXT, key TEXT, detail TEXT, payload TEXT)"
        )
        self._rows: list[tuple[str, str, str, str, str | None]] = []

    def add(
        self,
        target: str,
        kind: str,
        key: str,
        detail: Mapping[str, Any],
        payload: str | None,
    ) -> None:
        self._rows.append((target, kind, key, json.dumps(detail, default=str), payload))
        if len(self._rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO drift VALUES (?, ?, ?, ?, ?)", self._rows)
            self.db.execute("COMMIT")
            self._rows = []

    def examples(self, target: str, kind: str, limit: int | None) -> list[dict[str, Any]]:
        """The first ``limit`` findings of a kind at a target, in key order (None: all)."""
        self.flush()
        rows = self.db.execute(
            "SELECT detail FROM drift WHERE target = ? AND kind = ? ORDER BY rowid LIMIT ?",
            (target, kind, -1 if limit is None else limit),
        )
        return [json.loads(detail) for (detail,) in rows]

    def to_repair(self, target: str) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
        """(kind, key, source payload or None when the source no longer has it)."""
        self.flush()
        rows = self.db.execute(
            "SELECT kind, key, payload FROM drift WHERE target = ? AND kind != 'duplicates' "
            "ORDER BY rowid",
            (target,),
        )
        for kind, key, payload in rows:
            yield str(kind), str(key), json.loads(payload) if payload is not None else None

    def duplicates(self, target: str) -> Iterator[dict[str, Any]]:
        self.flush()
        rows = self.db.execute(
            "SELECT detail FROM drift WHERE target = ? AND kind = 'duplicates' ORDER BY rowid",
            (target,),
        )
        for (detail,) in rows:
            yield json.loads(detail)

    def every(self) -> Iterator[tuple[str, str, str]]:
        """(target, kind, key) of every finding."""
        self.flush()
        rows = self.db.execute("SELECT target, kind, key FROM drift ORDER BY rowid")
        for target, kind, key in rows:
            yield str(target), str(kind), str(key)

    def close(self) -> None:
        self.db.close()
