"""The simulators benchmark runs end to end and reports every figure it promises.

Timings are never asserted (the machine is shared); only that each figure exists, is
positive and finite, was measured without errors, and is consistent with the others.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench._util import CpuUse, percentile
from bench.simulators import BULK_SIZE, BULK_TARGETS, GET_TARGETS, PAGE_SIZE, PAGING_TARGETS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One ``--quick --json`` run of the benchmark, as the command line runs it."""
    finished = subprocess.run(
        [sys.executable, "-m", "bench.simulators", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    parsed: dict[str, Any] = json.loads(finished.stdout)
    return parsed


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_states_the_machine_and_settings(report: dict[str, Any]) -> None:
    assert report["machine"]["cores"] >= 1
    assert report["machine"]["python"]
    assert report["settings"]["quick"] is True
    assert report["settings"]["clients"] >= 2
    assert positive(report["timings_s"]["total"])


def test_cheap_get_has_every_target_at_one_and_n_clients(report: dict[str, Any]) -> None:
    clients = report["settings"]["clients"]
    rows = {(row["target"], row["clients"]): row for row in report["cheap_get"]}
    assert set(rows) == {(target, n) for target in GET_TARGETS for n in (1, clients)}
    for (target, _), row in rows.items():
        assert row["errors"] == 0, (target, row["first_error"])
        for figure in (
            "per_s",
            "ratio_to_bare",
            "p50_ms",
            "p99_ms",
            "server_us_per_request",
            "server_capacity_per_s",
            "server_capacity_ratio_to_bare",
            "client_cores",
            "server_cores",
        ):
            assert positive(row[figure]), (target, figure, row[figure])
        assert row["p99_ms"] >= row["p50_ms"]
        assert row["limit"]
    for n in (1, clients):
        assert rows[("bare", n)]["ratio_to_bare"] == 1
        assert rows[("bare", n)]["server_capacity_ratio_to_bare"] == 1


def test_bulk_upsert_reports_calls_and_records_for_create_and_update(
    report: dict[str, Any],
) -> None:
    clients = report["settings"]["clients"]
    assert report["settings"]["bulk_size"] == BULK_SIZE == 100
    rows = {(row["target"], row["clients"]): row for row in report["propeller_bulk"]}
    assert set(rows) == {(target, n) for target in BULK_TARGETS for n in (1, clients)}
    for (target, _), row in rows.items():
        assert row["errors"] == 0, (target, row["first_error"])
        for figure in (
            "calls_per_s",
            "records_per_s",
            "ratio_to_bare",
            "server_us_per_call",
            "server_capacity_records_per_s",
        ):
            assert positive(row[figure]), (target, figure, row[figure])
        assert row["records_per_s"] == pytest.approx(row["calls_per_s"] * BULK_SIZE, rel=0.01)


def test_paging_reads_every_seeded_customer(report: dict[str, Any]) -> None:
    customers = report["settings"]["customers"]
    rows = {row["target"]: row for row in report["paging"]}
    assert set(rows) == set(PAGING_TARGETS)
    for target, row in rows.items():
        assert row["records"] == customers, target
        assert row["pages"] == customers // PAGE_SIZE + 1, "the last, short page ends the pass"
        for figure in ("seconds", "records_per_s", "ratio_to_bare", "server_cpu_s"):
            assert positive(row[figure]), (target, figure, row[figure])
        assert row["records_per_s"] == pytest.approx(customers / row["seconds"], rel=0.01)


def test_summary_names_the_slowest_simulator_and_its_headroom(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["slowest_get"]["target"] in GET_TARGETS[2:]
    assert summary["slowest_bulk"]["target"] in BULK_TARGETS[1:]
    for figure in (
        summary["client_max_get_per_s"],
        summary["slowest_get"]["server_capacity_per_s"],
        summary["slowest_get"]["client_processes_served"],
        summary["slowest_bulk"]["server_capacity_records_per_s"],
        summary["onlineerp_paging_seconds"],
        summary["onlineerp_paging_ratio_to_bare"],
    ):
        assert positive(figure), summary


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)


@pytest.mark.parametrize(
    ("client", "server", "others", "clients", "limit"),
    [
        (0.97, 0.3, 0.0, 8, "client CPU"),
        (0.3, 0.95, 0.0, 8, "server CPU"),
        (0.9, 0.9, 0.0, 8, "both CPUs"),
        (0.6, 0.4, 0.9, 8, "machine CPU (shared)"),
        (0.3, 0.2, 0.0, 8, "neither (latency)"),
        (0.6, 0.2, 0.0, 1, "round trip (75% client)"),
    ],
)
def test_limit_names_the_cpu_bound_side(
    client: float, server: float, others: float, clients: int, limit: str
) -> None:
    assert CpuUse(1.0, client, server, others).limit(clients, machine_cores=2) == limit
