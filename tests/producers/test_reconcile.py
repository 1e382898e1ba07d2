"""Reconcile against fake sinks: every kind of drift found exactly, streams merged in key
order whatever order they are read in, unreadable targets not checked, repairs sent forced.

The fakes stand at the boundary reconcile is written against (:mod:`delivery.sinks.view`); the
real sinks' views are tested with the sandbox in tests/integration.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
from celery import Celery

from delivery.sinks.view import Observed, View, ViewableSink, view
from erpsync.errors import AuthError, ReadUnsupportedError
from erpsync.events import Delivery
from erpsync.settings import Settings
from producers.base import Producer, SnapshotStream, SourceRecord
from producers.reconcile import ReconcileError, Reconciliation, last_result, store_result
from producers.reconcile_repair import RepairReport, _Sent, repair, wait_repairs
from producers.runner import ProducerService
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import State


@dataclass
class ListStream(SnapshotStream):
    """A source whose pages the test sets (in any key order)."""

    source_pages: list[list[dict[str, Any]]] = field(default_factory=list)
    fail: bool = False
    bookmark_loaded: list[str | None] = field(default_factory=list)

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in self.source_pages:
            if self.fail:
                raise ConnectionError("the ERP went away")
            yield [SourceRecord(str(r["key"]), r) for r in page]

    def load_bookmark(self, bookmark: str | None) -> None:
        self.bookmark_loaded.append(bookmark)


@dataclass
class FakeSink:
    """A target holding ``records``; its mapping writes name, email, parent and active."""

    target: str
    records: list[Observed] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    error: Exception | None = None
    expected_calls: int = 0

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        self.expected_calls += 1
        return view(
            {
                "name": payload.get("name"),
                "email": payload.get("email"),
                "parent_key": payload.get("parent_key"),
                "active": bool(payload.get("active", True)),
            }
        )

    def observed(self, entity: str) -> Iterator[Observed]:
        for number, record in enumerate(self.records):
            if self.error is not None and number == 1:
                raise self.error
            yield record

    def known_limits(self, entity: str) -> list[str]:
        return list(self.limits)


def company(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": f"Company {key}", "email": None, "parent_key": None,
            "active": True, **fields}  # fmt: skip


def shown(key: str, target_id: str | None = None, **fields: Any) -> Observed:
    """What a target in sync shows of ``company(key)``, with ``fields`` changed."""
    base = {"name": f"Company {key}", "email": None, "parent_key": None, "active": True}
    return Observed(key, target_id or f"t-{key}", view({**base, **fields}))


def stream(*pages: list[dict[str, Any]]) -> ListStream:
    return ListStream("customers", "onlineerp", "customer", ["propeller", "hipe"],
                      source_pages=list(pages))  # fmt: skip


def reconcile(source: ListStream, sinks: Mapping[str, FakeSink], **kwargs: Any) -> dict[str, Any]:
    viewable: dict[str, ViewableSink] = dict(sinks)
    with Reconciliation("customers", source, viewable, **kwargs) as rec:
        return rec.run().as_dict()


def test_fake_sink_is_what_reconcile_is_written_against() -> None:
    assert isinstance(FakeSink("propeller"), ViewableSink)


def test_targets_equal_to_the_source_are_in_sync() -> None:
    source = stream([company("C1"), company("C2", email="a@b.c")], [company("C3")])
    sink = FakeSink("propeller", [shown("C1"), shown("C2", email="a@b.c"), shown("C3")])
    found = reconcile(source, {"propeller": sink})
    assert found["flow"] == "customers"
    assert found["targets"]["propeller"] == {
        "checked": 3,
        "in_sync": 3,
        "missing": [],
        "different": [],
        "orphaned": [],
        "duplicates": [],
        "known_limits": [],
        "counts": {"missing": 0, "different": 0, "orphaned": 0, "duplicates": 0,
                   "in_sync": 3, "invalid_source": 0},
    }  # fmt: skip
    assert source.bookmark_loaded == [None], "a cursor stream is read from its beginning"


def test_every_kind_of_drift_is_reported_by_key_and_field() -> None:
    source = stream(
        [
            company("C1"),  # in sync
            company("C2"),  # missing in the target
            company("C3", name="New name", email=None),  # renamed; e-mail removed at source
            company("C4", active=False),  # inactive, the target shows it active: orphaned
            company("C5", active=False),  # inactive and absent from the target: in sync
            company("C6", active=False),  # inactive and inactive in the target: in sync
            company("C7"),  # two target records carry its key
            company("C8", parent_key="C1"),  # moved under another parent in the target
        ]
    )
    sink = FakeSink(
        "hipe",
        [
            shown("C1"),
            shown("C3", email="old@example.com"),
            shown("C4"),
            shown("C6", active=False, name="Other name"),
            shown("C7", "h-71"),
            shown("C7", "h-72"),
            shown("C8", parent_key="C3"),
            shown("C9"),  # gone from the source, active in the target: orphaned
            shown("C10", active=False),  # gone from the source, inactive: nothing to say
        ],
    )
    found = reconcile(source, {"hipe": sink})["targets"]["hipe"]
    assert found["checked"] == 8
    assert found["in_sync"] == 3
    assert found["missing"] == [{"key": "C2"}]
    assert found["different"] == [
        {
            "key": "C3",
            "fields": {
                "name": {"source": "New name", "target": "Company C3"},
                "email": {"source": None, "target": "old@example.com"},
            },
        },
        {"key": "C8", "fields": {"parent_key": {"source": "C1", "target": "C3"}}},
    ]
    assert found["orphaned"] == [
        {"key": "C4", "target_id": "t-C4", "source": "inactive"},
        {"key": "C9", "target_id": "t-C9", "source": "absent"},
    ]
    assert found["duplicates"] == [{"key": "C7", "target_ids": ["h-71", "h-72"]}]
    assert found["counts"] == {"missing": 1, "different": 2, "orphaned": 2, "duplicates": 1,
                               "in_sync": 3, "invalid_source": 0}  # fmt: skip


def test_for_a_plan_an_inactive_record_the_target_lacks_is_missing() -> None:
    """A plan (``first_run``) predicts the first run, which creates it archived or
    inactive; the same record is in sync for a reconcile."""
    source = stream([company("C1", active=False), company("C2", active=False), company("C3")])
    sink = FakeSink("hipe", [shown("C2", active=False)])
    viewable: dict[str, ViewableSink] = {"hipe": sink}
    with Reconciliation("customers", source, viewable) as rec:
        rec.first_run = True
        found = rec.run().as_dict()["targets"]["hipe"]
        repair = list(rec.findings.to_repair("hipe"))
    assert found["missing"] == [{"key": "C1", "inactive": True}, {"key": "C3"}]
    assert found["counts"] == {"missing": 2, "different": 0, "orphaned": 0, "duplicates": 0,
                               "in_sync": 1, "invalid_source": 0}  # fmt: skip
    assert [(kind, key, payload) for kind, key, payload in repair] == [
        ("missing", "C1", company("C1", active=False)),
        ("missing", "C3", company("C3")),
    ]
    again = reconcile(stream([company("C1", active=False)]), {"hipe": FakeSink("hipe")})
    assert again["targets"]["hipe"]["counts"]["in_sync"] == 1


def test_known_limits_are_listed_and_a_value_the_target_cannot_take_is_never_drift() -> None:
    source = stream([company("C1", email=None), company("C2", email="new@example.com")])
    sink = FakeSink(
        "propeller",
        [shown("C1", email="kept@example.com"), shown("C2", email="old@example.com")],
        limits=["email"],
    )
    found = reconcile(source, {"propeller": sink})["targets"]["propeller"]
    assert found["known_limits"] == ["email"]
    assert found["in_sync"] == 1, "a value the vendor cannot clear is not drift"
    assert found["different"] == [
        {"key": "C2", "fields": {"email": {"source": "new@example.com",
                                           "target": "old@example.com"}}}
    ], "a value the target can be written with still is"  # fmt: skip


def test_a_target_that_cannot_show_a_deactivation_compares_inactive_records_as_active() -> None:
    source = stream(
        [
            company("C1", active=False),  # deactivated: the target keeps showing it
            company("C2", active=False, name="Renamed"),  # its fields still follow
            company("C3", active=False),  # never reached the target
        ]
    )
    sink = FakeSink(
        "atollon",
        [shown("C1"), shown("C2"), shown("C9")],  # C9: gone from the source, stays
        limits=["active"],
    )
    found = reconcile(source, {"atollon": sink})["targets"]["atollon"]
    assert found["in_sync"] == 1
    assert found["different"] == [
        {"key": "C2", "fields": {"name": {"source": "Renamed", "target": "Company C2"}}}
    ]
    assert found["missing"] == [{"key": "C3"}]
    assert found["orphaned"] == [], "no deactivation to show: never orphaned"


def test_a_target_that_cannot_show_a_deactivation_compares_the_inactive_records_fields() -> None:
    """Atollon ("active" a known limit): an inactive customer's contact still follows its
    fields, so those are compared; it is never orphaned, nor is a record the source lost."""
    source = stream(
        [
            company("C1", active=False),  # shown active: the known limit, in sync
            company("C2", active=False, name="Renamed"),  # its name did not follow: drift
            company("C3", active=False),  # absent from the target: missing
        ]
    )
    records = [shown("C1"), shown("C2"), shown("C9")]  # C9 is gone from the source
    sink = FakeSink("atollon", records, limits=["active"])
    found = reconcile(source, {"atollon": sink})["targets"]["atollon"]
    assert found["known_limits"] == ["active"]
    assert found["in_sync"] == 1
    assert found["orphaned"] == []
    assert found["missing"] == [{"key": "C3"}]
    assert found["different"] == [
        {"key": "C2", "fields": {"name": {"source": "Renamed", "target": "Company C2"}}}
    ]


def test_streams_in_any_order_are_merged_by_key_and_limit_bounds_only_the_lists() -> None:
    rng = random.Random(3)
    keys = [f"K{n:05d}" for n in range(3000)]
    shuffled = keys[:]
    rng.shuffle(shuffled)
    source = stream(*[[company(k) for k in shuffled[i : i + 250]] for i in range(0, 3000, 250)])
    missing = set(keys[::7])
    renamed = set(keys[1::11]) - missing
    held = [
        shown(k, name="Renamed") if k in renamed else shown(k) for k in keys if k not in missing
    ]
    rng.shuffle(held)
    extra = [shown(f"Z{n}") for n in range(5)]  # absent from the source
    a, b = FakeSink("propeller", held + extra), FakeSink("hipe", list(reversed(held)))
    found = reconcile(source, {"propeller": a, "hipe": b}, limit=10)["targets"]
    for target, orphans in (("propeller", 5), ("hipe", 0)):
        report = found[target]
        assert report["checked"] == 3000
        assert report["counts"]["missing"] == len(missing)
        assert report["counts"]["different"] == len(renamed)
        assert report["counts"]["orphaned"] == orphans
        assert report["in_sync"] == 3000 - len(missing) - len(renamed)
        assert report["missing"] == [{"key": k} for k in sorted(missing)[:10]]
        assert [d["key"] for d in report["different"]] == sorted(renamed)[:10]
    assert [o["key"] for o in found["propeller"]["orphaned"]] == [f"Z{n}" for n in range(5)]


def test_a_target_with_an_open_circuit_or_a_failed_read_is_not_checked() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = Keys("rc")
    circuit = Circuit(client, keys)
    circuit.failure("atollon", "401 from atollon", immediate=True)
    source = stream([company("C1"), company("C2")])
    secret = "Bearer abcdef0123456789"
    failing = FakeSink(
        "hipe",
        [shown("C1"), shown("C2")],
        error=AuthError(f"hipe refused {secret}", system="hipe", operation="list"),
    )
    sinks = {
        "propeller": FakeSink("propeller", [shown("C1")]),
        "hipe": failing,
        "atollon": FakeSink("atollon", [shown("C1"), shown("C2", name="X")]),
    }
    found = reconcile(source, sinks, circuit=circuit)["targets"]
    assert found["propeller"]["missing"] == [{"key": "C2"}]
    assert found["atollon"]["not_checked"] == "circuit open: 401 from atollon"
    assert (found["atollon"]["checked"], found["atollon"]["different"]) == (0, [])
    reason = found["hipe"]["not_checked"]
    assert reason.startswith("read failed: AuthError: hipe refused")
    assert "abcdef0123456789" not in reason, "secrets never appear"
    assert (found["hipe"]["checked"], found["hipe"]["counts"]["missing"]) == (0, 0)


def test_a_lifecycle_a_target_cannot_undo_is_never_drift() -> None:
    """Atollon with ``deactivation = "group"``: a reactivated customer stays in the
    Inactive group (no documented way out); reconcile lists it as the known limit."""
    source = stream([company("C1"), company("C2", active=False)])
    sink = FakeSink(
        "atollon", [shown("C1", active=False), shown("C2", active=False)], limits=["active"]
    )
    found = reconcile(source, {"atollon": sink})["targets"]["atollon"]
    assert (found["in_sync"], found["different"], found["orphaned"]) == (2, [], [])
    assert found["known_limits"] == ["active"]


def test_a_target_that_offers_no_read_is_reported_as_a_known_limit() -> None:
    """Atollon documents no read of contacts: one that refuses the sandbox's is a known
    limit of that target, said so, not a failed read."""
    refused = ReadUnsupportedError(
        "atollon list_contacts failed: HTTP 404, read not supported read-unsupported",
        system="atollon",
        operation="list_contacts",
        status_code=404,
        vendor_code="read-unsupported",
    )
    sinks = {
        "hipe": FakeSink("hipe", [shown("C1")]),
        "atollon": FakeSink("atollon", [shown("C1"), shown("C2")], error=refused),
    }
    found = reconcile(stream([company("C1")]), sinks)["targets"]
    reason = found["atollon"]["not_checked"]
    assert reason.startswith("atollon cannot be read: known limit (")
    assert "read-unsupported" in reason
    assert found["atollon"]["checked"] == 0
    assert found["hipe"]["in_sync"] == 1


def test_a_source_that_cannot_be_read_fails_the_reconcile() -> None:
    source = stream([company("C1")])
    source.fail = True
    with pytest.raises(ReconcileError, match=r"reading onlineerp\.customer failed"):
        reconcile(source, {"propeller": FakeSink("propeller", [shown("C1")])})


@pytest.fixture
def producer() -> Iterator[Producer]:
    app = Celery("reconcile-test", broker="memory://", set_as_current=False)
    app.conf.task_serializer = "json"
    yield Producer(app, fakeredis.FakeRedis(decode_responses=True), Keys("rc"))
    app.close()


def queued(producer: Producer, target: str) -> list[Delivery]:
    """The deliveries on a target's queue (the memory broker), as the workers will get them."""
    deliveries = []
    with producer.app.connection_for_read() as connection:
        queue = connection.SimpleQueue(f"sync.{target}")
        while queue.qsize():
            message = queue.get(timeout=1)
            deliveries.append(Delivery.model_validate(message.payload[0][0]))
            message.ack()
        queue.close()
    return deliveries


