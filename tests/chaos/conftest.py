"""The soak (``-m soak``) runs only when asked for: 30 minutes are no part of a default run."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect soak tests unless the ``-m`` expression names ``soak``."""
    if "soak" in (config.getoption("markexpr", "") or ""):
        return
    soaks = [item for item in items if item.get_closest_marker("soak") is not None]
    if soaks:
        config.hook.pytest_deselected(items=soaks)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]
