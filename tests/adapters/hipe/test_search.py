"""The HIPE adapter's searches: external ids encoded exactly, and several live records with
one external id reported as ambiguous (httpx.MockTransport)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from erpsync.errors import (
    AmbiguousMatchError,
    ErrorClass,
)
from tests.support.hipe_api import AWKWARD, TRICKY_NAME, _pager, company, contact, make, search_of


@pytest.mark.parametrize("value", AWKWARD)
def test_find_company_sends_external_id_eq_json_that_decodes_exactly(value: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[company(9, externalId=value)])

    found = make(handler).find_company(value)
    assert found is not None
    assert found.external_id == value
    request = seen[0]
    assert request.method == "GET"
    assert request.url.path == "/api/companies"
    assert search_of(request) == {"externalId": {"$eq": value}}
    raw = request.url.query.decode("ascii")
    raw_s = dict(part.split("=", 1) for part in raw.split("&"))["s"]
    for char in '"& #\n\t':
        assert char not in raw_s, f"{char!r} reached the query unencoded"
    assert raw_s.count("+") == json.dumps(value, ensure_ascii=False).count(" ")
    assert set(parse_qs(raw)) == {"s", "limit", "page"}


def test_the_issue_name_is_encoded_byte_for_byte() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = make(handler)
    assert client.find_company(TRICKY_NAME) is None
    assert client.search_companies_by_name(TRICKY_NAME) == []
    find, search = seen
    find_s = dict(p.split("=", 1) for p in find.url.query.decode("ascii").split("&"))["s"]
    # quotes, ampersand, percent and plus are all percent-encoded; a space is "+"
    for encoded in ("%26", "%22", "%25", "%2B"):
        assert encoded in find_s
    assert "&" not in find_s
    assert '"' not in find_s
    assert search_of(find) == {"externalId": {"$eq": TRICKY_NAME}}
    assert search_of(search) == {"name": {"$contL": TRICKY_NAME}}
    assert parse_qs(search.url.query.decode("ascii"))["limit"] == ["5"]


def test_contacts_are_found_on_external_id_under_users_contacts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[contact(4, externalId="P&1")])

    found = make(handler).find_contact("P&1")
    assert found is not None
    assert found.id == 4
    assert seen[0].url.path == "/api/users/contacts"
    assert search_of(seen[0]) == {"externalId": {"$eq": "P&1"}}


def test_several_live_companies_with_one_external_id_are_ambiguous() -> None:
    client = make(
        lambda r: httpx.Response(200, json=[company(1), company(2, name="dup")]), page_size=10
    )
    with pytest.raises(AmbiguousMatchError) as caught:
        client.find_company("C1")
    exc = caught.value
    assert exc.error_class is ErrorClass.PERMANENT
    assert exc.hint == (
        "several HIPE companies have externalId C1; archive the duplicates, then replay"
    )
    assert "find_company" in str(exc)
    assert "1, 2" in str(exc)
    assert exc.vendor_code == "ambiguous-external-id"


def test_ambiguity_across_pages_is_still_ambiguous() -> None:
    pages = {1: [company(1), company(2)], 2: [company(3)]}
    with pytest.raises(AmbiguousMatchError):
        make(_pager(pages, [])).find_company("C1")


def test_archiving_duplicates_resolves_the_ambiguity() -> None:
    one_live = make(
        lambda r: httpx.Response(200, json=[company(1, archived=True), company(2)]),
        page_size=10,
    )
    found = one_live.find_company("C1")
    assert found is not None
    assert found.id == 2
    all_archived = make(
        lambda r: httpx.Response(200, json=[company(1, archived=True), company(2, archived=True)]),
        page_size=10,
    )
    with pytest.raises(AmbiguousMatchError):
        all_archived.find_company("C1")
    single_archived = make(
        lambda r: httpx.Response(200, json=[company(1, archived=True)]), page_size=10
    )
    found = single_archived.find_company("C1")
    assert found is not None
    assert found.archived, "an archived match is returned, so the sync can unarchive it"


def test_several_contacts_with_one_external_id_are_ambiguous() -> None:
    client = make(lambda r: httpx.Response(200, json=[contact(1), contact(2)]), page_size=10)
    with pytest.raises(AmbiguousMatchError) as caught:
        client.find_contact("P1")
    assert caught.value.hint is not None
    assert "several HIPE contacts have externalId P1" in caught.value.hint