def repaired(producer: Producer) -> tuple[RepairReport, list[_Sent], list[Delivery]]:
    """Reconcile and repair a flow with every kind of drift in HIPE (missing C2, different C3
    and C4, orphaned C9, duplicate C7); the report, what was sent, and the queued deliveries."""
    source = stream(
        [
            company("C1"),
            company("C2"),
            company("C3", name="New"),
            company("C4", active=False),
            company("C7"),
        ]
    )
    sink = FakeSink(
        "hipe",
        [shown("C1"), shown("C3"), shown("C4"), shown("C7", "a"), shown("C7", "b"), shown("C9")],
    )
    producer.state.next_versions("onlineerp", "customer", 41)  # versions the producer used
    with Reconciliation("customers", source, {"hipe": sink}) as rec:
        rec.run()
        sent_report, sent = repair(rec, producer, actor="ops")
    return sent_report, sent, queued(producer, "hipe")


def test_repair_sends_one_forced_delivery_per_drift_and_audits_it(producer: Producer) -> None:
    sent_report, _, deliveries = repaired(producer)
    assert {d.event.key: d.event.operation for d in deliveries} == {
        "C2": "upsert",
        "C3": "upsert",
        "C4": "upsert",
        "C9": "delete",
    }, "one per missing, different and orphaned record; none for the duplicate"
    assert all(d.force and d.target == "hipe" and d.event.flow == "customers" for d in deliveries)
    by_key = {d.event.key: d.event for d in deliveries}
    assert by_key["C3"].payload == company("C3", name="New")
    assert by_key["C4"].payload == company("C4", active=False)
    assert by_key["C9"].payload == {"key": "C9", "active": False}
    assert all(e.source_version > 41 for e in by_key.values()), "newer than any produced"
    for key, event in by_key.items():
        assert producer.state.latest("onlineerp", "customer", key) == event.source_version
    assert producer.state.counters("hipe")["customers.produced"] == 4
    assert sent_report.sent == {"hipe": 4}
    (dup,) = sent_report.not_repaired["hipe"]
    assert (dup["key"], dup["target_ids"]) == ("C7", ["a", "b"])
    assert "never deletes" in dup["hint"]
    (audit,) = DeadLetterStore(producer.redis, producer.keys).audit_log()
    assert (audit["who"], audit["action"], audit["count"]) == ("ops", "reconcile_repair", 4)
    assert audit["details"]["flow"] == "customers"
    assert audit["details"]["found"]["hipe"] == {
        "missing": 1, "different": 1, "orphaned": 2, "duplicates": 1,
    }  # fmt: skip


