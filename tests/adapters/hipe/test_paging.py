"""The HIPE adapter's reads page by page: envelopes and bare arrays, stop conditions, servers
that ignore the page, changed-since and by-id reads (httpx.MockTransport)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx
import pytest

from erpsync.errors import (
    PermanentError,
)
from tests.support.hipe_api import _changed, _envelope, _pager, company, make, search_of


def test_envelope_paging_stops_at_page_count() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {
        1: _envelope([1, 2], 1, 3, 5),
        2: _envelope([3, 4], 2, 3, 5),
        3: _envelope([5], 3, 3, 5),
    }
    assert _changed(make(_pager(pages, calls))) == [1, 2, 3, 4, 5]
    assert [c["page"] for c in calls] == [["1"], ["2"], ["3"]]
    assert all(c["limit"] == ["2"] for c in calls)


def test_envelope_paging_stops_at_page_count_even_on_a_full_last_page() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {1: _envelope([1, 2], 1, 2, 4), 2: _envelope([3, 4], 2, 2, 4)}
    assert _changed(make(_pager(pages, calls))) == [1, 2, 3, 4]
    assert len(calls) == 2


def test_envelope_paging_stops_on_an_empty_page() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {1: _envelope([1, 2], 1, 9, 18), 2: _envelope([], 2, 9, 18)}
    assert _changed(make(_pager(pages, calls))) == [1, 2]
    assert len(calls) == 2


def test_empty_envelope_yields_nothing_in_one_call() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {1: _envelope([], 1, 1, 0)}
    assert _changed(make(_pager(pages, calls))) == []
    assert len(calls) == 1


def test_bare_array_paging_stops_on_a_short_page() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {1: [company(1), company(2)], 2: [company(3), company(4)], 3: [company(5)]}
    assert _changed(make(_pager(pages, calls))) == [1, 2, 3, 4, 5]
    assert len(calls) == 3


def test_bare_array_paging_stops_on_an_empty_page() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {1: [company(1), company(2)], 2: [company(3), company(4)], 3: []}
    assert _changed(make(_pager(pages, calls))) == [1, 2, 3, 4]
    assert len(calls) == 3


def test_record_moving_between_pages_is_yielded_once() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {1: [company(1), company(2)], 2: [company(2), company(3)], 3: []}
    assert _changed(make(_pager(pages, calls))) == [1, 2, 3]


def test_server_ignoring_page_is_an_error_not_an_endless_loop() -> None:
    calls: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append({})
        return httpx.Response(200, json=[company(1), company(2)])

    with pytest.raises(PermanentError, match="repeated"):
        _changed(make(handler))
    assert len(calls) == 2


def test_changed_since_query_filters_on_updated_at_sorted_and_paged() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    paris = timezone(timedelta(hours=2))
    since = datetime(2025, 3, 4, 14, 5, 6, 789_999, tzinfo=paris)
    assert list(make(handler).iter_companies_changed_since(since)) == []
    request = seen[0]
    assert request.url.path == "/api/companies"
    assert search_of(request) == {"updatedAt": {"$gte": "2025-03-04T12:05:06.789Z"}}
    query = parse_qs(request.url.query.decode("ascii"))
    assert query["sort"] == ["updatedAt,ASC", "id,ASC"]
    assert query["page"] == ["1"]
    with pytest.raises(ValueError, match="timezone"):
        list(make(handler).iter_companies_changed_since(datetime(2025, 1, 1)))


def test_company_pages_list_those_with_an_external_id_by_id_each_page_whole() -> None:
    calls: list[dict[str, list[str]]] = []
    pages = {
        1: _envelope([1, 2], 1, 2, 3),
        2: {**_envelope([3], 2, 2, 3), "data": [company(3), company(4, externalId="C3")]},
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _pager(pages, calls)(request)

    got = [[c.id for c in page] for page in make(handler).iter_company_pages()]

    assert got == [[1, 2], [3, 4]], "pages as they come, duplicates of an id included"
    assert search_of(seen[0]) == {"externalId": {"$notnull": True}}
    assert all(c["sort"] == ["id,ASC"] and c["limit"] == ["2"] for c in calls)
    assert [c["page"] for c in calls] == [["1"], ["2"]]


def test_company_pages_stop_a_server_that_ignores_the_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[company(1), company(2)])

    with pytest.raises(PermanentError, match="repeated"):
        list(make(handler).iter_company_pages())


def test_companies_by_ids_is_one_in_search_and_none_for_no_ids() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[company(7), company(3)])

    client = make(handler, page_size=10)
    assert client.companies_by_ids([]) == []
    assert seen == [], "nothing to ask"
    assert [c.id for c in client.companies_by_ids({7, 3, 9})] == [7, 3]
    assert search_of(seen[0]) == {"id": {"$in": [3, 7, 9]}}
