"""Move due deliveries from the delayed set back to their queues; resend lost deliveries.

Runs as a thread in every worker's main process (and in ``erpsync run``). Several pumps
may run at once: taking due members is atomic, and a member is forgotten only after it is
back on its queue, so a pump that dies mid-way loses nothing (its claims are recovered).

It also sweeps the pending deliveries (:meth:`state.store.State.register`): the broker can
lose a message. kombu's Redis transport pops a message (``BRPOP``) and only then records it
as unacknowledged, so a worker SIGKILLed in between, or a Redis that stops in between, loses
it for good; nothing in Celery or kombu ever sends it again. A pending delivery is sent
again when it made no progress for a lease (not sent, started or due since) *and* it can no
longer be in its queue: the queue is first in, first out, so every message sent before the
one next in line has left it. A delivery waiting behind a long backlog is never resent;
one held by a live worker longer than the lease is, and the copy is harmless (the ledger
makes application idempotent and outcomes are counted once).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

import structlog
from celery import Celery

from state.broker import queue_keys
from state.publish import SENT_AT, publish_raw
from state.store import State

log = structlog.get_logger("erpsync.pump")

#: a message sent this long before the one next in its queue may still be behind it
#: (a publisher records a delivery as pending just before it sends the message)
SENT_MARGIN_S = 2.0


def sent_at(raw: str | bytes | None) -> float | None:
    """The :data:`~state.publish.SENT_AT` header of a kombu message, when it has one."""
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        value = message["headers"][SENT_AT]
        return float(value)
    except (ValueError, TypeError, KeyError):
        return None


class Pump:
    """A background thread re-publishing due deliveries and resending lost ones."""

    def __init__(
        self,
        app: Celery,
        state: State,
        *,
        interval_s: float = 0.2,
        batch: int = 500,
        recover_every_s: float = 30.0,
        targets: Sequence[str] = (),
        lease_s: float = 600.0,
        sweep_every_s: float | None = None,
        claims_lease_s: float = 60.0,
    ) -> None:
        self.app = app
        self.state = state
        self.interval_s = interval_s
        self.batch = batch
        self.recover_every_s = recover_every_s
        self.targets = tuple(targets)
        self.lease_s = lease_s
        #: a claim this old belongs to a pump that died or was cut off before re-publishing
        self.claims_lease_s = claims_lease_s
        self.sweep_every_s = (
            sweep_every_s if sweep_every_s is not None else min(30.0, max(1.0, lease_s / 10))
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.moved = 0
        self.resent = 0

    def run_once(self) -> int:
        """Re-publish every delivery due now; returns how many."""
        moved = 0
        while True:
            claimed_at = time.time()
            members = self.state.claim_due(now=claimed_at, limit=self.batch)
            if not members:
                return moved
            publish_raw(self.app, (json.loads(m) for m in members), state=self.state)
            self.state.done(members, claimed_at=claimed_at)
            moved += len(members)
            self.moved += len(members)
            if len(members) < self.batch:
                return moved

    def next_in_line_sent_at(self, target: str) -> float | None:
        """When the message next in ``target``'s queue was sent: every message sent before
        it has left the queue. +inf for an empty queue; None when it cannot be told (a
        message without the header: nothing is taken as lost then)."""
        oldest = float("inf")
        for key in queue_keys(self.state.keys, target):
            raw = self.state.redis.lindex(key, -1)
            if raw is None:
                continue
            sent = sent_at(raw)
            if sent is None:
                return None
            oldest = min(oldest, sent)
        return oldest

    def sweep(self, *, now: float | None = None) -> int:
        """Resend pending deliveries the broker lost (see the module's docstring)."""
        resent = 0
        for target in self.targets:
            next_sent = self.next_in_line_sent_at(target)
            if next_sent is None:
                continue
            current = time.time() if now is None else now
            seen_before = min(current - self.lease_s, next_sent - SENT_MARGIN_S)
            while True:
                found = self.state.claim_overdue(target, seen_before, now=current, limit=self.batch)
                if not found:
                    break
                publish_raw(self.app, (json.loads(p) for p in found))
                self.state.incr(target, "resent_overdue", len(found))
                log.warning("pump.resent_overdue", target=target, count=len(found))
                resent += len(found)
                if len(found) < self.batch:
                    break
        self.resent += resent
        return resent

    def _loop(self) -> None:
        last_recover = last_sweep = float("-inf")
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_recover >= self.recover_every_s:
                    recovered = self.state.recover_claims(older_than_s=self.claims_lease_s)
                    if recovered:
                        log.warning("pump.claims_recovered", count=recovered)
                    last_recover = now
                if now - last_sweep >= self.sweep_every_s:
                    last_sweep = now
                    self.sweep()
                self.run_once()
            except Exception as exc:  # noqa: BLE001 (the pump must outlive Redis or broker hiccups)
                log.warning("pump.failed", error=str(exc))
                self._stop.wait(1.0)
            self._stop.wait(self.interval_s)

    def start(self) -> Pump:
        self._thread = threading.Thread(target=self._loop, name="erpsync-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
