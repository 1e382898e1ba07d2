"""Two things a worker process's threads share while they apply batches.

- :class:`CpuSlots`: a bounded semaphore on the batches' own work (reading and locking
  their records, mapping them, recording outcomes), CPU under one interpreter lock; a batch
  gives its slot back while it waits (its bulk call, the rate limit, parents on their way).
  Its size is the worker setting ``worker.batch_cpu_slots`` (0: no bound); bench
  ``batch_slots`` measures what each size costs.
- :class:`ChangeSignal`: a condition variable with a count, bumped when a batch of the
  process applied records or ended, so that a batch waiting for parents looks again at once
  instead of polling Redis in a tight loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: the default of ``worker.batch_cpu_slots``
BATCH_CPU_SLOTS = 2


class CpuSlots:
    """At most ``size`` batches of this process at their own work at once (0: no bound).

    A :class:`threading.BoundedSemaphore`, held per thread: :meth:`held` takes a slot
    unless this thread holds one already, :meth:`released` gives it back around a wait.
    """

    def __init__(self, size: int = BATCH_CPU_SLOTS) -> None:
        if size < 0:
            raise ValueError("batch_cpu_slots is 0 (no bound) or more")
        self.size = size
        self._slots = threading.BoundedSemaphore(size) if size else None
        self._mine = threading.local()

    def _holds(self) -> bool:
        return bool(getattr(self._mine, "held", False))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """This thread's batch works (taking a slot first, unless it holds one)."""
        if self._slots is None or self._holds():
            yield
            return
        self._slots.acquire()
        self._mine.held = True
        try:
            yield
        finally:
            self._mine.held = False
            self._slots.release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """This thread's batch waits: its slot goes to another meanwhile (none held:
        nothing)."""
        if self._slots is None or not self._holds():
            yield
            return
        self._mine.held = False
        self._slots.release()
        try:
            yield
        finally:
            self._slots.acquire()
            self._mine.held = True


class ChangeSignal:
    """A count that threads wait on to change (a :class:`threading.Condition`)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def count(self) -> int:
        """The count now (what :meth:`wait` compares with)."""
        with self._changed:
            return self._count

    def bump(self) -> None:
        """Something changed: every waiting thread looks again."""
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait(self, since: int, timeout_s: float) -> None:
        """Until the count differs from ``since``, at most ``timeout_s``."""
        with self._changed:
            self._changed.wait_for(lambda: self._count != since, max(0.0, timeout_s))
