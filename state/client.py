"""The Redis client erpsync's state is kept with."""

from __future__ import annotations

import redis

from erpsync.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    """A Redis client for erpsync's state (strings in, strings out)."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry_on_timeout=True,
    )
