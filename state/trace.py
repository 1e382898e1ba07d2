"""The story of one source record: what was seen, sent, tried, parked, dead-lettered, replayed.

Each record of a flow (flow + key) has a Redis list of events (JSON), newest last, bounded
in count (``trace_max_events``: the oldest go first) and in age (``trace_ttl_s``: the list
expires that long after its last event). ``trace_max_events = 0`` turns the trace off.

Events are written where these things are already logged, and cheaply:

* the producer queues a record's ``detected`` and ``sent`` events in the pipeline that
  advances its snapshot (no round trip of their own);
* a worker's engine observer (:func:`engine_observer`) puts each outcome, failed attempt and
  wait in a :class:`TraceBuffer`, which a background thread writes every
  :data:`FLUSH_INTERVAL_S` in one pipeline: a delivery waits for no trace write (a worker
  that dies loses at most that interval's events, never a delivery);
* operator actions (replay, edit, drop) and reconcile findings are written at once.

An event is a flat dict: ``at`` (epoch seconds), ``what`` (:data:`KINDS`), ``target`` when it
concerns one, and the details of its kind. A ``detected`` event holds ``fields``: a short
hash of each field's value, so the story can name the fields a change touched
(:func:`changed_fields`) without keeping values (no personal data in the trace).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import structlog

from erpsync.events import Delivery
from erpsync.redaction import redact
from erpsync.settings import Settings
from state.keys import Keys
from state.scripts import lua

log = structlog.get_logger("erpsync.trace")

#: what a trace event can say
KINDS = (
    "detected",
    "sent",
    "applied",
    "skipped",
    "attempt_failed",
    "waiting",
    "dead_lettered",
    "replayed",
    "edited",
    "dropped",
    "reconcile",
)
#: how often a worker's buffered events are written
FLUSH_INTERVAL_S = 0.25
#: a buffer holding more than this drops its oldest events (Redis unreachable for long)
BUFFER_LIMIT = 50_000
#: records per script call (a call holds Redis while it runs)
SCRIPT_KEYS = 200
#: longest error message kept in an event
MESSAGE_LIMIT = 300

Event = dict[str, Any]

#: KEYS: trace lists; ARGV: max events, TTL (s), JSON: per key, its events (JSON texts)
_APPEND = lua("trace_append")


def field_hashes(payload: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A short hash of each field's value, nested objects flattened (``custom.segment``)."""
    out: dict[str, str] = {}
    for name, value in payload.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            out.update(field_hashes(value, f"{path}."))
        else:
            out[path] = f"{zlib.crc32(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)):08x}"
    return out


def changed_fields(before: Mapping[str, str] | None, after: Mapping[str, str]) -> list[str]:
    """The fields whose hash differs between two detections (added and removed included)."""
    if before is None:
        return []
    names = set(before) | set(after)
    return sorted(n for n in names if before.get(n) != after.get(n))


def detected_event(delivery_event: Any, at: float) -> Event:
    """The ``detected`` event of a change event (a :class:`~erpsync.events.ChangeEvent`)."""
    return {
        "at": at,
        "what": "detected",
        "operation": delivery_event.operation,
        "fingerprint": delivery_event.fingerprint[:16],
        "version": delivery_event.source_version,
        "event_id": delivery_event.event_id,
        "fields": field_hashes(delivery_event.payload),
    }


def sent_event(delivery: Delivery, at: float, *, bulk: bool) -> Event:
    """The ``sent`` event of one delivery put on its target's queue."""
    return {
        "at": at,
        "what": "sent",
        "target": delivery.target,
        "delivery_id": delivery.delivery_id,
        "path": "bulk" if bulk else "single",
    }


def error_details(error: Mapping[str, Any] | None) -> Event:
    """What a trace keeps of a failure (:meth:`~erpsync.errors.SyncError.to_dict`)."""
    if not error:
        return {}
    found = {
        "class": error.get("error_class"),
        "status": error.get("status_code"),
        "vendor_code": error.get("vendor_code"),
        "error": redact(str(error.get("message") or ""))[:MESSAGE_LIMIT],
    }
    return {k: v for k, v in found.items() if v not in (None, "")}


#: engine observer names -> (trace kind, wait reason)
_OBSERVED: dict[str, tuple[str, str | None]] = {
    "applied": ("applied", None),
    "skipped": ("skipped", None),
    "retry": ("attempt_failed", None),
    "dependency_wait": ("waiting", "parent"),
    "parked_circuit": ("waiting", "circuit"),
    "circuit_opened": ("waiting", "circuit"),
    "auth_failed": ("waiting", "circuit"),
    "dead_lettered": ("dead_lettered", None),
}


