"""A clock the test moves by hand, for code that takes ``clock=`` (or ``time``/``sleep``)."""

from __future__ import annotations


class Clock:
    """The time is ``now``: read by calling it (or ``time()``); moved by ``advance``, by
    ``sleep`` (a sleeper's wait passes at once) or by setting ``now``."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        """``time.time``'s stand-in."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """``time.sleep``'s stand-in: the time moves on, nothing waits."""
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
