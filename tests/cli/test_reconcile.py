"""``erpsync reconcile``: exit statuses, the JSON shape and the table an operator reads.

Reports are made by the reconcile driver over fake sinks here (the end-to-end runs against
the sandbox, with real sinks and workers, are in tests/integration/operations).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog
import tomli_w
from rich.console import Console
from typer.testing import CliRunner

from cli.app import app
from cli.reconcile import exit_status, print_report
from producers.reconcile import Reconciliation, Report, store_result
from producers.reconcile_repair import RepairReport
from state.keys import Keys
from tests.producers.test_reconcile import FakeSink, company, shown, stream


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> Iterator[None]:
    """A command run by CliRunner points structlog at the runner's stream, closed after it."""
    yield
    structlog.reset_defaults()


def report_of(sinks: dict[str, FakeSink], **kwargs: object) -> Report:
    source = stream([company("C1"), company("C2", name="Renamed"), company("C3")])
    with Reconciliation("customers", source, dict(sinks), **kwargs) as rec:  # type: ignore[arg-type]
        return rec.run()


def in_sync(target: str) -> FakeSink:
    return FakeSink(target, [shown("C1"), shown("C2", name="Renamed"), shown("C3")])


def test_exit_status_says_no_drift_drift_or_not_checked() -> None:
    assert exit_status(report_of({"propeller": in_sync("propeller")})) == 0
    drifted = FakeSink("hipe", [shown("C1"), shown("C2")])
    assert exit_status(report_of({"propeller": in_sync("propeller"), "hipe": drifted})) == 1
    unchecked = report_of({"propeller": in_sync("propeller")}, not_checked={"atollon": "x"})
    assert exit_status(unchecked) == 2, "a target not checked proves nothing"
    both = report_of({"hipe": drifted}, not_checked={"atollon": "circuit open"})
    assert exit_status(both) == 1, "drift found elsewhere is the news"


def test_the_table_shows_counts_examples_limits_and_the_repair() -> None:
    drifted = FakeSink("hipe", [shown("C1", email="old@example.com"), shown("C2"),
                                shown("C9")], limits=["phone"])  # fmt: skip
    report = report_of(
        {"propeller": in_sync("propeller"), "hipe": drifted},
        not_checked={"atollon": "circuit open: 401"},
    )
    repaired = RepairReport(
        sent={"hipe": 4},
        outcomes={"hipe": {"applied": 3, "dead_lettered": 1}},
        dead_lettered={"hipe": [{"key": "C3", "dlq_id": "abc", "code": "422", "hint": "fix it"}]},
    )
    out = Console(width=200, record=True)
    print_report(report, repaired, out=out)
    text = out.export_text()
    assert "reconcile customers (3 source records)" in text
    lines = [line for line in text.splitlines() if line.strip().startswith("│ ")]
    assert any("propeller" in line and "│       3 │       3 │" in line for line in lines), text
    assert any("hipe" in line and "phone" in line for line in lines), text
    assert "not checked: circuit open: 401" in text
    assert "missing (1):\n    C3\n" in text
    assert "C1: email: source ∅, target 'old@example.com'" in text
    assert "C2: name: source 'Renamed', target 'Company C2'" in text
    assert "C9 (target id t-C9): active in the target, gone from the source" in text
    assert "hipe: 4 sent; 1 applied, 1 dead_lettered" not in text
    assert "hipe: 4 sent; 3 applied, 1 dead_lettered" in text
    assert "C3: dead-lettered 422 (abc): fix it" in text
    assert "no drift" not in text


def test_the_table_says_no_drift_when_there_is_none() -> None:
    out = Console(width=200, record=True)
    print_report(report_of({"propeller": in_sync("propeller")}), out=out)
    assert "no drift" in out.export_text()


def test_an_unknown_flow_or_a_work_queue_exits_2(tmp_path: Path, redis_url: str) -> None:
    config = tmp_path / "erpsync.toml"
    systems = {
        "atollon": {"base_url": "http://127.0.0.1:9/crab", "instance": "x"},
        "onlineerp": {"base_url": "http://127.0.0.1:9/api", "licence_code": "L", "secret": "s"},
    }
    flows = {"billing": {"source": "atollon", "entity": "billing", "targets": ["onlineerp"],
                         "mapping": {"onlineerp": {}}}}  # fmt: skip
    config.write_text(
        tomli_w.dumps(
            {"redis_url": redis_url, "key_prefix": "clirec", "systems": systems, "flows": flows}
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    unknown = runner.invoke(app, ["--config", str(config), "reconcile", "nope", "--json"])
    assert unknown.exit_code == 2
    assert "no enabled flow named 'nope'" in unknown.output
    queue = runner.invoke(app, ["--config", str(config), "reconcile", "billing"])
    assert queue.exit_code == 2
    assert "work queue" in queue.output


def test_status_shows_the_last_reconcile_per_flow_and_target(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = f"clirec{uuid.uuid4().hex[:8]}"
    local = "http://127.0.0.1:9"
    config = tmp_path / "erpsync.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "redis_url": redis_url,
                "key_prefix": prefix,
                "systems": {
                    "onlineerp": {"base_url": local, "licence_code": "L", "secret": "s"},
                    "hipe": {"base_url": local, "access_token": "t"},
                    "propeller": {"base_url": local, "client_id": "c", "client_secret": "s"},
                },
                "flows": {
                    "customers": {
                        "source": "onlineerp",
                        "entity": "customer",
                        "targets": ["propeller", "hipe"],
                        "mapping": {"hipe": {}, "propeller": {}},
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    report = report_of(
        {"propeller": in_sync("propeller"), "hipe": FakeSink("hipe", [shown("C1")])},
        not_checked={"atollon": "circuit open"},
    )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(prefix)
    try:
        store_result(client, keys, report)
        result = CliRunner().invoke(
            app, ["--config", str(config), "status"], env={"COLUMNS": "200"}
        )
        as_json = CliRunner().invoke(app, ["--config", str(config), "status", "--json"])
    finally:
        client.delete(keys.reconcile_last("customers"))
        client.close()
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["customers", "hipe", "0s", "ago", "2", "0", "0", "0", "1"] in rows, result.output
    assert ["customers", "propeller", "0s", "ago", "0", "0", "0", "0", "3"] in rows
    assert any(row[:2] == ["customers", "atollon"] and "circuit" in row for row in rows)
    (flow,) = json.loads(as_json.output)["flows"]
    assert flow["reconcile"]["targets"]["hipe"]["missing"] == 2
