"""At INFO the bulk path logs per batch, and every record's outcome is found by its key.

A batch writes one ``sync.batch_done`` line naming each record as ``"key:outcome"``; a
record's own ``sync.applied``/``sync.skipped`` line is DEBUG on the bulk path; every
failure (retry, dependency wait, conflict, dead letter, a whole call refused or retried)
keeps a line of its own with the key(s) and the reason. Checked on the engine with a real
Redis and the product's logging configuration, and on a real worker's log of a bulk load.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.stack import Pipeline, pipeline_config
from bench.verify import erp_customers
from delivery.batch import BatchApplier
from delivery.engine import Engine
from erpsync.errors import (
    DependencyError,
    PermanentError,
    RecordExistsError,
    TransientError,
)
from erpsync.logging import configure_logging
from simulators.server import RunningSandbox
from state.store import LedgerEntry
from tests.integration.bulk.loads import put_in_recycle_bin, seed
from tests.logs import captured_logs, log_lines
from tests.support import Clock
from tests.support.bulk import TARGET, BulkScriptedSink, batch, event
from tests.support.engine import make_engine


def outcomes_by_key(lines: list[dict[str, Any]]) -> dict[str, str]:
    """Each key's last outcome, as the batches' lines name them."""
    found: dict[str, str] = {}
    for line in lines:
        if line["event"] == "sync.batch_done":
            for named in line["outcomes"]:
                key, _, outcome = named.rpartition(":")
                found[key] = outcome
    return found


def own_lines(lines: list[dict[str, Any]], event: str) -> dict[str, dict[str, Any]]:
    """The lines of one event, by the key they carry."""
    return {line["key"]: line for line in lines if line["event"] == event}


# -- the engine, a real Redis, the product's logging -------------------------------------


@pytest.fixture
def engine(redis_url: str) -> Iterator[Engine]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = f"bulklog{random.randrange(1 << 30)}"
    yield make_engine(client, {TARGET: BulkScriptedSink()}, Clock(), prefix=prefix)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def sink(engine: Engine) -> BulkScriptedSink:
    found = engine.sinks()[TARGET]
    assert isinstance(found, BulkScriptedSink)
    return found


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the process logs, configured as a worker configures it (at the default INFO)."""
    with captured_logs("INFO") as buffer:
        yield buffer


def test_a_batch_names_every_record_s_outcome_and_each_failure_has_its_own_line(
    engine: Engine, sink: BulkScriptedSink, logged: io.StringIO
) -> None:
    same = event("SAME")
    engine.state.ledger_put(
        TARGET,
        "customer",
        "SAME",
        LedgerEntry(fingerprint=same.fingerprint, source_version=same.source_version),
    )
    sink.item_errors = {
        "BAD": PermanentError("refused: 40008", system=TARGET, operation="bulk",
                              vendor_code="40008"),
        "SLOW": TransientError("timed out", system=TARGET, operation="bulk", status_code=504),
        "P": PermanentError("refused: 10017", system=TARGET, operation="bulk",
                            vendor_code="10017"),
        "DUP": RecordExistsError("exists: 40004", system=TARGET, operation="bulk",
                                 vendor_code="40004"),
        "KID": DependencyError("40007", system=TARGET, operation="bulk", vendor_code="40007"),
    }  # fmt: skip
    deliveries = batch(engine, event("OK1"), event("OK2"), same, event("BAD"), event("SLOW"),
                       event("P"), event("KID", "P"), event("DUP"))  # fmt: skip
    assert BatchApplier(engine).process(deliveries) == {
        "applied": 2,
        "skipped": 1,
        "dead_lettered": 2,
        "parked": 3,
    }

    lines = log_lines(logged.getvalue())
    (done,) = [line for line in lines if line["event"] == "sync.batch_done"]
    assert (done["target"], done["size"]) == (TARGET, 8)
    assert outcomes_by_key(lines) == {
        "OK1": "created",
        "OK2": "created",
        "SAME": "skipped_unchanged",
        "BAD": "dead_lettered",
        "SLOW": "parked_transient",
        "P": "dead_lettered",
        "KID": "parked_dependency",
        "DUP": "parked_conflict",
    }
    events = {line["event"] for line in lines}
    assert not events & {"sync.applied", "sync.skipped"}, "no line per record at INFO"
    dead = own_lines(lines, "sync.dead_lettered")
    assert set(dead) == {"BAD", "P"}
    assert (dead["BAD"]["code"], dead["BAD"]["error"]) == ("40008", "refused: 40008")
    assert dead["BAD"]["level"] == "warning"
    retry = own_lines(lines, "sync.retry_scheduled")["SLOW"]
    assert retry["error"] == "timed out"
    assert retry["delay_s"] > 0
    waiting = own_lines(lines, "sync.waiting_dependency")["KID"]
    assert waiting["error"] == f"parent P of KID is not in {TARGET} yet"
    conflict = own_lines(lines, "sync.bulk_conflict")["DUP"]
    assert (conflict["code"], conflict["error"]) == ("40004", "exists: 40004")
    for line in (dead["BAD"], retry, waiting, conflict):
        assert (line["flow"], line["target"], line["entity"]) == ("customers", TARGET, "customer")
        assert line["event_id"], "the delivery's whole context"


