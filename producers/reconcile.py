"""Reconcile: compare a flow's source with each of its targets, field by field; repair drift.

The comparison streams. Phase one reads the source (the flow's own stream, as a poll reads
it) and every target (its sink's :meth:`~workers.sinks.view.ViewableSink.observed`, page
by page, through the target's shared rate limit) at the same time, one thread each, and
spills each into a SQLite file of its own in a temporary directory; phase two walks them
all in key order at once (a sort-merge: SQLite's index gives the order), so memory holds a
page and the current key, never the records. What was found is written to a third file,
from which the report lists its examples (``limit``) and ``--repair`` reads every record.

Per source record and target, the record lands in exactly one of:

* ``in_sync``: the target shows what the sink's mapping says it should (a field the vendor
  documents no way to clear or turn off, :meth:`~workers.sinks.view.ViewableSink.
  known_limits`, is not compared when the source's value is exactly that: see
  :func:`differences`; the limits are listed once as ``known_limits``); an inactive record
  the target lacks, or shows inactive, is in sync too (its other fields are not compared: a
  deactivation need not rewrite them). A target that cannot show a deactivation at all
  (``active`` among its known limits) is compared on every record as if it were active,
  and has no orphans;
* ``missing``: active in the source, absent from the target;
* ``different``: per field, the source's (expected) and the target's values;
* ``orphaned``: inactive in the source while the target shows it active;
* ``duplicates``: several target records carry its key (never compared, never repaired);
* ``invalid_source``: the source record cannot be mapped at all (the workers dead-letter
  it as invalid source data; it is counted, not drift).

Target records whose key the source does not hold at all are ``orphaned`` when the target
shows them active (and ``duplicates`` when there are several); they are not ``checked``,
which counts source records.

A target whose circuit is not closed, or whose read fails, is *not checked* (with the
reason): never drift. :func:`repair` sends one forced delivery per missing, different or
orphaned record through the normal pipeline (:func:`workers.publish.publish`: ledger,
locks, rate limit, circuit, dead letters); the force passes the ledger's "already applied"
check only.
"""

from __future__ import annotations

import itertools
import json
import pickle
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from erpsync.errors import ReadUnsupportedError
from erpsync.events import ChangeEvent, Content, Delivery, canonical_json
from erpsync.keys import Keys, key_source
from erpsync.redaction import redact
from producers.base import Producer, SnapshotStream, UncheckedRecord
from workers.dlq import DeadLetterStore, entry_id_for
from workers.limits import Circuit
from workers.publish import publish
from workers.sinks.view import Observed, View, ViewableSink, normalise
from workers.trace import TraceStore, sent_event

log = structlog.get_logger("erpsync.reconcile")

#: the kinds of drift, in the order they are reported
KINDS = ("missing", "different", "orphaned", "duplicates")
#: what a record can be found to be besides drift
OTHER = ("in_sync", "invalid_source")
#: examples listed per kind and target unless told otherwise
DEFAULT_LIMIT = 100
#: rows written to SQLite per statement
_CHUNK = 1000
_PICKLE = pickle.HIGHEST_PROTOCOL
#: each spill's SQLite page cache, KiB (the default is 2,000)
_CACHE_KIB = 512

#: called as (what, name, count): ("read", "propeller", 1200) as records are read,
#: ("compared", flow, 5000) as source records are compared
Progress = Callable[[str, str, int], None]


def _no_progress(what: str, name: str, count: int) -> None:
    """No progress shown."""


class ReconcileError(Exception):
    """The reconcile could not run (unknown flow, no reconcilable target, source failed)."""


def duplicate_hint(target: str, key: str, target_ids: Sequence[str]) -> str:
    """What an operator does about several target records carrying one key."""
    return (
        f"{target} holds {len(target_ids)} records with external id {key} "
        f"({', '.join(target_ids)}): merge them, or archive all but one in {target}; "
        "erpsync never deletes them"
    )


