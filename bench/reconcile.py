"""Reconcile of the customers flow against three targets: its time ÷ merely reading them all.

``uv run python -m bench --only reconcile`` (part of the pipeline benchmark), or alone:
``uv run python -m bench.reconcile [--quick] [--sizes 10000,100000] [--json]``.

The sandbox runs in a child process (:func:`bench._harness.sandbox_process`); its ERP is
seeded with N customers (a three-level hierarchy) and Propeller, HIPE and Atollon are filled
with them as the sinks write them (``bench._reconcile seed``: Propeller through its bulk
calls, HIPE and Atollon through the sandbox's load route, in seconds), so the reconcile
finds every record in sync (checked: a drift found fails the run). Then, in fresh processes, rounds
alternate:

* **page**: the source (the flow's stream, as a poll reads it) and the three targets (each
  sink's ``observed()``, which may read a record more than its listing shows) read at once,
  one thread each, as reconcile reads them, counting records only: the yardstick;
* **reconcile**: the same reads, spilled to SQLite, merged in key order and compared field
  by field (:mod:`producers.reconcile`).

The figure is the median of the per-round ratios reconcile ÷ page at the large size (goal
≤ 1.5), and the growth of reconcile's peak memory from the small size to the large one
(goal < 100 MB: memory must not grow with the number of records).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from bench._harness import (
    ROOT,
    BenchError,
    Installation,
    Sandbox,
    customers_flow,
    redis_server,
    sandbox_process,
)
from bench._util import machine_info, print_json

TARGETS = ("propeller", "hipe", "atollon")
#: issue 15's goals
RATIO_GOAL = 1.5
MEMORY_GOAL_MB = 100.0


@dataclass(frozen=True)
class ReconcileSizes:
    """Customers at the small and the large size, and rounds at the large one."""

    small: int
    large: int
    rounds: int

    @staticmethod
    def of(quick: bool) -> ReconcileSizes:
        return ReconcileSizes(300, 1_500, 1) if quick else ReconcileSizes(10_000, 100_000, 2)


def child(installation: Installation, mode: str, timeout_s: float = 7200.0) -> dict[str, Any]:
    """One ``bench._reconcile`` measurement in a fresh process."""
    controls = [f"--control={t}={installation.sandbox.endpoints[t].url}" for t in TARGETS]
    finished = subprocess.run(
        [sys.executable, "-m", "bench._reconcile", mode, "--config",
         str(installation.config_path), *(controls if mode == "seed" else [])],
        cwd=ROOT,
        env=installation.env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )  # fmt: skip
    if finished.returncode != 0:
        raise BenchError(f"bench._reconcile {mode} failed:\n{finished.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def _progress(line: str) -> None:
    """A step done (a round at 100,000 customers takes many minutes): on stderr, so that
    ``--json`` keeps stdout to the report."""
    print(f"bench.reconcile: {line}", file=sys.stderr, flush=True)


def _in_sync(result: dict[str, Any], customers: int) -> None:
    """A reconcile of seeded targets finds every record in sync, at every target."""
    found = result["targets"]
    if result["drift"] or any(found.get(t, {}).get("in_sync") != customers for t in TARGETS):
        raise BenchError(f"reconcile of {customers} seeded customers found drift: {found}")


def measure_reconcile(sandbox: Sandbox, redis_url: str, sizes: ReconcileSizes) -> dict[str, Any]:
    """The ratio reconcile ÷ page at the large size, reconcile's peak memory at both."""
    report: dict[str, Any] = {"customers": sizes.large, "small": sizes.small, "targets": TARGETS}
    peaks: dict[int, int] = {}
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for customers in (sizes.small, sizes.large):
        with Installation(sandbox, redis_url, customers_flow(*TARGETS)) as installation:
            for target in TARGETS:
                with installation.control(target) as client:
                    client.post("/_sandbox/reset").raise_for_status()
            installation.seed_erp(customers)
            seeded = child(installation, "seed")
            _progress(f"{customers:,} customers seeded in {seeded['seconds']:.1f} s")
            report.setdefault("seed_seconds", {})[customers] = {
                "all": round(seeded["seconds"], 1),
                **seeded["target_seconds"],
            }
            for _ in range(1 if customers == sizes.small else sizes.rounds):
                paged = child(installation, "page")
                _progress(f"{customers:,} customers read in {paged['seconds']:.1f} s")
                reconciled = child(installation, "reconcile")
                _progress(
                    f"{customers:,} customers reconciled in {reconciled['seconds']:.1f} s, "
                    f"peak RSS {reconciled['peak_rss_kb'] / 1024:.0f} MB"
                )
                _in_sync(reconciled, customers)
                peaks[customers] = max(peaks.get(customers, 0), reconciled["peak_rss_kb"])
                if customers == sizes.large:
                    rounds.append((reconciled, paged))
    ratios = [r["seconds"] / p["seconds"] for r, p in rounds]
    best_reconcile = min((r for r, _ in rounds), key=lambda r: float(r["seconds"]))
    best_page = min((p for _, p in rounds), key=lambda p: float(p["seconds"]))
    report.update(
        {
            "ratio": statistics.median(ratios),
            "round_ratios": [round(r, 3) for r in ratios],
            "reconcile_seconds": best_reconcile["seconds"],
            "page_seconds": best_page["seconds"],
            "page_stream_seconds": {k: round(v, 2) for k, v in best_page["stream_seconds"].items()},
            "page_sequential_seconds": sum(best_page["stream_seconds"].values()),
            "reconcile_read_seconds": best_reconcile["read_s"],
            "reconcile_compare_seconds": best_reconcile["compare_s"],
            "reconcile_cpu_s": best_reconcile["cpu_s"],
            "page_cpu_s": best_page["cpu_s"],
            "peak_rss_mb_small": peaks[sizes.small] / 1024,
            "peak_rss_mb_large": peaks[sizes.large] / 1024,
            "memory_growth_mb": (peaks[sizes.large] - peaks[sizes.small]) / 1024,
            "peak_reset": all(r["peak_reset"] for r, _ in rounds),
        }
    )
    return report


