"""The overview's graph: outcomes per interval and lag, drawn from the console's samples."""

from __future__ import annotations

import re

from cli.console.graph import HEIGHT, PAD, _series, outcome_graph


def sample(at: float, applied: int, dead: int, lag: float) -> dict[str, object]:
    return {
        "at": at,
        "targets": {
            "propeller": {"applied": applied, "dead_lettered": dead, "lag_s": lag},
            "hipe": {"applied": applied * 2, "dead_lettered": 0, "lag_s": lag / 2},
        },
    }


def test_the_graph_draws_the_differences_between_samples_and_the_largest_lag() -> None:
    samples = [sample(1000, 10, 0, 0), sample(1030, 40, 2, 12), sample(1060, 40, 5, 3)]
    series = _series(samples)
    assert series["applied"] == [(1030.0, 90.0), (1060.0, 0.0)]
    assert series["dead_lettered"] == [(1030.0, 2.0), (1060.0, 3.0)]
    assert series["lag_s"] == [(1030.0, 12.0), (1060.0, 3.0)]
    svg = str(outcome_graph(samples))
    lines = re.findall(r'points="([^"]+)"', svg)
    assert len(lines) == 3
    applied_top = float(lines[0].split()[0].split(",")[1])
    assert applied_top == PAD, "the largest count reaches the top"
    assert float(lines[0].split()[1].split(",")[1]) == HEIGHT - PAD, "zero sits at the bottom"
    assert "max 90" in svg
    assert "max 12 s" in svg


def test_one_sample_is_not_a_graph_yet() -> None:
    assert "fills in" in str(outcome_graph([sample(1000, 1, 0, 0)]))