def observed_event(what: str, delivery: Delivery, details: Mapping[str, Any], at: float) -> Event:
    """The trace event of an engine notification (``what``: see :data:`_OBSERVED`)."""
    kind, reason = _OBSERVED[what]
    event: Event = {
        "at": at,
        "what": kind,
        "target": delivery.target,
        "delivery_id": delivery.delivery_id,
        "attempt": delivery.attempt,
    }
    if reason is not None:
        event["reason"] = reason
    if delivery.replay_of is not None:
        event["replay_of"] = delivery.replay_of
    for name in ("action", "reason", "code", "dlq_id"):
        if details.get(name) is not None:
            event[name] = details[name]
    delay = details.get("delay_s", details.get("wait_s"))
    if delay is not None:
        event["delay_s"] = round(float(delay), 2)
    if kind in {"attempt_failed", "dead_lettered", "waiting"} and reason != "circuit":
        event.update(error_details(delivery.last_error))
    return event


@dataclass
class TraceStore:
    """Reads and writes the traces of one installation (one key prefix)."""

    client: redis.Redis
    keys: Keys
    max_events: int = 50
    ttl_s: float = 7 * 86400

    @classmethod
    def of(cls, client: redis.Redis, settings: Settings) -> TraceStore:
        """The trace store of ``settings`` (its prefix, bounds and age)."""
        return cls(
            client,
            Keys(settings.key_prefix),
            max_events=settings.trace_max_events,
            ttl_s=settings.trace_ttl_s,
        )

    @property
    def enabled(self) -> bool:
        return self.max_events > 0

    def queue(self, pipe: Any, items: Iterable[tuple[str, str, Event]]) -> None:
        """Add events (flow, key, event) to ``pipe``: the caller executes it.

        One script call for all of them (RPUSH, LTRIM and EXPIRE of each record run in
        Redis): a pipeline of three commands a record cost the producer more to build and
        read than the events themselves.
        """
        if not self.enabled:
            return
        grouped: dict[str, list[str]] = {}
        for flow, key, event in items:
            text = orjson.dumps(event).decode()
            grouped.setdefault(self.keys.trace(flow, key), []).append(text)
        if not grouped:
            return
        names = list(grouped)
        ttl = max(1, int(self.ttl_s))
        for start in range(0, len(names), SCRIPT_KEYS):  # Redis is not held long by one
            part = names[start : start + SCRIPT_KEYS]
            events = orjson.dumps([grouped[name] for name in part])
            pipe.eval(_APPEND, len(part), *part, self.max_events, ttl, events)

    def write(self, items: Iterable[tuple[str, str, Event]]) -> None:
        """Write events now, in one round trip."""
        if not self.enabled:
            return
        with self.client.pipeline(transaction=False) as pipe:
            self.queue(pipe, items)
            if len(pipe):
                pipe.execute()

    def read(self, flows: Sequence[str], key: str) -> dict[str, list[Event]]:
        """Each flow's events of ``key`` (flows without any left out), oldest first."""
        with self.client.pipeline(transaction=False) as pipe:
            for flow in flows:
                pipe.lrange(self.keys.trace(flow, key), 0, -1)
            answers = pipe.execute()
        found: dict[str, list[Event]] = {}
        for flow, raw in zip(flows, answers, strict=True):
            events = [orjson.loads(item) for item in raw or []]
            if events:
                found[flow] = events
        return found