def test_waiting_for_a_repair_reports_the_workers_outcomes_and_dead_letters(
    producer: Producer,
) -> None:
    sent_report, sent, deliveries = repaired(producer)
    # The workers' outcomes, as the engine records them; one is dead-lettered.
    state = State(producer.redis, producer.keys)
    ids = {s.key: s.delivery_id for s in sent}
    for key in ("C3", "C4", "C9"):
        state.record_outcome("hipe", ids[key], "applied")
    from erpsync.errors import PermanentError

    c2 = next(d for d in deliveries if d.event.key == "C2")
    entry = DeadLetterStore(producer.redis, producer.keys).add(
        c2,
        PermanentError("refused", system="hipe", operation="create", vendor_code="422",
                       hint="fix the record"),
    )  # fmt: skip
    state.record_outcome("hipe", ids["C2"], "dead_lettered")
    done = wait_repairs(producer, sent_report, sent, timeout_s=1, poll_s=0.01)
    assert done.outcomes == {"hipe": {"applied": 3, "dead_lettered": 1}}
    assert done.waiting == {}
    assert done.dead_lettered == {
        "hipe": [{"key": "C2", "dlq_id": entry, "code": "422", "hint": "fix the record"}]
    }


def test_repair_stops_waiting_at_the_timeout_and_says_what_still_waits(
    producer: Producer,
) -> None:
    source = stream([company("C1"), company("C2")])
    with Reconciliation("customers", source, {"hipe": FakeSink("hipe", [])}) as rec:
        rec.run()
        sent_report, sent = repair(rec, producer, actor="ops")
    done = wait_repairs(producer, sent_report, sent, timeout_s=0.05, poll_s=0.01)
    assert done.waiting == {"hipe": 2}
    assert done.as_dict()["hipe"]["sent"] == 2


