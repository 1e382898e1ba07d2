"""The calls a bulk call leaves for after it, a few at a time (Propeller's e-mail and phone
PATCHes and detaches, HIPE's withheld fields and addresses).

Against a real target each is a round trip: one after the other, a batch's would use a
fraction of the target's rate (at 50 ms a request, about 6 of HIPE's 10 per second) and take
minutes. A few threads keep the limit busy; the target's shared rate limit, taken before
every request (:mod:`delivery.http`), stays the bound whatever their number. The caller's
thread keeps the batch's record locks alive meanwhile; each call runs in a copy of the
caller's context, so its writes are fenced by the caller's leases (:mod:`state.leases`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar, cast

from erpsync.errors import SyncError

#: how often a long series of follow-up calls extends the batch's record locks, seconds
KEEPALIVE_EVERY_S = 1.0
#: follow-up calls of one bulk call in flight at once
FOLLOW_UP_THREADS = 4

R = TypeVar("R")


def run_all(
    calls: Sequence[Callable[[], R]],
    keepalive: Callable[[], None],
    *,
    threads: int = FOLLOW_UP_THREADS,
) -> list[R | SyncError]:
    """Each call's result (or the SyncError it raised), in the order of ``calls``, at most
    ``threads`` running at once; ``keepalive`` called at least every
    :data:`KEEPALIVE_EVERY_S` in this thread. Any other exception ends the batch: raised
    here once the calls under way have ended."""
    if not calls:
        return []
    results: list[R | SyncError | None] = [None] * len(calls)
    with ThreadPoolExecutor(max(1, min(threads, len(calls)))) as pool:
        # each call in a copy of the caller's context: its record leases fence the
        # calls' writes (state.leases), its log context names them
        pending: dict[Future[R], int] = {
            pool.submit(contextvars.copy_context().run, call): i for i, call in enumerate(calls)
        }
        try:
            while pending:
                done, _ = wait(pending, timeout=KEEPALIVE_EVERY_S, return_when=FIRST_COMPLETED)
                keepalive()
                for future in done:
                    index = pending.pop(future)
                    error = future.exception()
                    if isinstance(error, SyncError):
                        results[index] = error
                    elif error is not None:
                        raise error
                    else:
                        results[index] = future.result()
        finally:
            for future in pending:
                future.cancel()
    return cast("list[R | SyncError]", results)  # every index was filled
