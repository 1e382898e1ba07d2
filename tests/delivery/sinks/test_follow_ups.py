"""A bulk call's follow-up calls run a few at a time, each outcome to its own record."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

import pytest

from delivery.sinks import follow_ups
from erpsync.errors import PermanentError, SyncError
from state.leases import LeaseLostError


class Gauge:
    """Counts the calls running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def call(self, value: str, *, seconds: float = 0.02) -> Callable[[], str]:
        def run() -> str:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
            return value

        return run


def test_results_keep_the_order_of_the_calls_and_at_most_threads_run_at_once() -> None:
    gauge = Gauge()
    calls = [gauge.call(f"r{i}") for i in range(12)]

    results = follow_ups.run_all(calls, lambda: None, threads=3)

    assert results == [f"r{i}" for i in range(12)]
    assert gauge.most == 3


def test_a_sync_error_is_that_call_s_outcome_and_the_others_still_run() -> None:
    refused = PermanentError("refused", system="hipe", operation="update_company")

    def fails() -> str:
        raise refused

    gauge = Gauge()
    results: list[str | SyncError] = follow_ups.run_all(
        [gauge.call("a"), fails, gauge.call("c")], lambda: None
    )

    assert results == ["a", refused, "c"]


def test_each_call_runs_in_a_copy_of_the_caller_s_context() -> None:
    """The record leases and the log context of the delivery go with its calls."""
    delivery: contextvars.ContextVar[str | None] = contextvars.ContextVar("d", default=None)
    delivery.set("delivery-1")
    assert follow_ups.run_all([delivery.get, delivery.get], lambda: None) == ["delivery-1"] * 2


def test_any_other_exception_ends_the_batch() -> None:
    def broken() -> str:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        follow_ups.run_all([Gauge().call("a"), broken], lambda: None)


def test_the_locks_are_kept_alive_in_the_callers_thread_during_long_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow_ups, "KEEPALIVE_EVERY_S", 0.02)
    caller = threading.get_ident()
    seen: list[int] = []

    results = follow_ups.run_all(
        [Gauge().call("slow", seconds=0.2)], lambda: seen.append(threading.get_ident())
    )

    assert results == ["slow"]
    assert len(seen) >= 5
    assert set(seen) == {caller}


def test_a_lost_lock_stops_the_calls_not_yet_started() -> None:
    started: list[int] = []

    def call(index: int) -> Callable[[], int]:
        def run() -> int:
            started.append(index)
            time.sleep(0.05)
            return index

        return run

    def keepalive() -> None:
        raise LeaseLostError("the record lease was lost")

    with pytest.raises(LeaseLostError):
        follow_ups.run_all([call(i) for i in range(20)], keepalive, threads=2)

    count = len(started)
    time.sleep(0.2)
    assert len(started) == count < 20  # none started after, none left to start
