"""Issue 17: a stream's lock is a lease. A live producer keeps it however long its poll
takes; one killed mid-poll leaves the stream to another within the lease (15 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import fakeredis
import pytest
from celery import Celery

from producers.base import Producer, SourceRecord
from state.keys import Keys
from tests.producers.test_snapshot_scan import ListStream, records

LEASE_S = 0.6


@dataclass
class SlowStream(ListStream):
    """Each page takes longer than the lease to read."""

    page_s: float = 1.5 * LEASE_S

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in super().pages():
            time.sleep(self.page_s)
            yield page


@pytest.fixture
def app() -> Iterator[Celery]:
    made = Celery("lease-test", broker="memory://", set_as_current=False)
    made.conf.task_serializer = "json"
    yield made
    made.close()


def producer(app: Celery, server: fakeredis.FakeServer) -> Producer:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    return Producer(app, client, Keys("lease"), lock_ttl_s=LEASE_S)


def test_the_default_lease_lets_another_producer_take_a_stream_over_within_15_s() -> None:
    assert Producer.lock_ttl_s == 15.0


def test_a_poll_longer_than_the_lease_keeps_its_stream(app: Celery) -> None:
    server = fakeredis.FakeServer()
    slow = SlowStream("c", "erp", "customer", ["propeller"], source_pages=[records("C1")] * 3)
    first = producer(app, server)
    polled = threading.Thread(target=first.poll, args=(slow,))
    polled.start()
    try:
        time.sleep(2 * LEASE_S)  # well past the lease, mid-poll
        other = producer(app, server).poll(
            ListStream("c", "erp", "customer", ["propeller"], source_pages=[records("C1")])
        )
        assert other.skipped == "another producer is polling this stream"
    finally:
        polled.join(timeout=30)
    assert slow.pages_read == 3


def test_a_producer_killed_mid_poll_leaves_the_stream_within_the_lease(app: Celery) -> None:
    server = fakeredis.FakeServer()
    survivor = producer(app, server)
    lock = survivor.keys.stream_lock("erp", "customer")
    # what a producer on another host leaves when killed: its lock, last renewed just now
    survivor.redis.set(lock, "elsewhere:4242:dead", px=int(LEASE_S * 1000))
    source = ListStream("c", "erp", "customer", ["propeller"], source_pages=[records("C1")])
    assert survivor.poll(source).skipped == "another producer is polling this stream"
    time.sleep(LEASE_S + 0.1)
    result = survivor.poll(source)
    assert result.skipped is None
    assert result.changed == 1