def test_at_debug_each_record_of_a_bulk_call_still_has_its_line(
    engine: Engine, logged: io.StringIO
) -> None:
    configure_logging("DEBUG", "json", stream=logged, cache_loggers=False)
    deliveries = batch(engine, event("OK1"), event("OK2"))
    assert BatchApplier(engine).process(deliveries) == {"applied": 2}
    lines = log_lines(logged.getvalue())
    applied = own_lines(lines, "sync.applied")
    assert set(applied) == {"OK1", "OK2"}
    first = deliveries[0]
    assert applied["OK1"] == applied["OK1"] | {
        "level": "debug",
        "action": "created",
        "target_id": "b-OK1",
        "flow": "customers",
        "target": TARGET,
        "entity": "customer",
        "event_id": first.event.event_id,
        "attempt": 0,
    }


def test_a_whole_call_retried_or_refused_names_its_keys_and_reason(
    engine: Engine, sink: BulkScriptedSink, logged: io.StringIO
) -> None:
    sink.call_errors = [
        TransientError("503 from propeller", system=TARGET, operation="bulk", status_code=503),
        PermanentError("payload too large", system=TARGET, operation="bulk", status_code=413),
    ]
    assert BatchApplier(engine).process(batch(engine, event("A1"), event("A2"))) == {"parked": 2}
    assert BatchApplier(engine).process(batch(engine, event("B1"), event("B2"))) == {"parked": 2}
    lines = log_lines(logged.getvalue())
    (retried,) = [line for line in lines if line["event"] == "sync.batch_retry_scheduled"]
    assert (retried["keys"], retried["error"]) == (["A1", "A2"], "503 from propeller")
    (refused,) = [line for line in lines if line["event"] == "sync.batch_refused"]
    assert (refused["keys"], refused["error"]) == (["B1", "B2"], "payload too large")
    assert outcomes_by_key(lines) == {
        "A1": "parked_transient",
        "A2": "parked_transient",
        "B1": "parked_refused",
        "B2": "parked_refused",
    }


def test_a_dependency_failure_of_the_whole_call_logs_each_record(
    engine: Engine, sink: BulkScriptedSink, logged: io.StringIO
) -> None:
    sink.call_errors = [
        DependencyError("parent missing", system=TARGET, operation="bulk", vendor_code="40007")
    ]
    assert BatchApplier(engine).process(batch(engine, event("C1"), event("C2"))) == {"parked": 2}
    lines = log_lines(logged.getvalue())
    waiting = own_lines(lines, "sync.waiting_dependency")
    assert {k: line["error"] for k, line in waiting.items()} == {
        "C1": "parent missing",
        "C2": "parent missing",
    }
    assert outcomes_by_key(lines) == {"C1": "parked_dependency", "C2": "parked_dependency"}


# -- a real worker's log of a bulk initial load ------------------------------------------

CUSTOMERS = 600  # above the single path's 500: the poll goes in bulk, batches of 200


@pytest.fixture
def pipeline(redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """Sandbox, Redis and a worker with the product's default log level (INFO)."""
    with RunningSandbox() as sandbox:
        config = pipeline_config(
            sandbox,
            "x",
            flows={
                "customers": {
                    "source": "onlineerp",
                    "entity": "customer",
                    "targets": [TARGET],
                    "mapping": {TARGET: {}},
                }
            },
        )
        del config["log_level"]  # the default, as users run it
        p = Pipeline(sandbox, tmp_path, config)
        try:
            yield p
        finally:
            p.close()


@pytest.mark.integration
def test_a_worker_s_log_of_a_bulk_load_finds_every_record_by_its_key(pipeline: Pipeline) -> None:
    p = pipeline
    assert p.settings.log_level == "INFO"
    seed(p, CUSTOMERS)
    source = erp_customers(p)
    parents = {c["NoClientParent"] for c in source.values()}
    bad = next(k for k in sorted(source)[300:] if k not in parents)
    put_in_recycle_bin(p, bad)  # its item is refused alone (40008, permanent)
    # and the first bulk call is rate-limited (429).
    p.faults(
        TARGET,
        [{"path": "/v2/companies/bulk/*", "statuses": [429], "retry_after_s": 0.3, "count": 1}],
    )
    p.start_worker(f"--queues={TARGET}")
    p.wait_workers(1)
    (result,) = p.produce()
    assert result.batches >= 3
    p.wait_converged(timeout_s=240, targets=(TARGET,))
    log = p.directory / "worker-0.log"
    deadline = time.monotonic() + 30  # a batch's line follows its outcomes by a moment
    while set(outcomes_by_key(log_lines(log.read_text()))) != set(source):
        assert time.monotonic() < deadline, p.worker_logs()
        time.sleep(0.1)

    lines = log_lines(log.read_text())
    found = outcomes_by_key(lines)
    # A record its batch sent down the single path (none, usually) has a line of its own.
    single = {k for k, outcome in found.items() if outcome.startswith("single_")}
    applied = own_lines(lines, "sync.applied")
    assert set(applied) == single, "at INFO, no line per record of a bulk call"
    found |= {k: applied[k]["action"] for k in single}
    assert found == dict.fromkeys(source, "created") | {bad: "dead_lettered"}, p.worker_logs()
    assert len(lines) < CUSTOMERS / 10, "a few lines for a load of hundreds"

    dead = own_lines(lines, "sync.dead_lettered")
    assert set(dead) == {bad}
    assert (dead[bad]["code"], dead[bad]["level"]) == ("40008", "warning")
    assert bad in dead[bad]["error"], "the reason, naming the record"
    (retried,) = [line for line in lines if line["event"] == "sync.batch_retry_here"]
    assert len(retried["keys"]) == 200
    assert set(retried["keys"]) <= set(source)
    assert retried["error"], "the reason"
