"""Status gathering (cli.services.status) on fakeredis, with messages as Celery and kombu
make them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from celery import Celery

from cli.services.status import StatusReader
from erpsync.errors import PermanentError
from erpsync.events import Delivery
from erpsync.settings import Settings
from state.broker import deliveries_of_message, queue_keys, unacked_key
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.messages import TASK_APPLY, queue_for
from state.store import State
from tests.support import delivery_of, make_event

NOW = 1_900_000_000.0
BATCH_TASK = "sync.apply_batch"


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def keys() -> Keys:
    return Keys("st")


@pytest.fixture
def settings() -> Settings:
    local = "http://127.0.0.1:9"
    data: dict[str, Any] = {
        "key_prefix": "st",
        "systems": {
            "onlineerp": {"base_url": local, "licence_code": "L", "secret": "s"},
            "propeller": {"base_url": local, "client_id": "c", "client_secret": "s"},
            "hipe": {"base_url": local, "access_token": "t"},
            "atollon": {"base_url": local, "instance": "i"},
        },
        "flows": {
            "customers": {
                "source": "onlineerp",
                "entity": "customer",
                "targets": ["propeller", "hipe"],
            },
            "products": {"source": "onlineerp", "entity": "product", "targets": ["atollon"]},
        },
    }
    return Settings(**data)


@pytest.fixture
def envelopes() -> Iterator[Celery]:
    """A Celery app on kombu's in-memory transport: it builds real message envelopes."""
    app = Celery("status-test", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        task_serializer="json",
        accept_content=["json"],
        task_create_missing_queues=True,
    )
    yield app
    app.close()


def delivery(key: str, target: str, age_s: float, flow: str = "customers") -> Delivery:
    event = make_event(
        {"key": key, "name": key},
        flow=flow,
        entity="customer" if flow == "customers" else "product",
        detected_at=datetime.fromtimestamp(NOW - age_s, UTC),
    )
    return delivery_of(event, target)


def envelope(app: Celery, d: Delivery) -> str:
    """The message Celery publishes for ``sync.apply`` of ``d``, as kombu's Redis stores it."""
    queue = queue_for(d.target)
    app.send_task(TASK_APPLY, args=[d.model_dump(mode="json")], queue=queue)
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        message = channel._get(queue)
    return json.dumps(message)


def test_a_message_envelope_gives_back_its_deliveries(envelopes: Celery) -> None:
    d = delivery("C1", "propeller", 5)
    assert deliveries_of_message(envelope(envelopes, d)) == [d.model_dump(mode="json")]
    batch = [delivery(f"C{i}", "propeller", 5) for i in range(3)]
    assert deliveries_of_message(batch_envelope(envelopes, batch)) == [
        b.model_dump(mode="json") for b in batch
    ]
    assert deliveries_of_message("not json") == []
    assert deliveries_of_message(json.dumps({"headers": {"task": "other"}, "body": ""})) == []


def batch_envelope(app: Celery, batch: list[Delivery]) -> str:
    """A batch message (many deliveries of one target for its bulk endpoint)."""
    queue = queue_for(batch[0].target)
    app.send_task(BATCH_TASK, args=[[d.model_dump(mode="json") for d in batch]], queue=queue)
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        message = channel._get(queue)
    return json.dumps(message)


