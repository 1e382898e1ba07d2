"""Reconcile: compare a flow's source with each of its targets, field by field; repair drift.

The comparison streams. Phase one reads the source (the flow's own stream, as a poll reads
it) and every target (its sink's :meth:`~delivery.sinks.view.ViewableSink.observed`, page
by page, through the target's shared rate limit) at the same time, one thread each, and
spills each into a SQLite file of its own in a temporary directory; phase two walks them
all in key order at once (a sort-merge: SQLite's index gives the order), so memory holds a
page and the current key, never the records. What was found is written to a third file,
from which the report lists its examples (``limit``) and ``--repair`` reads every record.

Per source record and target, the record lands in exactly one of:

* ``in_sync``: the target shows what the sink's mapping says it should (a field the vendor
  documents no way to clear or turn off, :meth:`~delivery.sinks.view.ViewableSink.
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
reason): never drift. :func:`producers.reconcile_repair.repair` sends one forced delivery
per missing, different or orphaned record through the normal pipeline
(:func:`state.publish.publish`: ledger, locks, rate limit, circuit, dead letters); the
force passes the ledger's "already applied" check only. The spills and the findings live in
SQLite files (:mod:`producers.reconcile_files`).
"""

from __future__ import annotations

import json
import pickle
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

from delivery.sinks.view import Observed, View, ViewableSink, normalise
from erpsync.errors import ReadUnsupportedError
from erpsync.events import canonical_json
from erpsync.keys import key_source
from erpsync.redaction import redact
from producers.base import SnapshotStream, UncheckedRecord
from producers.reconcile_files import CHUNK as _CHUNK
from producers.reconcile_files import Findings, Row, Spill
from state.keys import Keys
from state.limits import Circuit
from state.reconciled import keep_last, last
from state.trace import TraceStore

log = structlog.get_logger("erpsync.reconcile")

#: the kinds of drift, in the order they are reported
KINDS = ("missing", "different", "orphaned", "duplicates")
#: what a record can be found to be besides drift
OTHER = ("in_sync", "invalid_source")
#: examples listed per kind and target unless told otherwise
DEFAULT_LIMIT = 100
_PICKLE = pickle.HIGHEST_PROTOCOL

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


def _source_pages(stream: SnapshotStream, sinks: Mapping[str, ViewableSink]) -> Iterator[list[Row]]:
    """The flow's source, a page at a time: (key, None, the canonical payload's text, what
    each target should show of it, pickled).

    Read as a poll reads it (a cursor stream from its beginning), each record as the
    producer would publish it: a fast-path record's canonical text is the payload's. The
    targets' views are worked out here, while the targets are still being read.
    """
    stream.load_bookmark(None)
    entity = stream.entity
    for page in stream.pages():
        rows: list[Row] = []
        for record in page:
            if isinstance(record, UncheckedRecord):
                text = record.content.text
                payload = json.loads(text)
            else:
                text, payload = canonical_json(record.payload), record.payload
            expectation = pickle.dumps(_expectation(entity, payload, sinks), _PICKLE)
            rows.append((record.key, None, text, expectation))
        yield rows


def _observed_pages(sink: ViewableSink, entity: str, source: str) -> Iterator[list[Row]]:
    """A target's records carrying our external id: (key, target id, the view, pickled).

    Only those in the namespace of the flow's source (:func:`erpsync.keys.key_source`): a
    target fed by two flows (the ERP's customers and Propeller's companies) holds the other
    flow's records too, which this flow's source cannot hold and must not call orphaned.
    """
    rows: list[Row] = []
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


def _spill(spill: Spill, pages: Iterable[Sequence[Row]], name: str, progress: Progress) -> None:
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
    groups: Iterator[tuple[str, list[Row]]]
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
        #: a plan's (:mod:`producers.plan`): an inactive record the target lacks is
        #: ``missing``, not in sync, because the first run creates it (archived, inactive)
        self.first_run = False
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
        source = Spill(self.path / "source.sqlite")
        spills = {t: Spill(self.path / f"target-{i}.sqlite") for i, t in enumerate(readable)}
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
        self, source: Spill, spills: Mapping[str, Spill], sinks: Mapping[str, ViewableSink]
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
        source: Iterator[tuple[str, list[Row]]],
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
            elif not observed and self.first_run:
                self._found(walk, "missing", key, {"key": key, "inactive": True}, text)
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
    keep_last(client, keys, report.flow, {**report.as_dict(), "summary": report.summary()})


def store_failure(client: redis.Redis, keys: Keys, flow: str, error: str) -> None:
    """Keep a reconcile that could not run as the flow's last one (with its error)."""
    summary = {"flow": flow, "finished_at": round(time.time(), 3), "error": redact(error)[:500]}
    keep_last(client, keys, flow, {"flow": flow, "summary": summary})


def last_result(client: redis.Redis, keys: Keys, flow: str) -> dict[str, Any] | None:
    """The flow's last reconcile as :func:`store_result` kept it (None: never ran)."""
    return last(client, keys, flow)
