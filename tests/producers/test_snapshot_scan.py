"""The snapshot scan: changes and deletions found exactly, pages read ahead, failures raised.

The producer compares each page's fingerprints with the snapshot in one Redis call, reads
the next page while it does, and reads the whole snapshot back only when the scan saw fewer
of its keys than it holds (something was deleted).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
from celery import Celery

from erpsync.keys import Keys
from producers.base import Producer, SnapshotStream, SourceRecord


@dataclass
class ListStream(SnapshotStream):
    """A source whose pages are set by the test; it can fail after some pages."""

    source_pages: list[list[dict[str, Any]]] = field(default_factory=list)
    fail_after: int | None = None
    pages_read: int = 0

    def pages(self) -> Iterator[list[SourceRecord]]:
        for number, page in enumerate(self.source_pages):
            if self.fail_after is not None and number >= self.fail_after:
                raise ConnectionError("the source went away")
            self.pages_read += 1
            yield [SourceRecord(str(r["key"]), r) for r in page]


class CountingRedis(fakeredis.FakeRedis):
    """Counts HSCAN calls (the whole-snapshot read the scan avoids when nothing vanished)."""

    hscans = 0

    def hscan(self, *args: Any, **kwargs: Any) -> Any:
        type(self).hscans += 1
        return super().hscan(*args, **kwargs)


@pytest.fixture
def producer() -> Iterator[Producer]:
    app = Celery("scan-test", broker="memory://", set_as_current=False)
    app.conf.task_serializer = "json"
    CountingRedis.hscans = 0
    yield Producer(app, CountingRedis(decode_responses=True), Keys("scan"))
    app.close()


def records(*keys: str, name: str = "A") -> list[dict[str, Any]]:
    return [{"key": k, "name": f"{name} {k}"} for k in keys]


def stream(*pages: list[dict[str, Any]]) -> ListStream:
    return ListStream("customers", "erp", "customer", ["propeller"], source_pages=list(pages))


def test_first_poll_sends_everything_and_the_next_nothing(producer: Producer) -> None:
    pages = (records("C1", "C2"), records("C3"))
    first = producer.poll(stream(*pages))
    assert (first.records, first.changed, first.deleted, first.deliveries) == (3, 3, 0, 3)
    again = producer.poll(stream(*pages))
    assert (again.records, again.changed, again.deleted, again.events) == (3, 0, 0, 0)
    assert CountingRedis.hscans == 0, "nothing vanished: the snapshot is not read back"


def test_a_change_and_a_deletion_are_found_exactly(producer: Producer) -> None:
    producer.poll(stream(records("C1", "C2"), records("C3", "C4")))
    changed = records("C1") + records("C2", name="B")
    result = producer.poll(stream(changed, records("C4")))
    assert (result.changed, result.deleted, result.events) == (1, 1, 2)
    assert CountingRedis.hscans >= 1
    snapshot = producer.redis.hkeys(producer.keys.snapshot("erp", "customer"))
    assert sorted(snapshot) == ["C1", "C2", "C4"]


def test_a_key_read_twice_does_not_hide_a_deletion(producer: Producer) -> None:
    producer.poll(stream(records("C1", "C2"), records("C3")))
    # The source shifted between pages: C2 comes twice, C3 is gone; as many keys as before.
    result = producer.poll(stream(records("C1", "C2"), records("C2")))
    assert (result.records, result.changed, result.deleted) == (3, 0, 1)


def test_a_source_failure_is_raised_and_moves_nothing(producer: Producer) -> None:
    producer.poll(stream(records("C1"), records("C2")))
    broken = stream(records("C1", name="B"), records("C2", name="B"), records("C3"))
    broken.fail_after = 2
    with pytest.raises(ConnectionError):
        producer.poll(broken)
    state = producer.redis.hgetall(producer.keys.stream_state("erp", "customer"))
    assert "the source went away" in state["last_error"]
    again = producer.poll(stream(records("C1", name="B"), records("C2", name="B")))
    assert again.changed == 2, "the failed poll published nothing and left the snapshot"
