"""How long to wait, and how often to try, before a delivery is dead-lettered.

Declared once, here, for every target: the worker's retry policy is the one owner of
waiting (adapters never sleep). Delays use exponential backoff with *full jitter*
(a uniform draw between 0 and the capped exponential), which spreads a burst of failures
out instead of retrying them in lock-step, and never wait less than a vendor's
``Retry-After``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from erpsync.errors import SyncError
    from erpsync.events import Delivery


@dataclass(frozen=True)
class RetryPolicy:
    """Budgets and backoff for transient failures and missing dependencies."""

    transient_max_attempts: int = 8
    transient_base_s: float = 1.0
    transient_cap_s: float = 300.0
    dependency_max_waits: int = 30
    rate_limited_max_waits: int = 100
    dependency_base_s: float = 2.0
    dependency_cap_s: float = 120.0
    busy_delay_s: float = 0.25  # the record is locked by another worker
    lock_ttl_s: float = 120.0

    def count_transient(self, delivery: Delivery, error: SyncError) -> bool:
        """Count a transient failure against the delivery's budget; True once it is spent.

        A 429 (:attr:`SyncError.rate_limited`) counts as a wait the target asked for, not
        as a failed attempt: a batch of fifty records refused for the rate would otherwise
        spend an attempt of each, and a busy target dead-letter records that never failed.
        """
        spent = self.last_try(delivery, error)
        if error.rate_limited:
            delivery.rate_limited_waits += 1
        else:
            delivery.attempt += 1
        return spent

    def last_try(self, delivery: Delivery, error: SyncError) -> bool:
        """Whether counting this failure (:meth:`count_transient`) would spend the budget."""
        if error.rate_limited:
            return delivery.rate_limited_waits + 1 > self.rate_limited_max_waits
        return delivery.attempt + 1 >= self.transient_max_attempts

    def transient_delay(
        self, attempt: int, retry_after_s: float | None, rng: random.Random
    ) -> float:
        """Delay before retry number ``attempt`` (1-based) of a transient failure."""
        ceiling = min(self.transient_cap_s, self.transient_base_s * float(2 ** max(0, attempt - 1)))
        delay = rng.uniform(0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def dependency_delay(self, waits: int, rng: random.Random) -> float:
        """Delay before re-checking a missing dependency (waits longer, still jittered)."""
        ceiling = min(self.dependency_cap_s, self.dependency_base_s * float(2 ** min(waits, 16)))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
