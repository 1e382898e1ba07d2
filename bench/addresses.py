"""Customers with addresses through the bulk paths: what each target's calls cost.

``uv run python -m bench.addresses [--customers 10000] [--quick] [--json]``

The sandbox runs in a child process; its ERP is loaded (``POST /_sandbox/load/Customer``)
with N seeded customers, each with its invoice address and zero to two delivery addresses
(``AdressesLivraison``): one to three addresses each. One ``erpsync worker`` at the
product's defaults, then the producer's first poll: the initial load, through Propeller's
bulk upserts (the addresses inline in the company items, doc 002) and HIPE's CSV imports
(which carry no address: the documented address call follows for each company). When every
customer has an outcome in both targets, the addresses stored there are counted (each must
have arrived) and the HTTP requests each target served are divided by the companies and
addresses loaded.

Goal (issue 18): Propeller at most 0.03 HTTP requests per company and address. HIPE has no
bulk address call: its figure is printed, not held to a goal.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from bench._harness import (
    BenchError,
    Installation,
    customers_flow,
    redis_server,
    sandbox_process,
)
from bench.pipeline import outcomes, wait_for
from producers.runner import ProducerService
from simulators.seed import generate

TARGETS = ("propeller", "hipe")
#: HTTP requests per company and address, at most (Propeller's bulk paths)
GOAL = 0.03
LOAD_CHUNK = 2000


def customers_with_addresses(count: int, seed: int = 18) -> list[dict[str, Any]]:
    """Seeded ERP customers, each with zero to two delivery addresses besides its own."""
    rng = random.Random(seed)
    customers = generate(count, products=0, activities=0).customers
    for customer in customers:
        invoice = customer["Adresse"]
        customer["AdressesLivraison"] = [
            {**invoice, "CodeAdresse": f"L{n}", "Ligne1": f"{rng.randrange(1, 9999)} rue L{n}"}
            for n in range(rng.randrange(3))
        ]
    return customers


def _load_erp(installation: Installation, customers: list[dict[str, Any]]) -> None:
    with installation.control("onlineerp") as client:
        client.post("/_sandbox/reset").raise_for_status()
        for start in range(0, len(customers), LOAD_CHUNK):
            chunk = customers[start : start + LOAD_CHUNK]
            client.post("/_sandbox/load/Customer", json=chunk).raise_for_status()


def _stored_addresses(installation: Installation, target: str) -> int:
    with installation.control(target) as client:
        answer = client.get("/_sandbox/records/addresses")
        answer.raise_for_status()
        return len(answer.json())


def _routes(stats: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in stats["requests"]:
        name = f"{row['method']} {row['route']}"
        found[name] = found.get(name, 0) + int(row["count"])
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def measure(customers: int, redis_url: str | None) -> dict[str, Any]:
    """The initial load of ``customers`` customers with addresses, per target."""
    data = customers_with_addresses(customers)
    addresses = sum(1 + len(c["AdressesLivraison"]) for c in data)
    with (
        redis_server(redis_url) as url,
        sandbox_process() as sandbox,
        Installation(
            sandbox,
            url,
            customers_flow(*TARGETS),
            systems={"hipe": {"import_poll_interval_s": 0.2}},
        ) as installation,
    ):
        _load_erp(installation, data)
        for target in TARGETS:
            with installation.control(target) as client:
                client.post("/_sandbox/reset").raise_for_status()
            installation.clear_sandbox_stats(target)
        installation.start_worker()
        before = {t: outcomes(installation, t) for t in TARGETS}
        service = ProducerService(installation.settings)
        try:
            (result,) = service.poll_once()
        finally:
            service.close()
        if result.changed != customers or not result.batches:
            raise BenchError(f"the poll found {result.changed} customers, {result.batches} batches")
        wait_for(
            lambda: (
                all(outcomes(installation, t) - before[t] >= customers for t in TARGETS)
                and installation.redis.zcard(installation.keys.delayed()) == 0
            ),
            timeout_s=3600,
            what=f"initial load of {customers} customers with addresses",
        )
        report: dict[str, Any] = {
            "customers": customers,
            "addresses": addresses,
            "batches": result.batches,
            "targets": {},
        }
        for target in TARGETS:
            stats = installation.sandbox_stats(target)
            stored = _stored_addresses(installation, target)
            if stored != addresses:
                raise BenchError(f"{target} holds {stored} of {addresses} addresses")
            counters = installation.counters(target)
            total = int(stats["total"])
            report["targets"][target] = {
                "http_requests": total,
                "requests_per_company_and_address": total / (customers + addresses),
                "requests_per_company": total / customers,
                "addresses_stored": stored,
                "dead_lettered": counters.get("dead_lettered", 0),
                "routes": _routes(stats),
            }
    propeller = report["targets"]["propeller"]["requests_per_company_and_address"]
    report["goal"] = {"propeller_requests_per_company_and_address": ["<=", GOAL]}
    report["holds"] = propeller <= GOAL
    return report


def print_report(report: dict[str, Any], console: Console) -> None:
    console.print(
        f"{report['customers']:,} customers, {report['addresses']:,} addresses, "
        f"{report['batches']} bulk batches"
    )
    table = Table("target", "HTTP requests", "per company and address", "per company", "goal")
    for target, found in report["targets"].items():
        goal = f"<= {GOAL}" if target == "propeller" else "(printed: no bulk address call)"
        table.add_row(
            target,
            f"{found['http_requests']:,}",
            f"{found['requests_per_company_and_address']:.4f}",
            f"{found['requests_per_company']:.4f}",
            goal,
        )
    console.print(table)
    for target, found in report["targets"].items():
        routes = ", ".join(f"{route}: {count:,}" for route, count in found["routes"].items())
        console.print(f"{target}: {routes}")
    console.print("goal holds" if report["holds"] else "goal MISSED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.addresses", description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 customers")
    parser.add_argument("--redis-url", default=None, help="default: an embedded Redis")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    customers = 1000 if args.quick else args.customers
    report = measure(customers, args.redis_url)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, Console())
    return 0 if report["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
