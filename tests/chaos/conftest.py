"""The short chaos run (``-m chaos``, about two minutes) is part of the default run; the
30-minute soak (``-m soak``) runs only when asked for.

The soak is deselected unless the ``-m`` expression names it, so that ``scripts/check``
and CI stay within minutes; ``scripts/check -m "not chaos"`` leaves the short run out too.
"""

from __future__ import annotations

import pytest

BY_HAND = ("soak",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect soak tests unless the ``-m`` expression names them."""
    expression = config.getoption("markexpr", "") or ""
    wanted = [mark for mark in BY_HAND if mark in expression]

    def by_hand(item: pytest.Item) -> bool:
        marks = [m for m in BY_HAND if item.get_closest_marker(m) is not None]
        return any(mark not in wanted for mark in marks)

    chosen = [item for item in items if by_hand(item)]
    if chosen:
        config.hook.pytest_deselected(items=chosen)
        items[:] = [item for item in items if not by_hand(item)]
