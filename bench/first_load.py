"""First load at the targets' limits (issue 19): N customers to Propeller, HIPE and Atollon at
once, each target slow (``latency_ms``) and allowing its own number of requests per second,
÷ the physical limit.

``uv run python -m bench.first_load [--customers 2000] [--json]``.

The sandbox runs in a child process; every target answers after ``latency_ms`` and answers
429 beyond its ``max_per_s`` (Propeller and HIPE 10/s, Atollon 50/s), and erpsync is told the
same limits (``rate_limit_per_s``), at the product's defaults otherwise (one worker, threads,
concurrency 8, log level INFO). The ERP holds N customers (a three-level hierarchy); the clock
runs from the producer's first poll until every delivery of every target has an outcome, and
each target's own finish is noted.

The physical limit of a target is the number of requests its documented endpoints need for N
records ÷ its allowed rate: Propeller one ``bulk/sourceId`` call per ``bulk_batch_size``
companies; HIPE, per CSV import the load made, its ``POST /api/imports`` and one status
``GET`` (the least the import needs; the id listing after it is not counted, so the figure
is strict), plus one ``PATCH`` per company whose value a CSV cell would alter (a phone
starting with ``+``: the adapter neutralises formulas), which only a PATCH carries, and
one ``POST /api/companies/{id}/addresses`` per company with addresses (a CSV row carries
none; that call takes all of one company's);
Atollon, which has no bulk endpoint, one ``POST crawler/contact`` per customer. The slowest
target decides. Goal: measured ÷ physical ≤ 1.15.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from bench._harness import BenchError, Installation, customers_flow, redis_server, sandbox_process
from bench._util import machine_info, print_json
from producers.runner import ProducerService

TARGETS = ("propeller", "hipe", "atollon")
LIMITS = {"propeller": 10, "hipe": 10, "atollon": 50}
LATENCY_MS = 50
GOAL = 1.15


def _settled(installation: Installation, target: str, expected: int) -> bool:
    c = installation.counters(target)
    done = c.get("applied", 0) + c.get("skipped", 0) + c.get("dead_lettered", 0)
    return c.get("produced", 0) >= expected and done >= c.get("produced", 0)


def _requests(stats: dict[str, Any], method: str, route: str) -> int:
    return sum(
        int(r["count"])
        for r in stats["requests"]
        if r["method"] == method and r["route"] == route and str(r["status"]).startswith("2")
    )


def _routes(stats: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in stats["requests"]:
        name = f"{row['method']} {row['route']}"
        found[name] = found.get(name, 0) + int(row["count"])
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def physical_s(installation: Installation, customers: int) -> dict[str, dict[str, float]]:
    """Per target: the requests its documented endpoints need, and those ÷ its rate."""
    propeller = installation.settings.systems.propeller
    batch = propeller.bulk_batch_size if propeller is not None else 1
    hipe = installation.sandbox_stats("hipe")
    imports = _requests(hipe, "POST", "/api/imports")
    # values a CSV cell would alter (a phone starting with "+": a spreadsheet formula) can
    # only reach HIPE by a PATCH of their own, and a CSV row carries no address (one create
    # per company takes all its addresses): needed whatever the pipeline does, at most one
    # of each per company
    follow_ups = min(customers, _requests(hipe, "PATCH", "/api/companies/{id}"))
    addresses = min(customers, _requests(hipe, "POST", "/api/companies/{id}/addresses"))
    needed = {
        "propeller": math.ceil(customers / batch),
        "hipe": 2 * max(imports, 1) + follow_ups + addresses,
        "atollon": customers,
    }
    return {t: {"requests": n, "seconds": n / LIMITS[t]} for t, n in needed.items()}


def measure(redis_url: str, customers: int, *, per_target: bool = True) -> dict[str, Any]:
    """One first load; the figures. ``per_target``: one worker per target queue (as
    docker-compose.yml deploys them), else one worker consuming every queue."""
    with (
        sandbox_process() as sandbox,
        Installation(
            sandbox,
            redis_url,
            customers_flow(*TARGETS),
            systems={t: {"rate_limit_per_s": float(limit)} for t, limit in LIMITS.items()},
        ) as installation,
    ):
        installation.seed_erp(customers)
        for target, limit in LIMITS.items():
            installation.faults(target, [{"latency_ms": LATENCY_MS, "max_per_s": limit}])
        if per_target:
            for target in TARGETS:
                installation.start_worker(f"--queues={target}")
        else:
            installation.start_worker()
        installation.clear_sandbox_stats(*TARGETS)
        service = ProducerService(installation.settings)
        finished: dict[str, float] = {}
        try:
            started = time.monotonic()
            (result,) = service.poll_once()
            poll_s = time.monotonic() - started
            deadline = started + customers / min(LIMITS.values()) * 3 + 300
            while len(finished) < len(TARGETS):
                for target in TARGETS:
                    if target not in finished and _settled(installation, target, customers):
                        finished[target] = time.monotonic() - started
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"not loaded in time: {finished}\n{installation.worker_logs()}"
                    )
                time.sleep(0.05)
        finally:
            service.close()
        total = max(finished.values())
        physical = physical_s(installation, customers)
        slowest = max(physical, key=lambda t: physical[t]["seconds"])
        found_per_target: dict[str, Any] = {}
        for target in TARGETS:
            stats = installation.sandbox_stats(target)
            counters = installation.counters(target)
            found_per_target[target] = {
                "seconds": round(finished[target], 3),
                "physical_s": round(physical[target]["seconds"], 3),
                "requests_needed": physical[target]["requests"],
                "http_requests": int(stats["total"]),
                "answers_429": int(stats["by_status"].get("429", 0)),
                "applied": counters.get("applied", 0),
                "dead_lettered": counters.get("dead_lettered", 0),
                #: requests by route (every status), most first: where the time went
                "routes": _routes(stats),
            }
            for name in ("retries", "dependency_waits"):
                found_per_target[target][name] = counters.get(name, 0)
        dead = sum(t["dead_lettered"] for t in found_per_target.values())
        return {
            "customers": customers,
            #: a load that dead-lettered records did not load everything: no valid ratio
            "complete": dead == 0,
            "records_polled": result.records,
            "latency_ms": LATENCY_MS,
            "limits_per_s": LIMITS,
            "poll_s": round(poll_s, 3),
            "seconds": round(total, 3),
            "physical_s": round(physical[slowest]["seconds"], 3),
            "slowest_target": slowest,
            "ratio": round(total / physical[slowest]["seconds"], 3),
            "goal": GOAL,
            "workers": "one per target queue" if per_target else "one for every queue",
            "targets": found_per_target,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--redis-url", default=None, help="a Redis to use (default: embedded)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--one-worker",
        action="store_true",
        help="one worker for every queue (default: one per target queue, as deployed)",
    )
    args = parser.parse_args()
    # the producer logs to stdout: keep it clear for the report
    with redis_server(args.redis_url) as url, contextlib.redirect_stdout(sys.stderr):
        figures = measure(url, args.customers, per_target=not args.one_worker)
    figures["machine"] = machine_info()
    if args.json:
        print_json(figures)
        return
    table = Table(title=f"first load of {args.customers:,} customers at the targets' limits")
    for column in ("target", "limit/s", "seconds", "physical s", "requests", "429s"):
        table.add_column(column)
    for target, found in figures["targets"].items():
        table.add_row(target, str(LIMITS[target]), f"{found['seconds']:.1f}",
                      f"{found['physical_s']:.1f}", str(found["http_requests"]),
                      str(found["answers_429"]))  # fmt: skip
    console = Console()
    console.print(table)
    for target, found in figures["targets"].items():
        routes = ", ".join(f"{route}: {count:,}" for route, count in found["routes"].items())
        console.print(f"{target}: {routes}")
    verdict = "met" if figures["ratio"] <= GOAL else "MISSED"
    if not figures["complete"]:
        verdict = "not valid: records were dead-lettered"
    console.print(f"all loaded in {figures['seconds']:.1f} s; the slowest target "
                  f"({figures['slowest_target']}) allows {figures['physical_s']:.1f} s: ratio "
                  f"{figures['ratio']:.3f} (goal <= {GOAL}: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
