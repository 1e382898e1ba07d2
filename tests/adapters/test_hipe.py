"""The HIPE adapter against scripted answers (httpx.MockTransport): no network."""

from __future__ import annotations

import csv
import email.parser
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from adapters.hipe import (
    HipeClient,
    HipeCompany,
    HipeCompanyImportRow,
    HipeCompanyInput,
    HipeContactInput,
    HipeId,
    build_companies_csv,
    error_rows,
    hipe_id,
    neutralise_formula,
)
from erpsync.errors import (
    AmbiguousMatchError,
    AuthError,
    ErrorClass,
    PermanentError,
    RecordMissingError,
    SyncError,
    TransientError,
)
from erpsync.settings import HipeSettings

TOKEN = "hipe-unit-secret-4f9a1c"
BASE = "https://acme-hipe.packitoo.com"
BODY_MARKER = "BODY-MARKER-7731"
TRICKY_NAME = 'Dupont & Fils "Émballages" 100% +'

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make(
    handler: Handler,
    *,
    page_size: int = 2,
    fake_time: FakeTime | None = None,
    overrides: dict[str, ErrorClass] | None = None,
    **settings: Any,
) -> HipeClient:
    fake_time = fake_time or FakeTime()
    return HipeClient(
        httpx.Client(transport=httpx.MockTransport(handler)),
        HipeSettings(base_url=BASE, access_token=SecretStr(TOKEN), page_size=page_size, **settings),
        error_overrides=overrides,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


def company(company_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": company_id,
        "name": f"Company {company_id}",
        "externalId": f"C{company_id}",
        "archived": False,
        "createdAt": "2025-01-01T00:00:00.000Z",
        "updatedAt": "2025-01-02T00:00:00.000Z",
        **fields,
    }


def contact(contact_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": contact_id, "email": f"c{contact_id}@example.com", **fields}


def search_of(request: httpx.Request) -> Any:
    """The decoded JSON of the request's ``s`` parameter."""
    values = parse_qs(request.url.query.decode("ascii"), strict_parsing=True)["s"]
    assert len(values) == 1
    return json.loads(values[0])


# -- error classification -------------------------------------------------------------------


def _always(status: int, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"statusCode": status, "message": f"{BODY_MARKER} {TOKEN}", "error": "x"}
        return httpx.Response(status, json=body, headers=headers)

    return handler


def _raise(exc_type: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(f"{BODY_MARKER} {TOKEN}")

    return handler


OPERATIONS: dict[str, Callable[[HipeClient], object]] = {
    "find_company": lambda c: c.find_company("C1"),
    "search_companies": lambda c: c.search_companies_by_name("x"),
    "get_company": lambda c: c.get_company(1),
    "create_company": lambda c: c.create_company(HipeCompanyInput(name="A")),
    "update_company": lambda c: c.update_company(1, HipeCompanyInput(name="A")),
    "archive_company": lambda c: c.archive_company(1),
    "unarchive_company": lambda c: c.unarchive_company(1),
    "list_changed_companies": lambda c: list(
        c.iter_companies_changed_since(datetime(2025, 1, 1, tzinfo=UTC))
    ),
    "find_contact": lambda c: c.find_contact("P1"),
    "create_contact": lambda c: c.create_contact(HipeContactInput(email="a@b.c")),
    "update_contact": lambda c: c.update_contact(1, HipeContactInput(job="x")),
    "archive_contact": lambda c: c.archive_contact(1),
    "unarchive_contact": lambda c: c.unarchive_contact(1),
    "custom_field_nodes": lambda c: c.custom_field_nodes(),
    "check": lambda c: c.check(),
    "import_companies": lambda c: c.import_companies([HipeCompanyImportRow(external_id="C1")]),
}

RECORD_OPERATIONS = {
    "update_company",
    "archive_company",
    "unarchive_company",
    "update_contact",
    "archive_contact",
    "unarchive_contact",
}

STATUS_TABLE: list[tuple[int, type[SyncError], ErrorClass]] = [
    (400, PermanentError, ErrorClass.PERMANENT),
    (401, AuthError, ErrorClass.AUTH),
    (403, AuthError, ErrorClass.AUTH),
    (409, PermanentError, ErrorClass.PERMANENT),
    (422, PermanentError, ErrorClass.PERMANENT),
    (429, TransientError, ErrorClass.TRANSIENT),
    (500, TransientError, ErrorClass.TRANSIENT),
    (502, TransientError, ErrorClass.TRANSIENT),
    (503, TransientError, ErrorClass.TRANSIENT),
    (504, TransientError, ErrorClass.TRANSIENT),
]


def _assert_clean(exc: SyncError, operation: str) -> None:
    text = str(exc)
    assert operation in text
    assert TOKEN not in text
    assert BODY_MARKER not in text
    assert TOKEN not in repr(exc.to_dict())
    assert exc.system == "hipe"
    assert exc.operation == operation


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize(("status", "expected", "error_class"), STATUS_TABLE)
def test_every_status_maps_to_its_class_on_every_operation(
    operation: str, status: int, expected: type[SyncError], error_class: ErrorClass
) -> None:
    client = make(_always(status, {"Retry-After": "7"}))
    with pytest.raises(SyncError) as caught:
        OPERATIONS[operation](client)
    exc = caught.value
    assert type(exc) is expected
    assert exc.error_class is error_class
    assert exc.status_code == status
    assert f"HTTP {status}" in str(exc)
    _assert_clean(exc, operation)
    if error_class is ErrorClass.TRANSIENT:
        assert exc.retry_after_s == 7.0


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_404_is_record_missing_on_record_calls_none_on_get_and_permanent_elsewhere(
    operation: str,
) -> None:
    client = make(_always(404))
    if operation == "get_company":
        assert client.get_company(1) is None
        assert client.get_contact(1) is None
        return
    with pytest.raises(SyncError) as caught:
        OPERATIONS[operation](client)
    exc = caught.value
    if operation in RECORD_OPERATIONS:
        assert type(exc) is RecordMissingError
        assert exc.error_class is ErrorClass.CONFLICT
    else:
        assert type(exc) is PermanentError, "a 404 on a list is a wrong path, not a record"
    assert exc.status_code == 404
    _assert_clean(exc, operation)


@pytest.mark.parametrize(
    "exc_type",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.WriteError,
    ],
)
def test_transport_failures_are_transient(exc_type: type[Exception]) -> None:
    client = make(_raise(exc_type))
    with pytest.raises(TransientError) as caught:
        client.update_company(5, HipeCompanyInput(name="A"))
    assert isinstance(caught.value.__cause__, exc_type)
    _assert_clean(caught.value, "update_company")


def test_html_page_is_transient_and_wrong_shape_is_permanent() -> None:
    html = make(lambda r: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(TransientError):
        html.get_company(1)
    shape = make(lambda r: httpx.Response(200, json={"name": "no id"}))
    with pytest.raises(PermanentError, match="unexpected response shape"):
        shape.get_company(1)
    not_a_list = make(lambda r: httpx.Response(200, json={"rows": []}))
    with pytest.raises(PermanentError, match="unexpected response shape"):
        not_a_list.find_company("C1")


def test_configuration_overrides_the_class_of_a_row() -> None:
    client = make(_always(409), overrides={"http-409": ErrorClass.TRANSIENT})
    with pytest.raises(TransientError):
        client.create_company(HipeCompanyInput(name="A"))
    missing = make(_always(404), overrides={"record-missing": ErrorClass.PERMANENT})
    with pytest.raises(PermanentError) as caught:
        missing.archive_company(1)
    assert not isinstance(caught.value, RecordMissingError)


def test_error_rows_list_hipe_conditions_for_operators() -> None:
    rows = {row["match"]: row for row in error_rows()}
    assert rows["record-missing"]["class"] == "conflict"
    assert rows["ambiguous-external-id"]["class"] == "permanent"
    assert rows["import-status-7"]["class"] == "permanent"
    assert rows["import-timeout"]["class"] == "transient"
    assert rows["http-429"]["class"] == "transient"
    assert rows["http-401"]["class"] == "auth"
    assert all(row["system"] == "hipe" and row["hint"] for row in rows.values())


def test_token_travels_in_x_access_token_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 3, "email": "api@acme.test"})

    assert "api@acme.test" in make(handler).check()
    assert seen[0].headers["X-ACCESS-TOKEN"] == TOKEN
    assert seen[0].url.path == "/api/users/me"


# -- paging ----------------------------------------------------------------------------------


def _pager(pages: dict[int, Any], calls: list[dict[str, list[str]]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode("ascii"))
        calls.append(query)
        return httpx.Response(200, json=pages.get(int(query["page"][0]), []))

    return handler


def _envelope(ids: list[int], page: int, page_count: int, total: int) -> dict[str, Any]:
    return {
        "data": [company(i) for i in ids],
        "count": len(ids),
        "total": total,
        "page": page,
        "pageCount": page_count,
    }


def _changed(client: HipeClient) -> list[HipeId]:
    return [c.id for c in client.iter_companies_changed_since(datetime(2025, 1, 1, tzinfo=UTC))]


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


# -- search encoding -------------------------------------------------------------------------

AWKWARD = [
    TRICKY_NAME,
    "a+b c",
    "50% off & more=yes;#frag?x",
    "מפעל אריזות 🚀 ☃",
    "back\\slash 'single' \"double\"",
    "line\nbreak\ttab",
]


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


# -- ambiguity -------------------------------------------------------------------------------


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


# -- writes ----------------------------------------------------------------------------------


def test_create_posts_camel_case_and_patch_sends_only_what_was_set() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = 201 if request.method == "POST" else 200
        return httpx.Response(status, json=company(7, **json.loads(request.content)))

    client = make(handler)
    created = client.create_company(
        HipeCompanyInput(
            name=TRICKY_NAME, external_id="E1", parent_id=3, custom_fields={"tier": "gold"}
        )
    )
    assert created.id == 7
    assert created.name == TRICKY_NAME
    assert created.parent_id == 3
    assert json.loads(seen[0].content) == {
        "name": TRICKY_NAME,
        "externalId": "E1",
        "parentId": 3,
        "customFields": {"tier": "gold"},
    }
    assert (seen[0].method, seen[0].url.path) == ("POST", "/api/companies")
    client.update_company(7, HipeCompanyInput(email=None, phone="+33 1"))
    assert (seen[1].method, seen[1].url.path) == ("PATCH", "/api/companies/7")
    assert json.loads(seen[1].content) == {"email": None, "phone": "+33 1"}, (
        "None clears a field; unset fields are not sent; the JSON API does not add quotes"
    )


def test_archive_and_unarchive_use_the_documented_routes() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        archived = request.method == "DELETE"
        if "/users/" in request.url.path:
            return httpx.Response(200, json=contact(8, archived=archived))
        return httpx.Response(200, json=company(8, archived=archived))

    client = make(handler)
    assert client.archive_company(8).archived
    assert not client.unarchive_company(8).archived
    assert client.archive_contact(8).archived
    assert not client.unarchive_contact(8).archived
    assert seen == [
        ("DELETE", "/api/companies/8/archived"),
        ("GET", "/api/companies/8/unarchived"),
        ("DELETE", "/api/users/8/archived"),
        ("GET", "/api/users/8/unarchived"),
    ]


def test_contact_writes_use_users_routes() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.method, request.url.path, body))
        return httpx.Response(201, json=contact(5, **body))

    client = make(handler)
    made = client.create_contact(
        HipeContactInput(
            email="x@y.z", first_name="Zoé", external_id="P5", collaboration_ids=[1, 2]
        )
    )
    assert made.first_name == "Zoé"
    assert made.collaboration_ids == [1, 2]
    client.update_contact(5, HipeContactInput(job="CFO"))
    assert seen == [
        (
            "POST",
            "/api/users/contacts",
            {"email": "x@y.z", "firstName": "Zoé", "externalId": "P5", "collaborationIds": [1, 2]},
        ),
        ("PATCH", "/api/users/5", {"job": "CFO"}),
    ]


