"""The record trace: bounded per record and in age, fed by the engine, read as a story."""

from __future__ import annotations

import fakeredis
import pytest
import structlog

from delivery.engine import Engine
from erpsync.errors import PermanentError, TransientError
from erpsync.events import ChangeEvent, Delivery
from state.keys import Keys
from state.trace import (
    TraceBuffer,
    TraceStore,
    changed_fields,
    describe,
    detected_event,
    engine_observer,
    field_hashes,
    story,
    trace_rate_wait,
)
from tests.support import Clock, customer_event
from tests.support.engine import ScriptedSink, deliver, due

pytest_plugins = ["tests.support.engine"]


@pytest.fixture
def store(redis_client: fakeredis.FakeRedis) -> TraceStore:
    return TraceStore(redis_client, Keys("t"), max_events=5, ttl_s=3600)


def test_each_record_keeps_its_newest_events_and_expires(store: TraceStore) -> None:
    store.write(("customers", "C1", {"at": float(i), "what": "sent"}) for i in range(8))
    store.write([("customers", "C2", {"at": 1.0, "what": "sent"})])
    found = store.read(["customers", "products"], "C1")
    assert list(found) == ["customers"], "a flow without events is left out"
    assert [e["at"] for e in found["customers"]] == [3.0, 4.0, 5.0, 6.0, 7.0]
    ttl = store.client.ttl(store.keys.trace("customers", "C1"))
    assert 3590 <= ttl <= 3600
    assert [e["at"] for e in store.read(["customers"], "C2")["customers"]] == [1.0]


def test_zero_max_events_writes_nothing(redis_client: fakeredis.FakeRedis) -> None:
    off = TraceStore(redis_client, Keys("t"), max_events=0)
    off.write([("customers", "C1", {"at": 1.0, "what": "sent"})])
    buffer = TraceBuffer(off)
    buffer.add("customers", "C1", {"at": 1.0, "what": "sent"})
    buffer.close()
    assert redis_client.keys("t:trace:*") == []


def test_detections_name_the_fields_a_change_touched() -> None:
    first = ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key="C1",
        operation="upsert",
        payload={"key": "C1", "name": "Acme", "email": "a@x", "custom": {"segment": "A"}},
        source_version=1,
    )
    second = first.model_copy(
        update={
            "payload": {"key": "C1", "name": "Acme Ltd", "custom": {"segment": "B"}},
            "source_version": 2,
        }
    )
    events = [detected_event(first, 1.0), detected_event(second, 2.0)]
    told = list(story(events))
    assert told[0]["changed"] is None
    assert told[1]["changed"] == ["custom.segment", "email", "name"]
    assert "fields" not in told[1], "hashes are not part of the story"
    assert "Acme" not in str(events), "no value is kept, only short hashes"
    assert describe(told[1]) == (
        f"change seen: upsert v2, fingerprint {second.fingerprint[:16]}, "
        "changed custom.segment, email, name"
    )
    assert changed_fields({"a": "1"}, {"a": "1"}) == []
    assert field_hashes({"a": {}}) == field_hashes({"a": {}}), "an empty object is a value"


def test_engine_retry_dead_letter_and_replay_are_told_in_order(
    engine: Engine, sink: ScriptedSink, clock: Clock, store: TraceStore
) -> None:
    store.max_events = 50
    buffer = TraceBuffer(store)
    engine.observers.append(engine_observer(buffer))
    sink.failures = [
        TransientError("busy", system="hipe", operation="update", status_code=503),
        PermanentError(
            "refused",
            system="hipe",
            operation="update",
            vendor_code="40005",
            status_code=400,
            hint="fix the record",
        ),
    ]
    ev = customer_event(parent=None)
    sink.parent_required = False
    assert deliver(engine, ev) == "parked"
    (again,) = due(engine, clock)
    assert engine.process(again) == "dead_lettered"
    replayed = Delivery(event=ev, target="hipe", replay_of="entry-1")
    assert engine.process(replayed) == "applied"
    buffer.close()
    told = list(story(store.read(["customers"], "C1")["customers"]))
    assert [e["what"] for e in told] == ["attempt_failed", "dead_lettered", "applied"]
    assert told[0]["status"] == 503
    assert told[0]["class"] == "transient"
    assert told[0]["attempt"] == 1
    assert told[0]["delay_s"] >= 0
    assert told[1]["code"] == "40005"
    assert told[1]["class"] == "permanent"
    assert told[2]["action"] == "created"
    assert told[2]["replay_of"] == "entry-1"
    assert describe(told[1]).startswith("dead-lettered: 40005 (permanent) HTTP 400: refused")
    assert describe(told[2]) == "applied: created (replay)"


def test_a_rate_limit_wait_goes_to_the_trace_of_the_delivery_being_applied(
    store: TraceStore,
) -> None:
    buffer = TraceBuffer(store)
    engine_observer(buffer)  # the process's buffer
    trace_rate_wait(1.234)  # no delivery bound: nothing to name
    structlog.contextvars.bind_contextvars(flow="customers", key="C7", target="hipe", attempt=2)
    try:
        trace_rate_wait(1.234)
    finally:
        structlog.contextvars.unbind_contextvars("flow", "key", "target", "attempt")
    buffer.close()
    (event,) = store.read(["customers"], "C7")["customers"]
    assert event["what"] == "waiting"
    assert event["reason"] == "rate limit"
    assert (event["target"], event["attempt"], event["delay_s"]) == ("hipe", 2, 1.23)
    assert describe(event) == "waited 1.23 s for the target's rate limit"
    assert store.client.keys("t:trace:*") == ["t:trace:customers:C7"]


def test_a_429_is_told_as_a_wait_the_target_asked_for_not_a_failed_attempt(
    engine: Engine, sink: ScriptedSink, store: TraceStore
) -> None:
    store.max_events = 50
    buffer = TraceBuffer(store)
    engine.observers.append(engine_observer(buffer))
    sink.failures = [
        TransientError(
            "slow down", system="hipe", operation="update", status_code=429, retry_after_s=3
        )
    ]
    sink.parent_required = False
    assert deliver(engine, customer_event(parent=None)) == "parked"
    buffer.close()
    (told,) = story(store.read(["customers"], "C1")["customers"])
    assert (told["what"], told["status"], told["attempt"]) == ("attempt_failed", 429, 0)
    assert describe(told).startswith("the target asked for a wait: http-429 (transient) HTTP 429")
    assert describe(told).endswith("next try in 3.0 s")
