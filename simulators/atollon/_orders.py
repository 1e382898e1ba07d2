"""Received sales orders (``GET order-received?id=``), as the crawler page documents them.

The page documents the read of one sales order and no way to create one: in Atollon, sales
orders are what its users enter. The sandbox therefore holds the page's own example (id
``133683101``, ``sales_order_example.json``: the page's answer as printed, less its
``# NOT SUPPORTED`` comments) from the start, and takes further orders the way a user
would enter them, on its control surface (``POST /_sandbox/orders`` with a body in the
same shape; docs/sandbox-conventions.md). An unknown id: FAIL ``Order not found: <id>``.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from simulators.atollon._request import FailError, IdSequence, now, require_object

_EXAMPLE = Path(__file__).with_name("sales_order_example.json")


@cache
def _page_example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_EXAMPLE.read_text(encoding="utf-8"))
    return data


def page_example() -> dict[str, Any]:
    """The page's Sales Order example, as ``GET order-received`` answers it."""
    return copy.deepcopy(_page_example())


class OrderStore:
    """Received sales orders by id; the page's example is always there after a reset."""

    def __init__(self, ids: IdSequence) -> None:
        self.ids = ids
        self.orders: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Only the page's example is left."""
        example = page_example()
        self.orders = {str(example["id"]): example}

    def get(self, order_id: str | None) -> dict[str, Any]:
        """``GET order-received?id=``: one order, or a FAIL."""
        if order_id is None:
            raise FailError("Invalid request: id is required")
        order = self.orders.get(order_id)
        if order is None:
            raise FailError(f"Order not found: {order_id}")
        return copy.deepcopy(order)

    def enter(self, body: Any) -> dict[str, Any]:
        """A user enters an order (the control surface): stored with an id assigned."""
        body = require_object(body, "the request body")
        stamp = now()
        order = {**copy.deepcopy(body), "id": self.ids.next(), "created": stamp}
        order.setdefault("journalName", "Sales Order")
        order["modified"] = stamp
        self.orders[str(order["id"])] = order
        return {"result": "SUCCESS", "id": order["id"]}

    def records(self) -> list[dict[str, Any]]:
        """Every order, the page's example first."""
        return [copy.deepcopy(order) for order in self.orders.values()]