def test_create_without_a_name_fails_before_any_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=company(1))

    with pytest.raises(PermanentError, match="name"):
        make(handler).create_company(HipeCompanyInput(external_id="E1"))
    assert seen == []


def test_custom_field_nodes_are_read_with_their_options() -> None:
    nodes = [
        {
            "id": 1,
            "key": "tier",
            "label": "Tier",
            "type": "select",
            "options": [{"value": "gold", "label": "Gold"}],
            "metaEntityContexts": [{"metaEntity": {"name": "COMPANIES"}}],
        },
        {"id": 2, "key": "since", "type": "date"},
    ]
    client = make(lambda r: httpx.Response(200, json=nodes))
    got = client.custom_field_nodes()
    assert [n.key for n in got] == ["tier", "since"]
    assert got[0].options[0].value == "gold"
    assert got[1].options == []


# -- CSV -------------------------------------------------------------------------------------


def _parse_csv(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


def test_csv_quotes_delimiters_quotes_newlines_accents_and_emoji() -> None:
    rows = [
        HipeCompanyImportRow(external_id="E1", name=TRICKY_NAME, website="https://a.b/?x=1,2"),
        HipeCompanyImportRow(external_id="E2", name='Line one\nline two, "quoted" ; 🚀 מפעל'),
        HipeCompanyImportRow(
            external_id="E3", name="Plain", custom_fields={"tier": "gold", "vip": True, "n": 3}
        ),
    ]
    content = build_companies_csv(rows)
    parsed = _parse_csv(content)
    assert parsed[0] == [
        "externalId",
        "name",
        "website",
        "customFields.n",
        "customFields.tier",
        "customFields.vip",
    ]
    assert parsed[1] == ["E1", TRICKY_NAME, "https://a.b/?x=1,2", "", "", ""]
    assert parsed[2] == ["E2", 'Line one\nline two, "quoted" ; 🚀 מפעל', "", "", "", ""]
    assert parsed[3] == ["E3", "Plain", "", "3", "gold", "true"]
    assert content.startswith(b"externalId,name,"), "UTF-8 without a byte-order mark"
    assert '"Dupont & Fils ""Émballages"" 100% +"'.encode() in content


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+33 1 23 45 67 89", "'+33 1 23 45 67 89"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Acme = good", "Acme = good"),
        ("", ""),
        ("'already", "'already"),
    ],
)
def test_formula_cells_get_a_leading_quote(cell: str, expected: str) -> None:
    assert neutralise_formula(cell) == expected