# -- spilling a stream to disk -------------------------------------------------------------


#: one row of a spilled stream: (key, the target's id or None, body, extra)
_Row = tuple[str, str | None, Any, Any]


class _Spill:
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

    def add(self, rows: Sequence[_Row]) -> None:
        if not rows:
            return
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?)", rows)
        self.db.execute("COMMIT")
        self.count += len(rows)

    def groups(self) -> Iterator[tuple[str, list[_Row]]]:
        """``(key, [row, …])`` in key order (several rows for a duplicated key)."""
        cursor = self.db.execute("SELECT key, ref, body, extra FROM rows ORDER BY key, ref")
        for key, rows in itertools.groupby(cursor, key=lambda row: str(row[0])):
            yield key, list(rows)

    def close(self) -> None:
        self.db.close()


#: what the source's reader works out for each record: (active, per target the view the
#: sink expects, None where the record cannot be mapped)
Expectation = tuple[bool, dict[str, View | None]]


def _expectation(
    entity: str, payload: Mapping[str, Any], sinks: Mapping[str, ViewableSink]
) -> Expectation:
    expected: dict[str, View | None] = {}
    for target, sink in sinks.items():
        try:
            expected[target] = sink.expected(entity, payload)
        except ValidationError:
            expected[target] = None
    return payload.get("active", True) is not False, expected


def _source_pages(
    stream: SnapshotStream, sinks: Mapping[str, ViewableSink]
) -> Iterator[list[_Row]]:
    """The flow's source, a page at a time: (key, None, the canonical payload's text, what
    each target should show of it, pickled).

    Read as a poll reads it (a cursor stream from its beginning), each record as the
    producer would publish it: a fast-path record's canonical text is the payload's. The
    targets' views are worked out here, while the targets are still being read.
    """
    stream.load_bookmark(None)
    entity = stream.entity
    for page in stream.pages():
        rows: list[_Row] = []
        for record in page:
            if isinstance(record, UncheckedRecord):
                text = record.content.text
                payload = json.loads(text)
            else:
                text, payload = canonical_json(record.payload), record.payload
            expectation = pickle.dumps(_expectation(entity, payload, sinks), _PICKLE)
            rows.append((record.key, None, text, expectation))
        yield rows


def _observed_pages(sink: ViewableSink, entity: str, source: str) -> Iterator[list[_Row]]:
    """A target's records carrying our external id: (key, target id, the view, pickled).

    Only those in the namespace of the flow's source (:func:`erpsync.keys.key_source`): a
    target fed by two flows (the ERP's customers and Propeller's companies) holds the other
    flow's records too, which this flow's source cannot hold and must not call orphaned.
    """
    rows: list[_Row] = []
    for observed in sink.observed(entity):
        if key_source(entity, observed.key) != source:
            continue
        # pickled: read back by this process alone, several times cheaper than JSON
        body = pickle.dumps(observed.fields, _PICKLE)
        rows.append((observed.key, observed.target_id, body, None))
        if len(rows) >= _CHUNK:
            yield rows
            rows = []
    yield rows


def _spill(spill: _Spill, pages: Iterable[Sequence[_Row]], name: str, progress: Progress) -> None:
    for rows in pages:
        spill.add(rows)
        progress("read", name, spill.count)


# -- comparing ------------------------------------------------------------------------------


def _shows_active(observed: Observed) -> bool:
    """A target record counts as active unless its view says ``active`` is False."""
    return observed.fields.get("active") is not False


