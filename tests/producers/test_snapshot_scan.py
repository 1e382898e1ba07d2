"""The snapshot scan: changes and deletions found exactly, pages read ahead, failures raised.

The producer compares each page's fingerprints with the snapshot in one Redis call, reads
the next page while it does, and reads the whole snapshot back only when the scan saw fewer
of its keys than it holds (something was deleted). Each record is fingerprinted once; a
stream's unchecked records (a fast path) are confirmed by the stream only when changed. A
cursor stream's bookmark moves only once every event of the poll is enqueued.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from celery import Celery

from erpsync.events import Content
from producers.base import (
    CursorStream,
    Producer,
    Record,
    SnapshotStream,
    SourceRecord,
    UncheckedRecord,
)
from state.keys import Keys


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


def test_a_changed_record_is_serialised_and_fingerprinted_once(producer: Producer) -> None:
    @dataclass
    class PricedStream(ListStream):
        def pages(self) -> Iterator[list[SourceRecord]]:
            for page in self.source_pages:
                yield [
                    SourceRecord(str(r["key"]), {**r, "price": CountedDecimal("1.50")})
                    for r in page
                ]

    priced = PricedStream("customers", "erp", "customer", ["propeller"])
    priced.source_pages = [records("C1", "C2")]
    CountedDecimal.written = 0
    result = producer.poll(priced)
    assert result.events == 2
    assert CountedDecimal.written == 2, "one canonical text per record, reused by its event"


class CountedDecimal(Decimal):
    """A Decimal that counts how often the canonical encoder writes it."""

    written = 0

    def to_integral(self, *args: Any, **kwargs: Any) -> Decimal:
        type(self).written += 1
        return super().to_integral(*args, **kwargs)


@dataclass
class FastStream(SnapshotStream):
    """Pages of UncheckedRecords, their content assembled from the raw record, as a fast path.

    ``confirm`` reads a record as the stream's model would (here: the raw record as it is),
    and remembers which it was asked for; ``wrong`` lists keys whose fast content is wrong.
    """

    source_pages: list[list[dict[str, Any]]] = field(default_factory=list)
    wrong: set[str] = field(default_factory=set)
    confirmed: list[str] = field(default_factory=list)

    def pages(self) -> Iterator[Sequence[Record]]:
        for page in self.source_pages:
            yield [
                UncheckedRecord(
                    str(r["key"]),
                    Content.of("upsert", {**r, "wrong": True} if r["key"] in self.wrong else r),
                    r,
                )
                for r in page
            ]

    def confirm(self, records: list[UncheckedRecord]) -> list[SourceRecord]:
        self.confirmed.extend(r.key for r in records)
        return [SourceRecord(r.key, dict(r.raw), parent_key="P") for r in records]


def fast(*pages: list[dict[str, Any]], wrong: set[str] | None = None) -> FastStream:
    return FastStream(
        "customers",
        "erp",
        "customer",
        ["propeller"],
        source_pages=list(pages),
        wrong=wrong or set(),
    )


def published(producer: Producer) -> dict[str, Any]:
    """The events of the last flushes, by key (the ``latest`` hash: key → source version)."""
    return producer.redis.hgetall(producer.keys.latest("erp", "customer"))  # type: ignore[return-value]


def test_unchecked_records_are_confirmed_only_when_changed(producer: Producer) -> None:
    first = fast(records("C1", "C2"), records("C3", "C4"))
    assert producer.poll(first).events == 4
    assert sorted(first.confirmed) == ["C1", "C2", "C3", "C4"], "new records are confirmed"
    again = fast(records("C1") + records("C2", name="B"), records("C4"))
    result = producer.poll(again)
    assert again.confirmed == ["C2"], "unchanged records are never read by the model"
    assert (result.records, result.changed, result.deleted, result.events) == (3, 1, 1, 2)
    snapshot = producer.redis.hgetall(producer.keys.snapshot("erp", "customer"))
    assert snapshot["C2"] == Content.of("upsert", records("C2", name="B")[0]).fingerprint
    assert sorted(snapshot) == ["C1", "C2", "C4"]


def test_a_wrong_fast_content_neither_invents_nor_hides_a_change(producer: Producer) -> None:
    producer.poll(stream(records("C1", "C2", "C3")))
    before = producer.redis.hgetall(producer.keys.snapshot("erp", "customer"))
    producer.redis.delete(producer.keys.latest("erp", "customer"))
    # C1 unchanged but its fast content is wrong: confirmed, compared again, not published.
    # C2 changed, and its fast content is wrong too: published as confirmed.
    polled = fast(records("C1") + records("C2", name="B") + records("C3"), wrong={"C1", "C2"})
    result = producer.poll(polled)
    assert sorted(polled.confirmed) == ["C1", "C2"]
    assert (result.changed, result.events) == (1, 1)
    assert list(published(producer)) == ["C2"]
    after = producer.redis.hgetall(producer.keys.snapshot("erp", "customer"))
    assert after["C1"] == before["C1"]
    assert after["C2"] == Content.of("upsert", records("C2", name="B")[0]).fingerprint
    assert producer.poll(fast(records("C1", "C3") + records("C2", name="B"))).events == 0


@dataclass
class ListCursorStream(ListStream, CursorStream):
    """A cursor stream over pages set by the test; its bookmark is the pages it read."""

    loaded: list[str | None] = field(default_factory=list)
    #: what the producer had published when it asked for the bookmark
    published_when_asked: list[dict[str, Any]] = field(default_factory=list)
    producer: Producer | None = None

    def load_bookmark(self, bookmark: str | None) -> None:
        self.loaded.append(bookmark)

    def bookmark(self) -> str | None:
        assert self.producer is not None
        self.published_when_asked.append(published(self.producer))
        return f"read {self.pages_read} pages"


def test_the_bookmark_moves_only_after_every_event_is_enqueued(producer: Producer) -> None:
    producer.batch_size = 1
    cursor = producer.keys.cursor("erp", "customer")
    pages = [records("C1"), records("C2"), records("C3"), records("C4")]
    failing = ListCursorStream("customers", "erp", "customer", ["propeller"], source_pages=pages)
    failing.producer, failing.fail_after = producer, 3
    with pytest.raises(ConnectionError):
        producer.poll(failing)
    assert producer.redis.get(cursor) is None, "pages read ahead, then a failure: no bookmark"
    assert failing.published_when_asked == []
    whole = ListCursorStream("customers", "erp", "customer", ["propeller"], source_pages=pages)
    whole.producer = producer
    result = producer.poll(whole)
    assert result.events == 1, "C1 to C3 went out before the failure"
    assert "C4" in whole.published_when_asked[0], "C4 was enqueued before the bookmark"
    assert producer.redis.get(cursor) == "read 4 pages"
    again = ListCursorStream("customers", "erp", "customer", ["propeller"], source_pages=pages)
    again.producer = producer
    producer.poll(again)
    assert again.loaded == ["read 4 pages"]