def test_csv_neutralises_formulas_in_every_text_column_but_not_numbers() -> None:
    rows = [
        HipeCompanyImportRow(
            external_id="E1",
            name="=cmd|' /C calc'!A0",
            phone="+1 555",
            email="@me",
            custom_fields={"note": "-x", "score": -5},
        )
    ]
    parsed = _parse_csv(build_companies_csv(rows))
    header, row = parsed
    cells = dict(zip(header, row, strict=True))
    assert cells["name"] == "'=cmd|' /C calc'!A0"
    assert cells["phone"] == "'+1 555"
    assert cells["email"] == "'@me"
    assert cells["customFields.note"] == "'-x"
    assert cells["customFields.score"] == "-5", "a number cannot carry a formula"


# -- import ----------------------------------------------------------------------------------


def _multipart(request: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser().parsebytes(head + request.content)
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.get_payload():
        assert not isinstance(part, str)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        parts[name] = (part.get_filename(), payload)
    return parts


class ImportServer:
    """Answers POST /api/imports, then the scripted statuses on each GET."""

    def __init__(self, statuses: list[int], final: dict[str, Any] | None = None) -> None:
        self.statuses = statuses
        self.final = final or {}
        self.posts: list[httpx.Request] = []
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.url.path == "/api/imports"
            self.posts.append(request)
            return httpx.Response(201, json={"id": 42, "type": "16", "status": 1})
        assert request.url.path == "/api/imports/42"
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        extra = self.final if self.polls >= len(self.statuses) else {}
        return httpx.Response(200, json={"id": 42, "type": 16, "status": status, **extra})


def _rows(n: int) -> list[HipeCompanyImportRow]:
    return [HipeCompanyImportRow(external_id=f"E{i}", name=f"Name {i}") for i in range(1, n + 1)]


def test_import_posts_multipart_type_16_and_polls_to_success() -> None:
    final = {
        "total": 3,
        "processed": 3,
        "created": 1,
        "updated": 1,
        "errors": [{"row": 2, "externalId": "E2", "message": "email is invalid"}],
    }
    server = ImportServer([2, 2, 8], final)
    fake = FakeTime()
    client = make(server, fake_time=fake, import_poll_interval_s=0.5)
    result = client.import_companies(_rows(3))
    assert (result.status, result.total, result.created, result.updated) == (8, 3, 1, 1)
    assert result.import_id == 42
    assert result.failed_external_ids == ["E2"]
    assert result.errors[0].row == 2
    assert server.polls == 3
    assert fake.sleeps == [0.5, 0.5, 0.5]
    parts = _multipart(server.posts[0])
    assert parts["type"] == (None, b"16")
    assert parts["delimiter"] == (None, b",")
    filename, csv_bytes = parts["csv"]
    assert filename is not None
    assert _parse_csv(csv_bytes) == [
        ["externalId", "name"],
        ["E1", "Name 1"],
        ["E2", "Name 2"],
        ["E3", "Name 3"],
    ]
    row_error = client.import_row_error(result.errors[0])
    assert isinstance(row_error, PermanentError)
    assert "email is invalid" not in str(row_error)
    assert row_error.response_excerpt == "email is invalid"


def test_an_import_notified_by_email_sent_is_ended_with_its_result() -> None:
    """4 SENT: "the import result has been notified by email": the result is final."""
    final = {"total": 2, "processed": 2, "created": 2, "updated": 0, "errors": []}
    server = ImportServer([1, 2, 4], final)
    result = make(server, fake_time=FakeTime()).import_companies(_rows(2))
    assert (result.status, result.total, result.created, result.updated) == (4, 2, 2, 0)
    assert server.polls == 3, "no poll after SENT"


def test_import_row_errors_map_back_to_the_external_id_that_was_sent() -> None:
    rows = [
        HipeCompanyImportRow(external_id="E1", name="ok"),
        HipeCompanyImportRow(external_id="-neg", name="quoted by neutralisation"),
    ]
    final = {"errors": [{"row": 2, "externalId": "'-neg", "message": "bad"}, {"row": 9}]}
    result = make(ImportServer([8], final)).import_companies(rows)
    assert [e.external_id for e in result.errors] == ["-neg", None]


def test_import_crash_is_permanent_for_the_whole_import() -> None:
    fake = FakeTime()
    client = make(ImportServer([2, 7]), fake_time=fake)
    with pytest.raises(PermanentError) as caught:
        client.import_companies(_rows(2))
    exc = caught.value
    assert exc.vendor_code == "import-status-7"
    assert "import_companies" in str(exc)
    assert "status 7" in str(exc)
    assert len(fake.sleeps) == 2


def test_import_aborted_and_unknown_statuses_are_permanent() -> None:
    with pytest.raises(PermanentError) as aborted:
        make(ImportServer([2, 3], {"total": 3, "processed": 2})).import_companies(_rows(3))
    assert aborted.value.vendor_code == "import-status-3"
    assert "status 3 (ABORTED) after 2 of 3 rows" in str(aborted.value)
    assert aborted.value.hint == "the import was cancelled in HIPE; replay when it should run again"
    with pytest.raises(PermanentError) as unknown:
        make(ImportServer([5])).import_companies(_rows(1))
    assert unknown.value.vendor_code == "import-status-5"


def test_import_still_running_at_the_timeout_is_transient_and_stops_polling() -> None:
    fake = FakeTime()
    server = ImportServer([2])
    client = make(server, fake_time=fake, import_poll_interval_s=2, import_timeout_s=9)
    with pytest.raises(TransientError) as caught:
        client.import_companies(_rows(1))
    assert caught.value.vendor_code == "import-timeout"
    assert "import 42" in str(caught.value)
    assert fake.sleeps == [2, 2, 2, 2, 2]
    assert server.polls == 5
    assert fake.now - 1000.0 == 10


def test_import_sent_status_counts_as_done_and_empty_import_sends_nothing() -> None:
    result = make(ImportServer([4], {"created": 1, "updated": 0, "total": 1})).import_companies(
        _rows(1)
    )
    assert result.status == 4
    assert result.created == 1
    calls: list[httpx.Request] = []

    def nothing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    empty = make(nothing).import_companies([])
    assert (empty.total, empty.created, empty.updated, empty.errors) == (0, 0, 0, [])
    assert calls == []


def test_import_rejected_upload_is_classified() -> None:
    with pytest.raises(PermanentError):
        make(_always(400)).import_companies(_rows(1))


def test_hipe_ids_are_opaque_integers_stay_integers() -> None:
    """The ledger keeps ids as text: an integer HIPE's come back as numbers, UUIDs as text."""
    uuid_text = "00000001-5a2b-4c3d-8e4f-0123456789ab"
    assert (hipe_id("42"), hipe_id(42), hipe_id(uuid_text)) == (42, 42, uuid_text)
    assert hipe_id("007") == "007", "not an integer's canonical text: kept as it is"
    company = HipeCompany.model_validate({"id": uuid_text, "parentId": uuid_text, "name": "A"})
    assert (company.id, company.parent_id) == (uuid_text, uuid_text)
    numbered = HipeCompany.model_validate({"id": 7, "parentId": 3, "name": "B"})
    assert (numbered.id, numbered.parent_id) == (7, 3)
    assert HipeCompanyInput(parent_id=hipe_id("3")).to_json() == {"parentId": 3}
    assert HipeCompanyInput(parent_id=hipe_id(uuid_text)).to_json() == {"parentId": uuid_text}