def differences(
    expected: Mapping[str, Any], observed: Mapping[str, Any], limits: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per field that differs: ``{"source": expected value, "target": observed value}``.

    Every field of ``expected`` is compared, normalised on both sides (a field the target
    does not show is None), but where a known limit (``limits``) stands in the way: a field
    the vendor documents no way to clear is not compared when the source has no value, nor
    the lifecycle (``active``) of a target that cannot show it one way or the other
    (Atollon: by default no deactivation is sent; with its Inactive group, a reactivation
    cannot take a contact out). A value the target can be written with (a parent it can be
    moved to) is compared.
    """
    skip = set(limits)
    found: dict[str, dict[str, Any]] = {}
    for name, value in expected.items():
        have = observed.get(name)
        if value == have and type(value) is type(have):
            continue  # both sides come normalised: the common case needs no more
        want, have = normalise(value), normalise(have)
        if name in skip and (want is None or want is False or name == "active"):
            continue
        if want != have:
            found[name] = {"source": want, "target": have}
    return found


@dataclass
class TargetReport:
    """What reconcile found at one target."""

    target: str
    known_limits: list[str] = field(default_factory=list)
    checked: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*KINDS, *OTHER), 0))
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    #: why the target was not checked (circuit open, read failed); None when it was
    not_checked: str | None = None

    @property
    def drift(self) -> int:
        return sum(self.counts[kind] for kind in KINDS)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``erpsync reconcile --json`` for one target."""
        out: dict[str, Any] = {
            "checked": self.checked,
            "in_sync": self.counts["in_sync"],
            **{kind: list(self.examples[kind]) for kind in KINDS},
            "known_limits": list(self.known_limits),
            "counts": dict(self.counts),
        }
        if self.not_checked is not None:
            out["not_checked"] = self.not_checked
        return out

    def summary(self) -> dict[str, Any]:
        """Counts only (what the periodic reconcile keeps, status and metrics show)."""
        out: dict[str, Any] = {"checked": self.checked, **self.counts}
        if self.not_checked is not None:
            out["not_checked"] = self.not_checked
        return out


@dataclass
class Report:
    """A reconcile of one flow: per target, what was found."""

    flow: str
    entity: str
    targets: dict[str, TargetReport]
    started_at: float
    duration_s: float = 0.0
    source_records: int = 0
    limit: int | None = DEFAULT_LIMIT
    #: seconds spent reading (and spilling) everything, then merging and comparing
    read_s: float = 0.0
    compare_s: float = 0.0

    @property
    def drift(self) -> int:
        return sum(t.drift for t in self.targets.values())

    @property
    def unchecked(self) -> list[str]:
        return [name for name, t in self.targets.items() if t.not_checked is not None]

    def as_dict(self) -> dict[str, Any]:
        """``{"flow": …, "targets": {target: …}}`` and when it ran."""
        return {
            "flow": self.flow,
            "targets": {name: t.as_dict() for name, t in self.targets.items()},
            "entity": self.entity,
            "source_records": self.source_records,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "duration_s": round(self.duration_s, 3),
            "timings_s": {"read": round(self.read_s, 3), "compare": round(self.compare_s, 3)},
            "limit": self.limit,
        }

    def summary(self) -> dict[str, Any]:
        """Counts per target, and when (kept in Redis by :func:`store_result`)."""
        return {
            "flow": self.flow,
            "finished_at": round(self.started_at + self.duration_s, 3),
            "duration_s": round(self.duration_s, 3),
            "source_records": self.source_records,
            "targets": {name: t.summary() for name, t in self.targets.items()},
        }


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
        if len(self._rows) >= _CHUNK:
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


def trace_findings(reconciliation: Reconciliation, trace: TraceStore | None) -> int:
    """A ``reconcile`` event in the trace of each record a reconcile found drifting."""
    if trace is None or not trace.enabled:
        return 0
    flow, now = reconciliation.flow, time.time()
    written = 0
    items: list[tuple[str, str, dict[str, Any]]] = []
    for target, kind, key in reconciliation.findings.every():
        items.append((flow, key, {"at": now, "what": "reconcile", "target": target, "kind": kind}))
        if len(items) >= _CHUNK:
            trace.write(items)
            written, items = written + len(items), []
    trace.write(items)
    return written + len(items)


@dataclass
class _Walk:
    """One target during the merge: its sink, its groups in key order, its report."""

    sink: ViewableSink
    report: TargetReport
    groups: Iterator[tuple[str, list[_Row]]]
    limits: frozenset[str]
    head: tuple[str, list[Observed]] | None = None

    def advance(self) -> None:
        found = next(self.groups, None)
        if found is None:
            self.head = None
            return
        key, rows = found
        # our own spill file, written by this process moments ago
        views = [Observed(key, ref or "", pickle.loads(body)) for _, ref, body, _ in rows]  # noqa: S301
        self.head = (key, views)


class Reconciliation:
    """One reconcile of a flow: :meth:`run` it, read its :attr:`report`, maybe repair it.

    A context manager: its temporary files go when it closes.
    """

    def __init__(
        self,
        flow: str,
        stream: SnapshotStream,
        sinks: Mapping[str, ViewableSink],
        *,
        circuit: Circuit | None = None,
        limit: int | None = DEFAULT_LIMIT,
        progress: Progress = _no_progress,
        not_checked: Mapping[str, str] | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.flow = flow
        self.stream = stream
        self.sinks = dict(sinks)
        self.circuit = circuit
        self.limit = limit
        self.progress = progress
        self._directory = tempfile.TemporaryDirectory(prefix="erpsync-reconcile-", dir=workdir)
        self.path = Path(self._directory.name)
        self.findings = Findings(self.path / "findings.sqlite")
        self.report = Report(
            flow=flow,
            entity=stream.entity,
            targets={},
            started_at=time.time(),
            limit=limit,
        )
        for target, reason in (not_checked or {}).items():
            self.report.targets[target] = TargetReport(target, not_checked=reason)

    def __enter__(self) -> Reconciliation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.findings.close()
        self._directory.cleanup()

    # -- phase one: read everything -------------------------------------------------------
    def _closed_circuit(self, target: str) -> str | None:
        """Why the target must not be read now (its circuit), or None."""
        if self.circuit is None:
            return None
        status = self.circuit.status(target)
        if status.state == "closed":
            return None
        reason = f": {status.reason}" if status.reason else ""
        return redact(f"circuit {status.state}{reason}")

    def run(self) -> Report:
        """Read the source and every target, compare, and return the report."""
        started = time.perf_counter()
        entity = self.stream.entity
        readable: dict[str, ViewableSink] = {}
        for target, sink in self.sinks.items():
            report = TargetReport(target, known_limits=sorted(sink.known_limits(entity)))
            self.report.targets[target] = report
            report.not_checked = self._closed_circuit(target)
            if report.not_checked is None:
                readable[target] = sink
            else:
                log.warning("reconcile.not_checked", flow=self.flow, target=target,
                            reason=report.not_checked)  # fmt: skip
        source = _Spill(self.path / "source.sqlite")
        spills = {t: _Spill(self.path / f"target-{i}.sqlite") for i, t in enumerate(readable)}
        try:
            self._read(source, spills, readable)
            self.report.read_s = time.perf_counter() - started
            self.report.source_records = source.count
            walks = [
                _Walk(
                    sink,
                    self.report.targets[target],
                    spills[target].groups(),
                    frozenset(self.report.targets[target].known_limits),
                )
                for target, sink in readable.items()
                if self.report.targets[target].not_checked is None
            ]
            self._merge(source.groups(), walks)
        finally:
            source.close()
            for spill in spills.values():
                spill.close()
        self.findings.flush()
        for target, report in self.report.targets.items():
            if report.not_checked is None:
                for kind in KINDS:
                    report.examples[kind] = self.findings.examples(target, kind, self.limit)
        self.report.duration_s = time.perf_counter() - started
        self.report.compare_s = self.report.duration_s - self.report.read_s
        log.info(
            "reconcile.finished",
            flow=self.flow,
            duration_s=round(self.report.duration_s, 3),
            source_records=self.report.source_records,
            targets={t: r.summary() for t, r in self.report.targets.items()},
        )
        return self.report

    def _read(
        self, source: _Spill, spills: Mapping[str, _Spill], sinks: Mapping[str, ViewableSink]
    ) -> None:
        """Spill the source and every target at once, one thread each."""
        entity = self.stream.entity
        lock = threading.Lock()

        def progress(what: str, name: str, count: int) -> None:
            with lock:
                self.progress(what, name, count)

        threads = 1 + len(spills)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reconcile") as pool:
            reading = {
                target: pool.submit(
                    _spill, spills[target],
                    _observed_pages(sinks[target], entity, self.stream.source), target,
                    progress,
                )
                for target in spills
            }  # fmt: skip
            source_read = pool.submit(
                _spill, source, _source_pages(self.stream, sinks), self.stream.name, progress
            )
            for target, future in reading.items():
                error = future.exception()
                if isinstance(error, ReadUnsupportedError):
                    # a documented gap (Atollon's crawler has no read of contacts), not a fault
                    reason = redact(f"{target} cannot be read: known limit ({error})")[:500]
                elif error is not None:
                    reason = redact(f"read failed: {type(error).__name__}: {error}")[:500]
                if error is not None:
                    self.report.targets[target].not_checked = reason
                    log.warning("reconcile.not_checked", flow=self.flow, target=target,
                                reason=reason)  # fmt: skip
            failed = source_read.exception()
            if failed is not None:
                raise ReconcileError(
                    redact(f"reading {self.stream.name} failed: {failed}")[:500]
                ) from failed

    # -- phase two: merge in key order --------------------------------------------------------
    def _merge(
        self,
        source: Iterator[tuple[str, list[_Row]]],
        walks: list[_Walk],
    ) -> None:
        for walk in walks:
            walk.advance()
        compared = 0
        for key, rows in source:
            _, _, text, pickled = rows[-1]  # a key the source lists twice: the later one wins
            active, expected = pickle.loads(pickled)  # noqa: S301 (our own spill file)
            for walk in walks:
                while walk.head is not None and walk.head[0] < key:
                    self._absent_from_source(walk, *walk.head)
                    walk.advance()
                observed: list[Observed] = []
                if walk.head is not None and walk.head[0] == key:
                    observed = walk.head[1]
                    walk.advance()
                self._compare(walk, key, active, expected[walk.report.target], text, observed)
            compared += 1
            if compared % _CHUNK == 0:
                self.progress("compared", self.flow, compared)
        for walk in walks:
            while walk.head is not None:
                self._absent_from_source(walk, *walk.head)
                walk.advance()
        self.progress("compared", self.flow, compared)

    def _found(
        self,
        walk: _Walk,
        kind: str,
        key: str,
        detail: Mapping[str, Any],
        payload: str | None,
    ) -> None:
        report = walk.report
        report.counts[kind] += 1
        self.findings.add(report.target, kind, key, detail, payload)
        log.info("reconcile.drift", flow=self.flow, target=report.target, kind=kind, key=key)

    def _compare(
        self,
        walk: _Walk,
        key: str,
        active: bool,
        expected: View | None,
        text: str,
        observed: list[Observed],
    ) -> None:
        report = walk.report
        report.checked += 1
        if len(observed) > 1:
            ids = [o.target_id for o in observed]
            self._found(walk, "duplicates", key, {"key": key, "target_ids": ids}, None)
            return
        # A target that cannot show a deactivation (``active`` a known limit) keeps an
        # inactive record as it was: it is compared as an active one, never orphaned.
        if not active and "active" not in walk.limits:
            if observed and _shows_active(observed[0]):
                detail = {"key": key, "target_id": observed[0].target_id, "source": "inactive"}
                self._found(walk, "orphaned", key, detail, text)
            else:
                report.counts["in_sync"] += 1
            return
        if not observed:
            self._found(walk, "missing", key, {"key": key}, text)
            return
        if expected is None:
            report.counts["invalid_source"] += 1
            return
        fields = differences(expected, observed[0].fields, walk.limits)
        if fields:
            self._found(walk, "different", key, {"key": key, "fields": fields}, text)
        else:
            report.counts["in_sync"] += 1

    def _absent_from_source(self, walk: _Walk, key: str, observed: list[Observed]) -> None:
        """Target records whose key the source does not hold."""
        if len(observed) > 1:
            ids = [o.target_id for o in observed]
            self._found(walk, "duplicates", key, {"key": key, "target_ids": ids}, None)
        elif "active" not in walk.limits and _shows_active(observed[0]):
            detail = {"key": key, "target_id": observed[0].target_id, "source": "absent"}
            self._found(walk, "orphaned", key, detail, None)


# -- the last result, for status and metrics -------------------------------------------------


def store_result(client: redis.Redis, keys: Keys, report: Report) -> None:
    """Keep the report (examples bounded as it was run) as the flow's last reconcile."""
    stored = {**report.as_dict(), "summary": report.summary()}
    client.set(keys.reconcile_last(report.flow), json.dumps(stored, default=str))


def store_failure(client: redis.Redis, keys: Keys, flow: str, error: str) -> None:
    """Keep a reconcile that could not run as the flow's last one (with its error)."""
    summary = {"flow": flow, "finished_at": round(time.time(), 3), "error": redact(error)[:500]}
    client.set(keys.reconcile_last(flow), json.dumps({"flow": flow, "summary": summary}))


def last_result(client: redis.Redis, keys: Keys, flow: str) -> dict[str, Any] | None:
    """The flow's last reconcile as :func:`store_result` kept it (None: never ran)."""
    raw = client.get(keys.reconcile_last(flow))
    if raw is None:
        return None
    try:
        found: dict[str, Any] = json.loads(raw)
    except ValueError:
        return None
    return found


# -- repair -----------------------------------------------------------------------------------


@dataclass
class RepairReport:
    """What ``--repair`` sent per target, and what became of it."""

    sent: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: per target: deliveries that were dead-lettered, with their code and hint
    dead_lettered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per target: what repair leaves to an operator (duplicates), with a hint
    not_repaired: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per target: deliveries without an outcome when the wait ended
    waiting: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            target: {
                "sent": self.sent.get(target, 0),
                "outcomes": self.outcomes.get(target, {}),
                "waiting": self.waiting.get(target, 0),
                "dead_lettered": self.dead_lettered.get(target, []),
                "not_repaired": self.not_repaired.get(target, []),
            }
            for target in sorted(set(self.sent) | set(self.not_repaired) | set(self.dead_lettered))
        }


@dataclass
class _Sent:
    target: str
    key: str
    delivery_id: str


def repair(
    reconciliation: Reconciliation,
    producer: Producer,
    *,
    actor: str,
    limit: int | None = DEFAULT_LIMIT,
) -> tuple[RepairReport, list[_Sent]]:
    """Send one forced delivery per missing, different or orphaned record, and audit it.

    Each delivery is a new change of its record (a new source version, so never stale),
    published as the producer publishes (counted, pending, on the target's queue); the
    workers apply it like any other change, but past the ledger's "already applied"
    check. Duplicates are listed with an operator hint, never touched.
    """
    report = reconciliation.report
    stream = reconciliation.stream
    findings = reconciliation.findings
    out = RepairReport()
    sent: list[_Sent] = []
    for target, target_report in report.targets.items():
        if target_report.not_checked is not None:
            continue
        hints = [
            {**dup, "hint": duplicate_hint(target, dup["key"], dup["target_ids"])}
            for dup in itertools.islice(findings.duplicates(target), limit)
        ]
        if hints:
            out.not_repaired[target] = hints
        chunk: list[tuple[str, dict[str, Any] | None]] = []
        for _kind, key, payload in findings.to_repair(target):
            chunk.append((key, payload))
            if len(chunk) >= _CHUNK:
                sent += _send(producer, stream, report.flow, target, chunk)
                chunk = []
        sent += _send(producer, stream, report.flow, target, chunk)
        out.sent[target] = sum(1 for s in sent if s.target == target)
    DeadLetterStore(producer.redis, producer.keys).audit(
        actor,
        "reconcile_repair",
        sum(out.sent.values()),
        {
            "flow": report.flow,
            "sent": out.sent,
            "found": {t: {k: r.counts[k] for k in KINDS} for t, r in report.targets.items()},
            "not_checked": {t: r.not_checked for t, r in report.targets.items() if r.not_checked},
        },
    )
    log.info("reconcile.repair_sent", flow=report.flow, sent=out.sent, actor=actor)
    return out, sent


def _send(
    producer: Producer,
    stream: SnapshotStream,
    flow: str,
    target: str,
    chunk: list[tuple[str, dict[str, Any] | None]],
) -> list[_Sent]:
    if not chunk:
        return []
    first = producer.state.next_versions(stream.source, stream.entity, len(chunk))
    deliveries: list[Delivery] = []
    for offset, (key, payload) in enumerate(chunk):
        if payload is None:  # gone from the source: the producer's deletion
            body: dict[str, Any] = {"key": key, "active": False}
            content = Content.of("delete", body)
        else:
            body = payload
            content = Content.of("upsert", body)
        parent = body.get("parent_key")
        event = ChangeEvent.create(
            flow=flow,
            source=stream.source,
            entity=stream.entity,
            key=key,
            operation=content.operation,
            payload=body,
            source_version=first + offset,
            parent_key=parent if isinstance(parent, str) else None,
            content=content,
        )
        deliveries.append(Delivery(event=event, target=target, force=True))
    now = time.time()  # before publishing: a worker may apply at once
    publish(producer.app, deliveries, state=producer.state)
    if producer.trace is not None:
        producer.trace.write(
            (flow, d.event.key, {**sent_event(d, now, bulk=False), "reason": "repair"})
            for d in deliveries
        )
    producer.state.set_latest(
        stream.source, stream.entity, {d.event.key: d.event.source_version for d in deliveries}
    )
    return [_Sent(target, d.event.key, d.delivery_id) for d in deliveries]


def wait_repairs(
    producer: Producer,
    out: RepairReport,
    sent: list[_Sent],
    *,
    timeout_s: float,
    limit: int | None = DEFAULT_LIMIT,
    poll_s: float = 0.5,
) -> RepairReport:
    """Follow the repair's deliveries to their outcomes (or ``timeout_s``); fill ``out``."""
    keys, client = producer.keys, producer.redis
    waiting = list(sent)
    outcomes: dict[str, dict[str, int]] = {}
    dead: list[_Sent] = []
    deadline = time.monotonic() + timeout_s
    while waiting:
        still: list[_Sent] = []
        for start in range(0, len(waiting), _CHUNK):
            part = waiting[start : start + _CHUNK]
            values = client.mget([keys.delivery_outcome(s.target, s.delivery_id) for s in part])
            for item, value in zip(part, values, strict=True):
                if value is None:
                    still.append(item)
                    continue
                per = outcomes.setdefault(item.target, {})
                per[str(value)] = per.get(str(value), 0) + 1
                if value == "dead_lettered":
                    dead.append(item)
        waiting = still
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    out.outcomes = outcomes
    out.waiting = {}
    for item in waiting:
        out.waiting[item.target] = out.waiting.get(item.target, 0) + 1
    store = DeadLetterStore(client, keys)
    out.dead_lettered = {}
    for item in dead:
        listed = out.dead_lettered.setdefault(item.target, [])
        if limit is not None and len(listed) >= limit:
            continue
        entry = store.get(entry_id_for(item.target, item.delivery_id))
        listed.append(
            {
                "key": item.key,
                "dlq_id": entry.id if entry else None,
                "code": entry.code if entry else None,
                "hint": entry.hint if entry else None,
            }
        )
    return out