@dataclass
class TraceBuffer:
    """Events kept in memory and written by a daemon thread every ``interval_s``."""

    store: TraceStore
    interval_s: float = FLUSH_INTERVAL_S
    _items: list[tuple[str, str, Event]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _closed: bool = False

    def add(self, flow: str, key: str, event: Event) -> None:
        """Keep one event for the next write (starts the writer on first use)."""
        if not self.store.enabled:
            return
        with self._lock:
            self._items.append((flow, key, event))
            if len(self._items) > BUFFER_LIMIT:
                del self._items[: len(self._items) - BUFFER_LIMIT]
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="erpsync-trace", daemon=True)
                self._thread.start()

    def flush(self) -> int:
        """Write what is buffered now; returns how many events were written."""
        with self._lock:
            items, self._items = self._items, []
        if not items:
            return 0
        try:
            self.store.write(items)
        except redis.RedisError as exc:
            with self._lock:  # kept for the next try (bounded by BUFFER_LIMIT)
                self._items[:0] = items
                del self._items[: max(0, len(self._items) - BUFFER_LIMIT)]
            log.warning("trace.write_failed", error=str(exc), events=len(items))
            return 0
        return len(items)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            self.flush()

    def close(self) -> None:
        """Write what is left and stop the writer."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


#: the buffer of this process's runtime (set by :func:`engine_observer`), for the waits
#: that happen below the engine (the rate limiter's, in the HTTP transport)
_process_buffer: TraceBuffer | None = None


def trace_rate_wait(waited_s: float) -> None:
    """A rate-limit wait of the delivery this thread is applying (its log context names it;
    a bulk call's records have none and are not traced here)."""
    buffer = _process_buffer
    bound = structlog.contextvars.get_contextvars()
    flow, key, target = bound.get("flow"), bound.get("key"), bound.get("target")
    if buffer is None or not (flow and key and target):
        return
    event = {
        "at": time.time(),
        "what": "waiting",
        "reason": "rate limit",
        "target": target,
        "attempt": bound.get("attempt", 0),
        "delay_s": round(waited_s, 2),
    }
    buffer.add(str(flow), str(key), event)


def engine_observer(buffer: TraceBuffer) -> Any:
    """An engine observer (:attr:`delivery.engine.Engine.observers`) feeding ``buffer``."""

    global _process_buffer
    _process_buffer = buffer

    def observe(what: str, delivery: Delivery, details: dict[str, Any]) -> None:
        if what in _OBSERVED:
            event = observed_event(what, delivery, details, time.time())
            buffer.add(delivery.event.flow, delivery.event.key, event)

    return observe


def story(events: Iterable[Event]) -> Iterator[Event]:
    """The events with what a reader needs added: the fields each detection changed."""
    last_fields: Mapping[str, str] | None = None
    for event in events:
        if event.get("what") == "detected":
            fields = event.get("fields") or {}
            out = {k: v for k, v in event.items() if k != "fields"}
            out["changed"] = changed_fields(last_fields, fields) if last_fields else None
            last_fields = fields
            yield out
        else:
            yield dict(event)


def _failure(event: Mapping[str, Any]) -> str:
    code = event.get("code") or event.get("vendor_code") or "?"
    parts = [str(code)]
    if event.get("class"):
        parts.append(f"({event['class']})")
    if event.get("status"):
        parts.append(f"HTTP {event['status']}")
    text = " ".join(parts)
    return f"{text}: {event['error']}" if event.get("error") else text


def _detected(event: Mapping[str, Any]) -> str:
    changed = event.get("changed")
    what = f"change seen: {event.get('operation')} v{event.get('version')}"
    what += f", fingerprint {event.get('fingerprint')}"
    if changed is None:
        return what + " (no earlier change kept)"
    return what + (f", changed {', '.join(changed)}" if changed else ", same fields")


def describe(event: Mapping[str, Any]) -> str:
    """One line saying what an event of :func:`story` means."""
    what = event.get("what")
    by = f" by {event['actor']}" if event.get("actor") else ""
    delay = f"; next try in {event['delay_s']} s" if event.get("delay_s") is not None else ""
    if what == "detected":
        return _detected(event)
    if what == "sent":
        why = " for a reconcile repair" if event.get("reason") == "repair" else ""
        return f"delivery sent ({event.get('path', 'single')}){why}"
    if what == "applied":
        return f"applied: {event.get('action')}" + (" (replay)" if event.get("replay_of") else "")
    if what == "skipped":
        return f"skipped: {event.get('reason')}"
    if what == "attempt_failed" and event.get("status") == 429:
        return f"the target asked for a wait: {_failure(event)}{delay}"  # not an attempt
    if what == "attempt_failed":
        return f"attempt {event.get('attempt')} failed: {_failure(event)}{delay}"
    if what == "waiting" and event.get("reason") == "circuit":
        code = f" ({event['code']})" if event.get("code") else ""
        return f"waiting: the target's circuit is open or paused{code}{delay}"
    if what == "waiting" and event.get("reason") == "rate limit":
        return f"waited {event.get('delay_s')} s for the target's rate limit"
    if what == "waiting":
        return f"waiting ({event.get('reason')}): {_failure(event)}{delay}"
    if what == "dead_lettered":
        return f"dead-lettered: {_failure(event)} (entry {event.get('dlq_id')})"
    if what == "replayed":
        if event.get("superseded_by") is not None:
            return f"replay{by}: superseded by version {event['superseded_by']}, resolved"
        return f"replayed{by} (entry {event.get('dlq_id')})"
    if what == "edited":
        return f"payload edited{by}: {', '.join(event.get('fields') or [])}"
    if what == "dropped":
        return f"dead letter dropped{by} (entry {event.get('dlq_id')})"
    if what == "reconcile":
        return f"reconcile found it {event.get('kind')}"
    return str(what)
