"""Move due deliveries from the delayed set back to their queues.

Runs as a thread in every worker's main process (and in ``erpsync run``). Several pumps
may run at once: taking due members is atomic, and a member is forgotten only after it is
back on its queue, so a pump that dies mid-way loses nothing (its claims are recovered).
"""

from __future__ import annotations

import json
import threading
import time

import structlog
from celery import Celery

from workers.publish import publish_raw
from workers.state import State

log = structlog.get_logger("erpsync.pump")


class Pump:
    """A background thread re-publishing due deliveries."""

    def __init__(
        self,
        app: Celery,
        state: State,
        *,
        interval_s: float = 0.2,
        batch: int = 500,
        recover_every_s: float = 30.0,
    ) -> None:
        self.app = app
        self.state = state
        self.interval_s = interval_s
        self.batch = batch
        self.recover_every_s = recover_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.moved = 0

    def run_once(self) -> int:
        """Re-publish every delivery due now; returns how many."""
        moved = 0
        while True:
            members = self.state.claim_due(limit=self.batch)
            if not members:
                return moved
            publish_raw(self.app, (json.loads(m) for m in members))
            self.state.done(members)
            moved += len(members)
            self.moved += len(members)
            if len(members) < self.batch:
                return moved

    def _loop(self) -> None:
        last_recover = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now - last_recover >= self.recover_every_s:
                    recovered = self.state.recover_claims(
                        older_than_s=max(60.0, self.recover_every_s)
                    )
                    if recovered:
                        log.warning("pump.claims_recovered", count=recovered)
                    last_recover = now
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