def _mark(holds: bool) -> str:
    return "[green]pass[/]" if holds else "[red]FAIL[/]"


def print_reconcile(report: dict[str, Any], console: Console) -> None:
    """The figures beside their goals."""
    table = Table(title="reconcile: customers flow, three targets", title_justify="left")
    for column in ("figure", "measured", "side by side", "goal"):
        table.add_column(column)
    ratio, growth = report["ratio"], report["memory_growth_mb"]
    table.add_row(
        f"reconcile ÷ page, {report['customers']:,} customers",
        f"{ratio:.2f}",
        f"best {report['reconcile_seconds']:.1f} s vs {report['page_seconds']:.1f} s "
        f"(read one after another: {report['page_sequential_seconds']:.1f} s); CPU "
        f"{report['reconcile_cpu_s']:.1f} s vs {report['page_cpu_s']:.1f} s; rounds "
        f"{report['round_ratios']}",
        f"≤ {RATIO_GOAL:g} " + _mark(ratio <= RATIO_GOAL),
    )
    table.add_row(
        f"  peak memory growth {report['small']:,} → {report['customers']:,} (MB)",
        f"{growth:.1f}",
        f"peak RSS {report['peak_rss_mb_small']:.0f} → {report['peak_rss_mb_large']:.0f} MB",
        f"< {MEMORY_GOAL_MB:g} "
        + ("[green]pass[/]" if growth < MEMORY_GOAL_MB else "[red]FAIL[/]"),
    )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.reconcile``."""
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--sizes", default=None, help="small,large customers (e.g. 2000,8000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds at the large size")
    parser.add_argument("--redis-url", default=None, help="a Redis to use (default: embedded)")
    args = parser.parse_args(argv)
    sizes = ReconcileSizes.of(args.quick)
    if args.sizes:
        small, large = (int(n) for n in args.sizes.split(","))
        sizes = ReconcileSizes(small, large, sizes.rounds)
    if args.rounds:
        sizes = ReconcileSizes(sizes.small, sizes.large, args.rounds)
    with redis_server(args.redis_url) as url, sandbox_process() as sandbox:
        report = {"machine": machine_info(), "reconcile": measure_reconcile(sandbox, url, sizes)}
    if args.json:
        print_json(report)
    else:
        print_reconcile(report["reconcile"], Console(width=170))
    return 0


if __name__ == "__main__":
    sys.exit(main())
