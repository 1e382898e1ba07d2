"""Assertions the integration tests share, over the comparisons of :mod:`bench.verify`."""

from __future__ import annotations

from bench.stack import Pipeline
from bench.verify import compare_all


def assert_targets_match_source(p: Pipeline) -> None:
    """Every ERP customer is in every target, exactly (the comparisons' report otherwise)."""
    comparisons = compare_all(p)
    assert all(c.equal for c in comparisons), "\n".join(str(c) for c in comparisons)
