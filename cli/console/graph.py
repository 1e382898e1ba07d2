"""The overview's live graph: outcomes per interval and lag over the last hour, as SVG."""

from __future__ import annotations

import itertools
from typing import Any

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 720, 160, 30


def _series(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per interval: applied and dead-lettered (all targets), and the largest lag."""
    out: dict[str, list[tuple[float, float]]] = {"applied": [], "dead_lettered": [], "lag_s": []}
    for before, after in itertools.pairwise(samples):
        at = float(after["at"])
        for name in ("applied", "dead_lettered"):
            total = sum(
                max(0, int(t.get(name, 0)) - int(before["targets"].get(n, {}).get(name, 0)))
                for n, t in after["targets"].items()
            )
            out[name].append((at, float(total)))
        lags = [float(t.get("lag_s", 0)) for t in after["targets"].values()]
        out["lag_s"].append((at, max(lags, default=0.0)))
    return out


def _line(points: list[tuple[float, float]], t0: float, top: float, color: str) -> str:
    if not points:
        return ""
    xs = [PAD + (at - t0) / 3600 * (WIDTH - 2 * PAD) for at, _ in points]
    ys = [HEIGHT - PAD - (v / top if top else 0) * (HEIGHT - 2 * PAD) for _, v in points]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'


def outcome_graph(samples: list[dict[str, Any]]) -> Markup:
    """Two lines (outcomes per sample, left scale) and lag (dashed, right scale)."""
    if len(samples) < 2:
        return Markup("<p class='muted'>the graph fills in as samples arrive (every 30 s)</p>")
    series = _series(samples)
    t0 = float(samples[-1]["at"]) - 3600
    top = max([v for name in ("applied", "dead_lettered") for _, v in series[name]] or [1.0])
    lag_top = max([v for _, v in series["lag_s"]] or [1.0]) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'role="img" aria-label="outcomes and lag, last hour">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fafafa"/>',
        _line(series["applied"], t0, top, "#2a7"),
        _line(series["dead_lettered"], t0, top, "#c33"),
        _line(series["lag_s"], t0, lag_top, "#36c").replace(
            "<polyline", '<polyline stroke-dasharray="4"'
        ),
        f'<text x="{PAD}" y="14" font-size="11">applied (green), dead-lettered (red) per '
        f"30 s, max {top:g}; lag (blue, dashed) max {lag_top:.0f} s; last hour</text>",
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704 (numbers and fixed text only)
