"""Issue 17: the contract between erpsync's leases and kombu's Redis layout (state.broker).

Real Redis, real kombu consumers: a message a consumer received and did not acknowledge is
in kombu's unacked records, its lease is renewed, reclaimed under a new delivery tag to the
head of its queue, and a late acknowledgement of the first holder deletes nothing of the
second's. These tests fail, in one place, when a kombu upgrade changes that layout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Consumer, Message, Queue

from erpsync.settings import Settings
from state.broker import KOMBU_LAYOUT, Unacked, held_by, kombu_version
from state.keys import Keys
from state.messages import create_app, queue_for


@pytest.fixture
def keys(run_id: str, request: pytest.FixtureRequest) -> Keys:
    return Keys(f"{run_id}broker{abs(hash(request.node.name)) % 10**8}")


@pytest.fixture
def client(redis_url: str, keys: Keys) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    for key in connection.scan_iter(match=f"{keys.prefix}:*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def app(redis_url: str, keys: Keys, client: redis.Redis) -> Iterator[Celery]:
    celery_app = create_app(Settings(redis_url=redis_url, key_prefix=keys.prefix))
    yield celery_app
    celery_app.close()


class Holder:
    """A kombu consumer of ``sync.hipe`` that takes messages and acknowledges none."""

    def __init__(self, app: Celery) -> None:
        self.connection: Connection = app.connection_for_read()
        channel: Any = self.connection.channel()
        channel.basic_qos(0, 10, False)
        self.channel = channel
        self.received: list[Message] = []
        queue = Queue(queue_for("hipe"), routing_key=queue_for("hipe"))
        self.consumer = Consumer(self.channel, [queue], callbacks=[self._on], accept=["json"])
        self.consumer.consume()
        # what state.broker.held_by reads on a Celery consumer
        self.task_consumer = self.consumer

    def _on(self, body: Any, message: Message) -> None:
        self.received.append(message)

    def take(self, count: int) -> list[Message]:
        while len(self.received) < count:
            self.connection.drain_events(timeout=5)
        taken, self.received = self.received[:count], self.received[count:]
        return taken

    def close(self) -> None:
        self.consumer.cancel()
        self.channel.do_restore = False  # leave the unacked records as a dead worker would
        self.connection.release()


def tag(message: Message) -> str:
    found = message.delivery_tag
    assert isinstance(found, str)
    return found


def send(app: Celery, body: str) -> None:
    """A message as erpsync's publishers send one (Celery's ``send_task``)."""
    app.send_task("sync.test", args=[body], queue=queue_for("hipe"), task_id=f"task-{body}")


def test_the_layout_is_the_one_this_code_was_written_for() -> None:
    assert kombu_version() == KOMBU_LAYOUT, (
        "kombu changed: check state.broker against its Redis transport, then move the pin"
    )


def test_a_held_message_is_renewed_reclaimed_under_a_new_tag_and_a_late_ack_harms_nothing(
    app: Celery, client: redis.Redis, keys: Keys
) -> None:
    for body in ("a", "b"):
        send(app, body)
    first = Holder(app)
    unacked = Unacked(app)
    try:
        taken = first.take(2)
        tags = [tag(m) for m in taken]
        assert held_by(first) == {tags[0]: "task-a", tags[1]: "task-b"}
        # kombu recorded both as delivered, unacknowledged, under erpsync's key prefix
        assert set(client.hkeys(f"{keys.prefix}:unacked")) == set(tags)
        held = unacked.held(tags)
        assert set(held) == set(tags)

        assert unacked.renew([tags[0]], now=held[tags[0]] + 100) == []
        assert unacked.held([tags[0]]) == {tags[0]: held[tags[0]] + 100}
        assert unacked.expired(held[tags[1]] + 1) == [tags[1]], "only b's lease lapsed"

        assert unacked.reclaim(tags[1]) == queue_for("hipe")
        assert unacked.reclaim(tags[1]) is None, "reclaimed once"
        assert unacked.renew(tags, now=held[tags[0]] + 200) == [tags[1]], "b is no longer held"

        second = Holder(app)
        try:
            (again,) = second.take(1)
            assert again.payload[0] == ["b"]
            assert again.headers["id"] == "task-b"
            assert tag(again) != tags[1], "a new tag"
            assert again.delivery_info["redelivered"] is True
            taken[1].ack()  # the first holder, back: its late acknowledgement
            assert client.hexists(f"{keys.prefix}:unacked", tag(again))
            assert unacked.held([tag(again)]), "the second holder's lease is intact"
        finally:
            second.close()
    finally:
        first.close()
        unacked.close()


def test_a_reclaimed_message_goes_to_the_head_of_its_queue(
    app: Celery, client: redis.Redis, keys: Keys
) -> None:
    send(app, "held")
    first = Holder(app)
    unacked = Unacked(app)
    try:
        (message,) = first.take(1)
        first.close()
        for body in ("x", "y"):
            send(app, body)
        assert unacked.reclaim(tag(message)) == queue_for("hipe")
        second = Holder(app)
        try:
            assert [m.payload[0] for m in second.take(3)] == [["held"], ["x"], ["y"]]
        finally:
            second.close()
    finally:
        unacked.close()


def test_every_worker_thread_checks_its_message_at_once_beyond_kombus_pool(app: Celery) -> None:
    """A worker's threads each renew their message's lease as their task starts, through
    the heartbeat's one Unacked: more at once than kombu's capped pool holds (10 by
    default) must wait for nothing and raise nothing (it raised MaxConnectionsError, and
    the failed tasks were acknowledged with their deliveries undone)."""
    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        "max_connections": 2,
    }
    unacked = Unacked(app)
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def check(n: int) -> None:
        start.wait()
        try:
            for _ in range(20):
                assert unacked.renew([f"tag-{n}"], now=1.0) == [f"tag-{n}"]  # none held
        except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=check, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    unacked.close()
    assert errors == []
    assert unacked.channel.client.connection_pool.max_connections == 2  # the cap was real
