"""The last reconcile of a flow as kept in Redis (written by :mod:`producers.reconcile`),
read by ``erpsync status`` and the workers' metrics."""

from __future__ import annotations

import json
from typing import Any

import redis

from state.keys import Keys


def reconcile_summary(client: redis.Redis, keys: Keys, flow: str) -> dict[str, Any] | None:
    """The counts per target of the flow's last reconcile, as the reconcile kept them."""
    return parse_reconcile_summary(client.get(keys.reconcile_last(flow)))


def parse_reconcile_summary(raw: Any) -> dict[str, Any] | None:
    """The ``summary`` of a stored reconcile (None when there is none or it is unreadable)."""
    if not raw:
        return None
    try:
        summary = json.loads(raw).get("summary")
    except (ValueError, AttributeError):
        return None
    return summary if isinstance(summary, dict) else None
