"""HTTP transport with the target's shared rate limit applied to every request."""

from __future__ import annotations

import httpx

from workers.limits import RateLimiter


class RateLimitedTransport(httpx.BaseTransport):
    """Takes a token from the target's Redis bucket before each request."""

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
        self.limiter.acquire(self.target, self.rate_per_s, self.burst)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