def fill_a_busy_pipeline(client: fakeredis.FakeRedis, keys: Keys, envelopes: Celery) -> None:
    """Queues, a reserved message, parked deliveries, dead letters, circuits, counters and a
    poll, as the status test below reads them."""
    main_queue, priority_queue = queue_keys(keys, "propeller")[:2]
    assert main_queue == "st:sync.propeller"
    # propeller: 4 messages, 5 deliveries (one on a priority list, a batch of two);
    # the oldest change is 120 s old
    client.lpush(main_queue, envelope(envelopes, delivery("C1", "propeller", 120)))
    client.lpush(main_queue, envelope(envelopes, delivery("C2", "propeller", 30)))
    client.lpush(priority_queue, envelope(envelopes, delivery("C3", "propeller", 10)))
    batch = [delivery("B1", "propeller", 40), delivery("B2", "propeller", 20)]
    client.lpush(main_queue, batch_envelope(envelopes, batch))
    # hipe: one reserved by a worker (and in flight), two parked; the oldest is parked
    reserved = delivery("C4", "hipe", 50)
    client.hset(
        unacked_key(keys),
        "tag-1",
        json.dumps([json.loads(envelope(envelopes, reserved)), "", "sync.hipe"]),
    )
    client.hset(keys.inflight("hipe"), reserved.delivery_id, f"{NOW - 2:.3f}")
    state = State(client, keys)
    state.schedule(delivery("C5", "hipe", 600).model_dump(mode="json"), NOW + 30)
    state.schedule(delivery("C6", "hipe", 20).model_dump(mode="json"), NOW + 60)
    state.schedule(delivery("P1", "atollon", 5, flow="products").model_dump(mode="json"), NOW)
    # dead letters: propeller 40005 x2 and 10007 x1, hipe http-400 x1
    store = DeadLetterStore(client, keys)
    for key, target, code, http_status in [
        ("C7", "propeller", "40005", 400),
        ("C8", "propeller", "40005", 400),
        ("C9", "propeller", "10007", 400),
        ("C10", "hipe", None, 400),
    ]:
        error = PermanentError(
            "refused", system=target, operation="create", vendor_code=code, status_code=http_status
        )
        store.add(delivery(key, target, 900), error, now=NOW - 100)
    circuit = Circuit(client, keys)
    circuit.pause("hipe", "paused by alice")
    circuit.failure("propeller", "token refused", immediate=True, now=NOW)
    for outcome in ("produced", "produced", "applied"):
        state.incr("propeller", outcome)
    client.hset(
        keys.stream_state("onlineerp", "customer"),
        mapping={
            "flow": "customers",
            "last_poll_finished": f"{NOW - 5:.3f}",
            "last_records": "120",
            "last_changed": "7",
            "last_deleted": "1",
            "last_duration_s": "0.250",
            "last_error": "",
        },
    )
    client.hset(keys.snapshot("onlineerp", "customer"), mapping={"C1": "f1", "C2": "f2"})
    client.hset(keys.workers(), "erpsync-1@host", f"{NOW:.3f}")


def test_status_reports_queues_retries_lag_dlq_circuits_counters_and_polls(
    client: fakeredis.FakeRedis, keys: Keys, settings: Settings, envelopes: Celery
) -> None:
    fill_a_busy_pipeline(client, keys, envelopes)

    status = StatusReader(client, keys).gather(settings, now=NOW)

    targets = {t["name"]: t for t in status["targets"]}
    assert set(targets) == {"propeller", "hipe", "atollon"}
    propeller, hipe, atollon = targets["propeller"], targets["hipe"], targets["atollon"]
    assert (propeller["queue_depth"], propeller["reserved"], propeller["in_flight"]) == (4, 0, 0)
    assert propeller["queued_deliveries"] == 5, "a batch message carries two"
    assert propeller["scheduled_retries"] == 0
    assert propeller["lag_s"] == pytest.approx(120, abs=0.01)
    assert propeller["lag_exact"] is True
    assert propeller["dlq"] == {"10007": 1, "40005": 2}
    assert propeller["dlq_total"] == 3
    assert propeller["circuit"]["state"] == "open"
    assert propeller["circuit"]["reason"] == "token refused"
    assert propeller["counters"] == {"applied": 1, "produced": 2}
    assert (hipe["queue_depth"], hipe["reserved"], hipe["in_flight"]) == (0, 1, 1)
    assert hipe["scheduled_retries"] == 2
    assert hipe["lag_s"] == pytest.approx(600, abs=0.01), "the oldest waiting change is parked"
    assert hipe["dlq"] == {"http-400": 1}
    assert hipe["circuit"]["state"] == "paused"
    assert atollon["scheduled_retries"] == 1
    assert atollon["circuit"]["state"] == "closed"
    assert atollon["dlq"] == {}
    assert status["dlq_total"] == 4
    assert status["workers"] == ["erpsync-1@host"]

    flows = {f["name"]: f for f in status["flows"]}
    customers = flows["customers"]
    assert customers["stream"]["last_poll_age_s"] == 5.0
    assert customers["stream"]["last_records"] == 120
    assert customers["stream"]["last_changed"] == 7
    assert customers["stream"]["last_deleted"] == 1
    assert customers["stream"]["last_error"] is None
    assert customers["stream"]["snapshot_records"] == 2
    assert customers["targets"]["propeller"]["queued"] == 5
    assert customers["targets"]["propeller"]["dlq"] == {"10007": 1, "40005": 2}
    assert customers["targets"]["hipe"]["scheduled_retries"] == 2
    assert customers["targets"]["hipe"]["reserved"] == 1
    assert flows["products"]["targets"]["atollon"]["scheduled_retries"] == 1
    assert flows["products"]["stream"]["last_poll_finished"] is None, "never polled"
    json.dumps(status)  # JSON-ready as a whole