def test_the_last_result_is_kept_for_status_and_metrics() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keys = Keys("rc")
    assert last_result(client, keys, "customers") is None
    source = stream([company("C1"), company("C2")])
    with Reconciliation("customers", source, {"hipe": FakeSink("hipe", [shown("C1")])}) as rec:
        report = rec.run()
    store_result(client, keys, report)
    kept = last_result(client, keys, "customers")
    assert kept is not None
    assert kept["targets"]["hipe"]["missing"] == [{"key": "C2"}]
    assert kept["summary"]["targets"]["hipe"] == {
        "checked": 2, "in_sync": 1, "missing": 1, "different": 0, "orphaned": 0,
        "duplicates": 0, "invalid_source": 0,
    }  # fmt: skip
    assert kept["summary"]["finished_at"] >= report.started_at
    assert json.loads(str(client.get(keys.reconcile_last("customers"))))["flow"] == "customers"


@pytest.fixture
def service(redis_url: str) -> Iterator[ProducerService]:
    """A producer whose customers flow reconciles every minute, over a fake source and sink."""
    local = "http://127.0.0.1:9"
    settings = Settings.model_validate(
        {
            "redis_url": redis_url,
            "key_prefix": f"rc{uuid.uuid4().hex[:8]}",
            "systems": {
                "onlineerp": {"base_url": local, "licence_code": "L", "secret": "s"},
                "hipe": {"base_url": local, "access_token": "t"},
            },
            "flows": {
                "customers": {"source": "onlineerp", "entity": "customer", "targets": ["hipe"],
                              "mapping": {"hipe": {}}, "reconcile_interval_s": 60},
                "quiet": {"source": "onlineerp", "entity": "customer", "targets": ["hipe"],
                          "mapping": {"hipe": {}}},
            },
        }
    )  # fmt: skip
    source = ListStream("customers", "onlineerp", "customer", ["hipe"],
                        source_pages=[[company("C1"), company("C2")]])  # fmt: skip
    running = ProducerService(
        settings, streams=[source], sinks={"hipe": FakeSink("hipe", [shown("C1")])}
    )
    yield running
    client = running.producer.redis
    for key in client.scan_iter(match=f"{settings.key_prefix}:*"):
        client.delete(key)
    running.close()


def test_the_producer_reconciles_a_flow_when_due_under_the_streams_lock(
    service: ProducerService,
) -> None:
    producer = service.producer
    now = time.time()
    (report,) = service.reconcile_due(now=now)
    assert (report.flow, report.targets["hipe"].counts["missing"]) == ("customers", 1)
    kept = last_result(producer.redis, producer.keys, "customers")
    assert kept is not None
    assert kept["summary"]["targets"]["hipe"]["missing"] == 1
    lock = producer.keys.stream_lock("onlineerp", "customer")
    assert not producer.redis.exists(lock), "the stream's lock is given back"
    assert service.reconcile_due(now=now + 30) == [], "not due before its interval"

    token = producer.state.acquire(lock, 30)
    assert token is not None
    assert service.reconcile_due(now=now + 120) == [], "a stream being polled is left alone"
    assert last_result(producer.redis, producer.keys, "customers") == kept
    producer.state.release(lock, token)
    (again,) = service.reconcile_due(now=now + 120)
    assert again.flow == "customers", "only the flow with an interval"
