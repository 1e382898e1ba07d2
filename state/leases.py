"""Leases: a delivery is run by one live worker at a time, and a worker that lost its
lease writes nothing more.

Two leases, both short (``worker.lease_s``, 15 s) and renewed every few seconds while the
work goes on, however long it takes (a HIPE import polled for minutes, a slow ERP robot):

* **the message's** (:class:`Heartbeat`, in each worker's main process): kombu's record of a
  delivered, unacknowledged message is renewed for every message the worker holds,
  prefetched or started (:mod:`state.broker`). A message whose lease lapsed belonged to a
  worker that died, was cut off from Redis or stalled: the reclaimer (every worker, one at a
  time) puts it back at the head of its queue at once, instead of kombu's visibility timeout
  (minutes) or erpsync's pending lease (10 minutes). A worker that finds, as a task starts,
  that its message was reclaimed, does not run it.
* **the record's** (:class:`Leases`, in each process that applies deliveries): the record
  lock a delivery or a batch holds (:mod:`state.store`) lives ``lock_ttl_s`` and is
  renewed only while its token is still the one in Redis. Its token is the **fencing
  token**: before every write to a target (:class:`FencedTransport`, every mutating request)
  and before recording an outcome (:meth:`Leases.guard`), the holder checks that it still
  holds every lock it works under; a holder that lost one (cut off, paused, stalled) raises
  :class:`LeaseLostError` and writes nothing more. The check costs nothing while a renewal
  confirmed the locks less than half a lease ago (nobody else can take a lock before it
  expires), else one round trip.

A write already sent when the lease is lost cannot be called back: creates are guarded by
the target's idempotency (Propeller ``sourceId``, Atollon ``externalId``, the ERP invoice's
``If-None-Match``), and where a target has none (HIPE) by a look-up first and
:meth:`Leases.create_in_doubt`, which makes the next holder wait until an earlier create
whose answer never came can no longer land.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
import structlog

from erpsync.errors import DependencyError
from state.broker import Unacked, held_by
from state.scripts import lua
from state.store import State

log = structlog.get_logger("erpsync.leases")

#: the reclaimer's mutex lives this long: a pass takes milliseconds, and a worker killed
#: inside one must not hold the others' reclaimers off for a whole lease
RECLAIM_MUTEX_S = 5.0
#: HTTP methods that may change a target (a POST search is checked too: harmless)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LeaseLostError(Exception):
    """This worker no longer holds the lease of what it works on: another worker may have
    taken the delivery over, so it must write nothing more (not a vendor error: no retry,
    no dead letter; the message goes back if it was not reclaimed)."""


@dataclass
class Holding:
    """The record locks one delivery (or one batch) works under, in one thread."""

    #: lock key -> token; may be the caller's own dict, which it fills and empties
    locks: Mapping[str, str]
    #: (target, delivery id): their pending lease (state.pump) is renewed with the locks
    deliveries: Sequence[tuple[str, str]]
    #: monotonic time until which every lock is surely held
    valid_until: float
    lost: bool = False


@dataclass
class Leases:
    """The record locks held in this process, renewed while held; the fencing checks."""

    state: State
    ttl_s: float
    renew_every_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[int, Holding] = field(default_factory=dict)
    #: what the running code works under: a context variable, so that the threads a
    #: delivery starts for its own calls (a bulk call's follow-ups, run in the caller's
    #: context) are fenced by its locks too, and other threads see nothing
    _current: contextvars.ContextVar[Holding | None] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._current = contextvars.ContextVar(f"erpsync_lease_{id(self)}", default=None)
        self._renew = self.state.redis.register_script(lua("renew_locks"))
        self._doubt = self.state.redis.register_script(lua("create_in_doubt"))

    @property
    def every_s(self) -> float:
        return self.renew_every_s if self.renew_every_s is not None else max(0.2, self.ttl_s / 5)

    @contextlib.contextmanager
    def holding(
        self, locks: Mapping[str, str], deliveries: Sequence[tuple[str, str]] = ()
    ) -> Iterator[Holding]:
        """Work under ``locks`` (just taken, so held for a lease from now): renewed while
        the block runs, and this thread's writes are checked against them."""
        held = Holding(locks, deliveries, self.clock() + self.ttl_s)
        outer = self._current.get()
        with self._lock:
            self._by_id[id(held)] = held
        self._current.set(held)
        self._ensure_thread()
        try:
            yield held
        finally:
            self._current.set(outer)
            with self._lock:
                self._by_id.pop(id(held), None)

    def current(self) -> Holding | None:
        """What this thread works under now (None: outside a delivery)."""
        return self._current.get()

    def guard(self) -> None:
        """Raise :class:`LeaseLostError` unless this thread still holds its locks (before a
        write to a target, before recording an outcome). No round trip while a renewal
        confirmed them less than half a lease ago."""
        held = self.current()
        if held is None:
            return
        if not held.lost and self.clock() < held.valid_until - self.ttl_s / 2:
            return
        self._confirm([held])
        if held.lost:
            raise LeaseLostError("the record lease was lost: another worker may hold it now")

    def create_in_doubt(
        self, lock_key: str, marker_key: str, token: str, window_s: float
    ) -> contextlib.AbstractContextManager[None]:
        """Around a create the target cannot deduplicate (HIPE): raises
        :class:`LeaseLostError` when the lock is not held, or a :class:`DependencyError`
        (wait, then look the record up again) while an earlier create of the record, whose
        answer never came, may still land; else marks this one in doubt for ``window_s``
        until an answer comes back (a timeout or a dropped connection leave it marked)."""
        left = int(self._doubt(keys=[lock_key, marker_key], args=[token, int(window_s * 1000)]))
        if left < 0:
            raise LeaseLostError("the record lease was lost before a create")
        if left > 0:
            raise DependencyError(
                f"an earlier create of this record may still land for {left / 1000:.1f} s",
                system="erpsync",
                operation="create",
                vendor_code="create-in-doubt",
                hint="waits until an earlier create whose answer never came can no longer "
                "land, then looks the record up again (the target has no unique key)",
            )
        return self._answered(marker_key, token)

    @contextlib.contextmanager
    def _answered(self, marker_key: str, token: str) -> Iterator[None]:
        try:
            yield
        except (httpx.TimeoutException, httpx.NetworkError, ConnectionError):
            raise  # no answer: the create may still land; the marker stays until it expires
        except BaseException:
            self._forget(marker_key, token)
            raise
        self._forget(marker_key, token)

    def _forget(self, marker_key: str, token: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.state.release(marker_key, token, patience_s=0)

    # -- renewal ------------------------------------------------------------------------
    def _confirm(self, holdings: Sequence[Holding]) -> None:
        """Renew the locks of ``holdings`` (still held by their token) in one call."""
        pairs: list[tuple[Holding, str, str]] = [
            (held, key, token) for held in holdings for key, token in list(held.locks.items())
        ]
        sent = self.clock()
        if pairs:
            answers = self._renew(
                keys=[key for _, key, _ in pairs],
                args=[max(1, int(self.ttl_s * 1000)), *(token for _, _, token in pairs)],
            )
            for (held, key, _), ok in zip(pairs, answers, strict=True):
                if not ok and not held.lost:
                    held.lost = True
                    log.warning("lease.lost", lock=key)
        for held in holdings:
            if not held.lost:
                held.valid_until = sent + self.ttl_s

    def renew(self) -> None:
        """Renew every holding of this process, and the pending lease of their deliveries."""
        with self._lock:
            holdings = [h for h in self._by_id.values() if not h.lost]
        if not holdings:
            return
        self._confirm(holdings)
        by_target: dict[str, dict[str, float]] = {}
        now = time.time()
        for held in holdings:
            if not held.lost:
                for target, delivery_id in held.deliveries:
                    by_target.setdefault(target, {})[delivery_id] = now
        if by_target:
            with self.state.redis.pipeline(transaction=False) as pipe:
                for target, ids in by_target.items():
                    pipe.zadd(self.state.keys.pending(target), ids, xx=True)
                pipe.execute()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="erpsync-leases", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 (renewal must outlive Redis hiccups)
                log.warning("lease.renew_failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()


class FencedTransport(httpx.BaseTransport):
    """Checks the thread's leases (:meth:`Leases.guard`) before every request that may
    change the target."""

    def __init__(self, inner: httpx.BaseTransport, leases: Leases) -> None:
        self.inner = inner
        self.leases = leases

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in WRITES:
            self.leases.guard()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


#: task id -> delivery tag of the messages this process received (Celery's consumer fills
#: it; a task looks its own up as it starts)
TAGS: dict[str, str] = {}


@dataclass
class Heartbeat:
    """A worker's message leases: renews those it holds, reclaims those whose lease lapsed.

    Runs as a thread in each worker's main process (where Celery's consumer holds the
    messages). Each renewal also records what the worker holds under its name
    (:meth:`state.keys.Keys.worker_lease`), for ``erpsync status`` and the chaos run.
    """

    unacked: Unacked
    state: State
    worker: str
    consumer: Callable[[], Any]
    lease_s: float = 15.0
    every_s: float | None = None
    reclaim_every_s: float = 2.0
    reclaimed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def interval_s(self) -> float:
        return self.every_s if self.every_s is not None else max(0.2, self.lease_s / 5)

    def beat(self, *, now: float | None = None) -> dict[str, str]:
        """Renew the leases of every message this worker holds; returns them (tag -> task)."""
        now = time.time() if now is None else now
        held = held_by(self.consumer())
        self.unacked.renew(list(held), now=now)
        self.state.redis.set(
            self.state.keys.worker_lease(self.worker),
            json.dumps({"at": round(now, 3), "held": held}),
            px=max(1, int(self.lease_s * 1000)),
        )
        return held

    def reclaim(self, *, now: float | None = None) -> int:
        """Put back every message whose lease lapsed (one worker at a time); returns how many."""
        now = time.time() if now is None else now
        mutex = self.state.keys.reclaim_lock()
        token = self.state.acquire(mutex, RECLAIM_MUTEX_S)
        if token is None:
            return 0
        counts: Counter[str] = Counter()
        try:
            while True:
                tags = self.unacked.expired(now - self.lease_s)
                for tag in tags:
                    routing_key = self.unacked.reclaim(tag)
                    if routing_key is not None:
                        counts[routing_key.removeprefix("sync.")] += 1
                if len(tags) < 500:
                    break
        finally:
            self.state.release(mutex, token, patience_s=0)
        for target, count in counts.items():
            self.state.incr(target, "reclaimed", count)
            log.warning("lease.reclaimed", target=target, count=count)
        total = sum(counts.values())
        self.reclaimed += total
        return total

    def _loop(self) -> None:
        last_reclaim = float("-inf")
        while not self._stop.is_set():
            try:
                self.beat()
                if time.monotonic() - last_reclaim >= self.reclaim_every_s:
                    last_reclaim = time.monotonic()
                    self.reclaim()
            except Exception as exc:  # noqa: BLE001 (the heartbeat must outlive Redis hiccups)
                log.warning("lease.heartbeat_failed", error=str(exc))
            self._stop.wait(min(self.interval_s, self.reclaim_every_s))

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, name="erpsync-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with contextlib.suppress(redis.RedisError):
            self.state.redis.delete(self.state.keys.worker_lease(self.worker))


def still_held(unacked: Unacked, task_id: str, *, now: float | None = None) -> bool:
    """As a task starts: False when its message was reclaimed meanwhile (another worker
    runs it now); True when it is still this worker's, or cannot be told (the message was
    received by another process: prefork)."""
    tag = TAGS.pop(task_id, None)
    if tag is None:
        return True
    return not unacked.renew([tag], now=time.time() if now is None else now)


def first_restarts(
    entries: Iterable[str], tasks: Iterable[str], *, since: float
) -> dict[str, float]:
    """When each of ``tasks`` first started again after ``since``, from the entries of
    :meth:`state.keys.Keys.restarted` ("<task id> <epoch s>"); absent: not yet."""
    wanted = set(tasks)
    found: dict[str, float] = {}
    for entry in entries:
        task, _, at = str(entry).partition(" ")
        if task in wanted and float(at) >= since and task not in found:
            found[task] = float(at)
    return found