def test_lag_is_zero_and_depths_empty_when_nothing_waits(
    client: fakeredis.FakeRedis, keys: Keys, settings: Settings
) -> None:
    status = StatusReader(client, keys).gather(settings, now=NOW)
    for target in status["targets"]:
        assert (target["queue_depth"], target["scheduled_retries"], target["lag_s"]) == (0, 0, 0.0)
        assert target["oldest_unapplied_at"] is None
        assert target["circuit"]["state"] == "closed"


def test_a_large_queue_is_counted_exactly_and_scanned_up_to_the_limit(
    client: fakeredis.FakeRedis, keys: Keys, settings: Settings, envelopes: Celery
) -> None:
    raw: dict[int, str] = {}
    for age in (300, 200, 100):
        raw[age] = envelope(envelopes, delivery(f"C{age}", "propeller", age))
        client.lpush(queue_keys(keys, "propeller")[0], raw[age])
    status: dict[str, Any] = StatusReader(client, keys, queue_scan_limit=2).gather(
        settings, now=NOW
    )
    propeller = next(t for t in status["targets"] if t["name"] == "propeller")
    assert propeller["queue_depth"] == 3
    assert propeller["lag_exact"] is False
    assert propeller["lag_s"] == pytest.approx(300, abs=0.01), "the oldest are at the tail"


def test_status_shows_each_flows_last_reconcile(
    client: fakeredis.FakeRedis, keys: Keys, settings: Settings
) -> None:
    summary = {
        "flow": "customers",
        "finished_at": NOW - 90,
        "duration_s": 12.5,
        "source_records": 3,
        "targets": {
            "propeller": {"checked": 3, "in_sync": 2, "missing": 1, "different": 0,
                          "orphaned": 0, "duplicates": 0, "invalid_source": 0},
            "hipe": {"checked": 0, "not_checked": "circuit open"},
        },
    }  # fmt: skip
    client.set(keys.reconcile_last("customers"), json.dumps({"summary": summary}))
    failed = {
        "flow": "products",
        "finished_at": NOW - 5,
        "error": "reading onlineerp.product failed",
    }
    client.set(keys.reconcile_last("products"), json.dumps({"summary": failed}))
    flows = {f["name"]: f for f in StatusReader(client, keys).gather(settings, now=NOW)["flows"]}
    customers = flows["customers"]["reconcile"]
    assert customers["age_s"] == 90.0
    assert customers["duration_s"] == 12.5
    assert customers["source_records"] == 3
    assert customers["error"] is None
    assert customers["targets"] == summary["targets"]
    products = flows["products"]["reconcile"]
    assert (products["age_s"], products["error"]) == (5.0, "reading onlineerp.product failed")
    assert products["targets"] == {}
    client.delete(keys.reconcile_last("products"))
    again = StatusReader(client, keys).gather(settings, now=NOW)["flows"]
    assert [f["reconcile"] is None for f in again] == [False, True], "never reconciled: None"
