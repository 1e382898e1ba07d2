"""Change streams: one per (system, entity), declarative; one base owns the loop.

A stream only says how to read its source (:meth:`SnapshotStream.pages`); the base owns the
rest: the per-stream lock (two producers never poll one stream at once), change detection
against the snapshot, batching, publishing one delivery per (event, target), advancing the
bookmark only after the events are on their queues, and the stream's state for
``erpsync status``.

Snapshot streams fingerprint every record of a full paged scan and compare with the last
fingerprints enqueued, which finds changes where the API has no modified-since filter, and
deletions (keys that vanished). Cursor streams read only what changed since their bookmark
(minus a lookback window, because records with equal timestamps straddle pages and clocks
drift); the same fingerprints drop what the lookback reads again, and the bookmark moves
only after the events are enqueued. No change, no event.

A large poll goes to bulk-capable targets in batches (:mod:`delivery.batch`): the upserts
for Propeller and HIPE become ``sync.apply_batch`` messages, parents before children.
:meth:`Producer.backfill` re-sends every record of a stream, ignoring the snapshot (an
initial load, or after a mapping change); the workers' ledger still skips what a target
already has, unless ``force`` makes it forget the fingerprints first.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis
import structlog
from celery import Celery

from delivery.batch import BulkRoute, split_for_bulk
from erpsync.events import ChangeEvent, Content, Delivery, canonical_json
from state.keys import Keys
from state.leases import Leases
from state.publish import publish, publish_batches
from state.records import Records
from state.snapshots import Snapshots
from state.store import State
from state.trace import TraceStore, detected_event, sent_event

log = structlog.get_logger("erpsync.producer")


@dataclass(frozen=True)
class SourceRecord:
    """One record read from a source, already mapped to the canonical shape (a dict)."""

    key: str
    payload: dict[str, Any]
    parent_key: str | None = None


@dataclass(frozen=True, slots=True)
class UncheckedRecord:
    """A record read without the source model: its key, its content, and the raw record.

    A stream's fast path for the many records a scan finds unchanged: ``content`` is what
    the stream's validated mapping gives (:meth:`~erpsync.events.Content.of` its payload),
    assembled straight from the raw record. One found changed is validated and mapped by
    :meth:`SnapshotStream.confirm` before anything is published.
    """

    key: str
    content: Content
    raw: Any = field(repr=False)


#: what a stream's pages hold
Record = SourceRecord | UncheckedRecord


@dataclass
class PollResult:
    """What one poll of one stream found and did."""

    stream: str
    records: int = 0
    changed: int = 0
    deleted: int = 0
    events: int = 0
    deliveries: int = 0
    duration_s: float = 0.0
    skipped: str | None = None
    #: bulk messages sent (each carries many deliveries of one target)
    batches: int = 0
    #: deliveries per target
    targets: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "records": self.records,
            "changed": self.changed,
            "deleted": self.deleted,
            "events": self.events,
            "deliveries": self.deliveries,
            "batches": self.batches,
            "targets": dict(self.targets),
            "duration_s": round(self.duration_s, 3),
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class _Mode:
    """How a scan treats the snapshot: a poll, or a backfill."""

    backfill: bool = False
    force: bool = False
    update_snapshot: bool = True
    on_progress: Callable[[PollResult], None] | None = None


@dataclass
class SnapshotStream(ABC):
    """A source entity read by full paged scans and compared by fingerprint."""

    flow: str
    source: str
    entity: str
    targets: list[str]

    @property
    def name(self) -> str:
        return f"{self.source}.{self.entity}"

    #: a full scan sees every record, so keys that vanished were deleted
    detects_deletions: ClassVar[bool] = True

    @abstractmethod
    def pages(self) -> Iterator[Sequence[Record]]:
        """Every record of the source, a page at a time."""

    def confirm(self, records: list[UncheckedRecord]) -> list[SourceRecord]:
        """Unchecked records found changed, validated and mapped as the stream maps records.

        One result per record, in order, as a stream without a fast path would have
        yielded it (an invalid one mapped as it is, for the targets to dead-letter). Only a
        stream whose pages hold UncheckedRecords needs it.
        """
        raise TypeError(f"{type(self).__name__} yields unchecked records but cannot confirm them")

    def load_bookmark(self, bookmark: str | None) -> None:  # noqa: B027 (optional hook)
        """Cursor streams: where the last poll stopped (None on the first poll)."""

    def bookmark(self) -> str | None:
        """Cursor streams: where this poll stopped (saved once its events are enqueued)."""
        return None


@dataclass
class CursorStream(SnapshotStream):
    """A source entity read by a modified-date cursor, with a lookback window."""

    detects_deletions: ClassVar[bool] = False
    lookback_s: float = field(default=300.0, kw_only=True)


_DONE = object()


def _prefetched(pages: Iterator[Sequence[Record]], depth: int = 2) -> Iterator[Sequence[Record]]:
    """``pages``, read ahead by a thread: the next page is fetched while this one is compared.

    The source's answer time (an ERP robot, a remote API) then overlaps the fingerprinting
    and the Redis round trips instead of adding to them. A failure of the source is raised
    here, in the caller's thread; a caller that stops early stops the reader after the page
    it is reading.
    """
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        try:
            for page in pages:
                if not offer(page):
                    return
            offer(_DONE)
        except BaseException as exc:  # noqa: BLE001 (raised again in the caller's thread)
            offer(exc)
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                close()

    threading.Thread(target=read, name="producer-prefetch", daemon=True).start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


@dataclass
class _Change:
    record: SourceRecord
    content: Content


@dataclass
class Producer:
    """Polls streams and publishes their changes."""

    app: Celery
    redis: redis.Redis
    keys: Keys
    batch_size: int = 1000
    #: the stream lock's lease: renewed while a poll runs, so a producer killed mid-poll
    #: leaves the stream to another (or to itself, restarted) within its poll interval + this
    lock_ttl_s: float = 15.0
    #: bulk-capable targets (see :func:`delivery.batch.bulk_routes`); none: all single
    bulk: Mapping[str, BulkRoute] = field(default_factory=dict)
    #: records' traces (state.trace): each change detected and each delivery sent
    trace: TraceStore | None = None
    state: State = field(init=False)
    snapshots: Snapshots = field(init=False)
    records: Records = field(init=False)

    def __post_init__(self) -> None:
        self.state = State(self.redis, self.keys)
        self.leases = Leases(self.state, ttl_s=self.lock_ttl_s)
        self.snapshots = Snapshots(self.state)
        self.records = Records(self.state)

    def poll(self, stream: SnapshotStream) -> PollResult:
        """One full poll of ``stream``; returns what it found and published."""
        return self._run(stream, _Mode())

    def backfill(
        self,
        stream: SnapshotStream,
        *,
        force: bool = False,
        update_snapshot: bool = True,
        on_progress: Callable[[PollResult], None] | None = None,
    ) -> PollResult:
        """Re-send every record of ``stream`` (to ``stream.targets``), changed or not.

        The workers' ledger skips a record a target already has with this fingerprint;
        ``force`` forgets those fingerprints first (keeping the targets' ids), so every
        record is written again. With ``update_snapshot`` (every target of the flow), the
        snapshot and cursor move as for a poll, so the next poll emits nothing; without it
        (a backfill of some targets only) they stay, so the next poll still brings the
        other targets what changed. Deletions found are sent as a poll sends them.
        """
        mode = _Mode(
            backfill=True, force=force, update_snapshot=update_snapshot, on_progress=on_progress
        )
        return self._run(stream, mode)

    def _run(self, stream: SnapshotStream, mode: _Mode) -> PollResult:
        result = PollResult(stream=stream.name)
        lock_key = self.keys.stream_lock(stream.source, stream.entity)
        token = self.state.acquire(lock_key, self.lock_ttl_s)
        if token is None:
            result.skipped = "another producer is polling this stream"
            log.info("producer.poll_skipped", stream=stream.name, reason=result.skipped)
            return result
        started = time.perf_counter()
        source, entity = stream.source, stream.entity
        self.snapshots.note(
            source, entity, {"last_poll_started": f"{time.time():.3f}", "flow": stream.flow}
        )
        try:
            with self.leases.holding({lock_key: token}):
                self._scan(stream, result, lock_key, token, mode)
        except Exception as exc:
            self.snapshots.note(
                source,
                entity,
                {"last_error": str(exc)[:500], "last_error_at": f"{time.time():.3f}"},
            )
            raise
        finally:
            self.state.release(lock_key, token)
        result.duration_s = time.perf_counter() - started
        self.snapshots.note(
            source,
            entity,
            {
                "last_poll_finished": f"{time.time():.3f}",
                "last_records": str(result.records),
                "last_changed": str(result.changed),
                "last_deleted": str(result.deleted),
                "last_duration_s": f"{result.duration_s:.3f}",
                "last_error": "",
            },
        )
        log.info("producer.poll_finished", **result.as_dict())
        return result

    def _scan(
        self, stream: SnapshotStream, result: PollResult, lock_key: str, token: str, mode: _Mode
    ) -> None:
        snapshots, source, entity = self.snapshots, stream.source, stream.entity
        # A backfill reads a cursor stream from its beginning.
        stream.load_bookmark(None if mode.backfill else snapshots.cursor(source, entity))
        seen: set[str] = set()
        pending: list[_Change] = []
        # Snapshot entries before the scan, and how many of them the scan has seen: when
        # the two are equal nothing was deleted, and the snapshot need not be read whole.
        before_scan = snapshots.size(source, entity)
        known = 0
        for page in _prefetched(stream.pages()):
            if not page:
                continue
            # Each record normalised and fingerprinted once; a changed one's event reuses it.
            keys = [r.key for r in page]
            contents = [
                r.content if isinstance(r, UncheckedRecord) else Content.of("upsert", r.payload)
                for r in page
            ]
            if mode.backfill:
                snapshots.extend_lock(lock_key, self.lock_ttl_s)
                changed: list[int] = list(range(len(page)))
                missing: set[int] = set(changed)
            else:
                changed, missing = self._compare_page(stream, lock_key, keys, contents)
            records, differing = self._checked(stream, page, keys, contents, changed)
            if differing and not mode.backfill:
                changed, missing = self._compare_again(
                    stream, lock_key, keys, contents, changed, missing, differing
                )
            for index, key in enumerate(keys):
                if key not in seen:
                    seen.add(key)
                    # A key first met in this scan is in the snapshot only if it was
                    # before the scan (flushes add only keys already seen).
                    known += index not in missing
            pending.extend(_Change(records[i], contents[i]) for i in changed)
            result.records += len(page)
            if len(pending) >= self.batch_size:
                self._flush(stream, pending, result, mode)
                pending = []
            if mode.on_progress is not None:
                mode.on_progress(result)
        if stream.detects_deletions and (mode.backfill or known < before_scan):
            pending.extend(self._deletions(stream, seen))
        self._flush(stream, pending, result, mode)
        if mode.on_progress is not None:
            mode.on_progress(result)
        bookmark = stream.bookmark()
        if bookmark is not None and mode.update_snapshot:
            snapshots.set_cursor(source, entity, bookmark)

    def _compare_again(
        self,
        stream: SnapshotStream,
        lock_key: str,
        keys: list[str],
        contents: list[Content],
        changed: list[int],
        missing: set[int],
        differing: list[int],
    ) -> tuple[list[int], set[int]]:
        """``changed`` and ``missing`` once ``differing`` are compared again as what they are.

        :meth:`_checked` found that the fast path erred on these positions: ``keys`` and
        ``contents`` now hold what the records really are.
        """
        again, vanished = self._compare_page(
            stream,
            lock_key,
            [keys[i] for i in differing],
            [contents[i] for i in differing],
        )
        still = {differing[i] for i in again}
        changed = [i for i in changed if i in still or i not in differing]
        missing = (missing - set(differing)) | {differing[i] for i in vanished}
        return changed, missing

    def _deletions(self, stream: SnapshotStream, seen: set[str]) -> list[_Change]:
        """A delete for every snapshot key the scan did not meet."""
        known = self.snapshots.known_keys(stream.source, stream.entity)
        deleted = [key for key in known if key not in seen]
        changes: list[_Change] = []
        for key in deleted:
            payload = {"key": key, "active": False}
            changes.append(_Change(SourceRecord(key, payload), Content.of("delete", payload)))
        return changes

    def _compare_page(
        self, stream: SnapshotStream, lock_key: str, keys: list[str], contents: list[Content]
    ) -> tuple[list[int], set[int]]:
        """Positions whose fingerprint differs from the snapshot's, and those it lacks.

        One round trip, which also extends the stream's lock.
        """
        fingerprints = [c.fingerprint for c in contents]
        return self.snapshots.compare(
            stream.source, stream.entity, lock_key, self.lock_ttl_s, keys, fingerprints
        )

    @staticmethod
    def _checked(
        stream: SnapshotStream,
        page: Sequence[Record],
        keys: list[str],
        contents: list[Content],
        changed: list[int],
    ) -> tuple[dict[int, SourceRecord], list[int]]:
        """The records at the ``changed`` positions as published, and where a fast path erred.

        Unchecked records are validated and mapped by the stream (:meth:`~SnapshotStream.
        confirm`, one call for the page), so that an event carries exactly what a stream
        without a fast path would publish, invalid records included. Their canonical text
        must be the one the fast path assembled; where it is not (the fast path must never
        let that happen), ``keys`` and ``contents`` take what the record really is, and its
        position is returned, to be compared with the snapshot again: the events stay
        exactly the changes.
        """
        records: dict[int, SourceRecord] = {}
        unchecked: dict[int, UncheckedRecord] = {}
        for index in changed:
            record = page[index]
            if isinstance(record, UncheckedRecord):
                unchecked[index] = record
            else:
                records[index] = record
        if not unchecked:
            return records, []
        confirmed = stream.confirm(list(unchecked.values()))
        differing: list[int] = []
        for index, record in zip(unchecked, confirmed, strict=True):
            records[index] = record
            text = canonical_json(record.payload)
            if record.key != keys[index] or text != contents[index].text:
                log.warning("producer.fast_path_differs", stream=stream.name, key=record.key)
                keys[index] = record.key
                contents[index] = Content.from_text("upsert", text)
                differing.append(index)
        return records, differing

    def _flush(
        self, stream: SnapshotStream, changes: list[_Change], result: PollResult, mode: _Mode
    ) -> None:
        """Publish the changes, then (only then) advance the snapshot."""
        if not changes:
            return
        detected_at = time.time()  # before publishing: a worker may apply at once
        first = self.state.next_versions(stream.source, stream.entity, len(changes))
        events: list[ChangeEvent] = []
        for offset, change in enumerate(changes):
            events.append(
                ChangeEvent.create(
                    flow=stream.flow,
                    source=stream.source,
                    entity=stream.entity,
                    key=change.record.key,
                    operation=change.content.operation,
                    payload=change.record.payload,
                    source_version=first + offset,
                    parent_key=change.record.parent_key,
                    content=change.content,
                )
            )
        deliveries = [Delivery(event=e, target=t) for e in events for t in stream.targets]
        if mode.force:
            self._forget_fingerprints(deliveries)
        # The whole poll's size decides bulk or single, not this flush's (the last is short).
        singles, batches = split_for_bulk(deliveries, self.bulk, result.events + len(events))
        publish(self.app, singles, state=self.state)
        publish_batches(self.app, batches, state=self.state)
        snapshots, source, entity = self.snapshots, stream.source, stream.entity
        with snapshots.pipeline() as pipe:
            if mode.update_snapshot:
                upserts = {
                    c.record.key: c.content.fingerprint
                    for c in changes
                    if c.content.operation == "upsert"
                }
                gone = [c.record.key for c in changes if c.content.operation == "delete"]
                snapshots.queue_update(pipe, source, entity, upserts=upserts, gone=gone)
            snapshots.queue_latest(pipe, source, entity, {e.key: e.source_version for e in events})
            if self.trace is not None:
                self.trace.queue(pipe, _trace_items(events, singles, batches, detected_at))
            pipe.execute()
        result.events += len(events)
        result.changed += sum(1 for c in changes if c.content.operation == "upsert")
        result.deleted += sum(1 for c in changes if c.content.operation == "delete")
        result.deliveries += len(deliveries)
        result.batches += len(batches)
        for d in deliveries:
            result.targets[d.target] = result.targets.get(d.target, 0) + 1

    def _forget_fingerprints(self, deliveries: list[Delivery]) -> None:
        """Blank the ledger's fingerprint of each (target, record) that has one.

        The target's id stays (HIPE PATCHes by it), and a blank fingerprint matches no
        event, so the worker applies the change again instead of skipping it.
        """
        self.records.forget_fingerprints_if_any(
            (d.target, d.event.entity, d.event.key)
            for d in deliveries
            if d.event.operation == "upsert"
        )


def _trace_items(
    events: list[ChangeEvent],
    singles: Sequence[Delivery],
    batches: Sequence[Sequence[Delivery]],
    now: float,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The ``detected`` event of each change and the ``sent`` event of each delivery."""
    for event in events:
        yield event.flow, event.key, detected_event(event, now)
    for delivery in singles:
        yield delivery.event.flow, delivery.event.key, sent_event(delivery, now, bulk=False)
    for batch in batches:
        for delivery in batch:
            yield delivery.event.flow, delivery.event.key, sent_event(delivery, now, bulk=True)
