"""HTTP transport with the target's shared rate limit applied to every request."""

from __future__ import annotations

import httpx

from adapters import parse_retry_after
from delivery.pipeline.hooks import rate_limit_waited
from state.limits import RateLimiter
from state.trace import trace_rate_wait

#: a rate-limit wait this long or longer goes into the record's trace (single path)
RATE_WAIT_TRACED_S = 0.5


class RateLimitedTransport(httpx.BaseTransport):
    """Takes a token from the target's Redis bucket before each request; a 429's
    ``Retry-After`` holds the bucket for every worker."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        limiter: RateLimiter,
        target: str,
        rate_per_s: float,
        burst: int = 1,
    ) -> None:
        self.inner = inner
        self.limiter = limiter
        self.target = target
        self.rate_per_s = rate_per_s
        self.burst = burst

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        waited = self.limiter.acquire(self.target, self.rate_per_s, self.burst)
        rate_limit_waited(waited)  # the pipeline's hook (delivery.pipeline.hooks)
        if waited >= RATE_WAIT_TRACED_S:
            trace_rate_wait(waited)
        response = self.inner.handle_request(request)
        if response.status_code == 429:
            # Honoured by every worker, not only by the delivery that was refused.
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait:
                self.limiter.hold(self.target, self.rate_per_s, wait, self.burst)
        return response

    def close(self) -> None:
        self.inner.close()
