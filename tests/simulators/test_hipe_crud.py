"""HIPE's nestjsx/crud query language against queries recorded from the real library.

``tests/fixtures/nestjsx/queries.json`` was written by ``record.mjs``: npm
``@nestjsx/crud-request``'s ``RequestQueryBuilder`` built the query strings, Express's query
parser (``qs``) and the library's own ``RequestQueryParser`` recorded what a NestJS server
understands. Each query is sent verbatim over HTTP to the simulator, which must parse it the
same way and return exactly the records those conditions select from the data set below
(expected ids stated by hand, one example at a time).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.hipe import HipeSimulator
from simulators.hipe._js import JsDate
from simulators.hipe._qs import parse_query_string
from simulators.hipe.crud import ParsedRequest, QueryFilter
from simulators.server import RunningSandbox, SandboxEndpoint

TOKEN = "sandbox-token"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "nestjsx" / "queries.json"
RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
EXAMPLES: dict[str, dict[str, Any]] = {e["name"]: e for e in RECORDED["examples"]}

# The data set: created in this order, so company N has id N.
COMPANIES: list[dict[str, Any]] = [
    {"name": "Acme Packaging", "externalId": "C001", "email": "contact@acme.test", "vat": "FR01"},
    {"name": "ACME Boxes & Co", "externalId": "C002", "parentId": 1},
    {"name": "Café Ünïcode ☕", "externalId": 'C&D "Q" 50%+1'},
    {"name": "Beta 50% Off", "externalId": "C004", "vat": "FR04"},
    {"name": "Gamma+Plus"},
    {"name": 'Delta "Quoted"', "externalId": "C006", "website": "https://delta.test/?a=1&b=2"},
    {"name": "Élan Vital", "externalId": "C007"},
    {"name": "Zeta 🚀 Rockets", "externalId": "C008", "phone": "+33 1 23 45 67 89"},
    {"name": "acme lowercase", "externalId": "C009"},  # archived below
    {"name": "Omega_Under", "externalId": "C001"},  # the same externalId as company 1
    {"name": "Beta5X Off", "externalId": "C011", "parentId": 4},
    {"name": "Under_score", "externalId": "C012", "website": "https://under.test"},
]
ARCHIVED = 9

# What each recorded query selects, by id, in the order returned: a list for a bare array,
# {"ids", "count", "total", "page", "pageCount"} for the paginated envelope, or the 400 message.
EXPECTED: dict[str, Any] = {
    "contL_guide_lookup": [1, 2, 9],
    "eq_external_id_with_quotes_ampersand_percent_plus": [3],
    "primitive_is_eq_and_duplicates_are_kept": [1, 10],
    "in_external_ids": [2, 7],
    # Élan sorts after Zeta by code point ("É" is U+00C9), so first when descending.
    "or_accents_notnull_sorted": [7, 8],
    "and_nested_or": [4],
    "field_level_or": [1, 2],
    "null_is_isnull_emoji_eq": [5, 8],
    "filters_are_anded": [1, 4],
    "ors_are_ored": [4, 8],
    "one_filter_or_one_or": [4, 5],
    # (name ~ acme AND not archived) OR (id >= 11 AND website IS NULL)
    "several_filters_or_several_ors": [1, 2, 11],
    # vat DESC puts NULLs first (Postgres), then FR04, FR01; page 2 of 3 per page
    "sort_twice_limit_page_envelope": {
        "ids": [6, 7, 8],
        "count": 3,
        "total": 12,
        "page": 2,
        "pageCount": 4,
    },
    "limit_offset_envelope": {
        "ids": [9, 10, 11, 12],
        "count": 4,
        "total": 12,
        "page": 3,
        "pageCount": 3,
    },
    "fields_and_between": [2, 3],
    "legacy_operator_names": [11],
    # '%' from the value is a LIKE wildcard: "a…Off" matches both Beta names
    "like_wildcards_in_values_stay_wildcards": [4, 11],
    # LOWER(name) = 'ACME Boxes & Co' can never hold
    "eqL_lowers_the_column_not_the_value": [],
    "date_value_in_filter": [1, 2],
    "ne_never_matches_null": [4],
    "raw_plus_is_a_space": [],
    "raw_encoded_plus_is_a_plus": [5],
    "raw_repeated_plain_keys": [2],
    "raw_per_page_alias": {"ids": [5, 6], "count": 2, "total": 12, "page": 3, "pageCount": 6},
    "raw_search_wins_over_filter": [3],
    "raw_malformed_escape_kept_as_sent": [4],
    "raw_bracket_indexes_order_values": [9],
    "raw_between_in_filter": [3, 4, 5],
    "raw_big_number_stays_a_string": [],
    "raw_decimal_with_trailing_zero_stays_a_string": [],
    "raw_bad_sort_order": "Invalid sort order. ASC,DESC expected",
    "raw_bad_limit": "Invalid limit. Number expected",
    "raw_bad_page": "Invalid page. Number expected",
    "raw_bad_search_json": "Invalid search param. JSON expected",
    "raw_bad_filter_operator": EXAMPLES["raw_bad_filter_operator"].get("error"),
    "raw_empty_in_value": "Invalid filter value",
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[HipeSimulator, SandboxEndpoint]]:
    simulator = HipeSimulator()
    with (
        RunningSandbox(simulators={"hipe": simulator}) as running,
        httpx.Client(
            base_url=running.endpoints["hipe"].url, headers={"X-ACCESS-TOKEN": TOKEN}, timeout=30
        ) as client,
    ):
        for expected_id, company in enumerate(COMPANIES, start=1):
            made = client.post("/api/companies", json=company)
            assert made.status_code == 201, made.text
            assert made.json()["id"] == expected_id
        assert client.delete(f"/api/companies/{ARCHIVED}/archived").status_code == 200
        yield simulator, running.endpoints["hipe"]


def send_verbatim(endpoint: SandboxEndpoint, path_and_query: str) -> tuple[int, Any]:
    """GET exactly these bytes (httpx would re-encode the query string)."""
    connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    try:
        connection.request("GET", path_and_query, headers={"X-ACCESS-TOKEN": TOKEN})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def library_form(value: Any) -> Any:
    """A parsed value as record.mjs writes it (Dates marked as {"$date": iso})."""
    if isinstance(value, JsDate):
        return {"$date": value.iso()}
    if isinstance(value, list):
        return [library_form(item) for item in value]
    if isinstance(value, dict):
        return {k: library_form(v) for k, v in value.items()}
    return value


def _conditions(conditions: list[QueryFilter]) -> list[dict[str, Any]]:
    return [
        {"field": c.field, "operator": c.operator, "value": library_form(c.value)}
        for c in conditions
    ]


def as_recorded(parsed: ParsedRequest) -> dict[str, Any]:
    """The simulator's parse in the shape of the library's ``getParsed()``."""
    body = parsed.to_json()
    body["filter"] = _conditions(parsed.filter)
    body["or"] = _conditions(parsed.or_)
    if parsed.search is not None:
        body["search"] = library_form(parsed.search)
    return body


def test_the_fixture_was_recorded_from_the_library() -> None:
    assert RECORDED["recordedWith"]["@nestjsx/crud-request"] == "4.6.2"
    assert set(EXAMPLES) == set(EXPECTED), "every recorded example has a stated outcome"
    assert any("builder" in e for e in RECORDED["examples"])


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_query_string_decoding_matches_express(name: str) -> None:
    example = EXAMPLES[name]
    assert parse_query_string(example["query"]) == example["qs"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_recorded_query_parses_and_selects_as_the_library_says(
    served: tuple[HipeSimulator, SandboxEndpoint], name: str
) -> None:
    simulator, endpoint = served
    example = EXAMPLES[name]
    expected = EXPECTED[name]
    before = simulator.last_parsed
    status, body = send_verbatim(endpoint, "/api/companies?" + example["query"])

    if "error" in example:
        assert status == 400
        assert body == {"statusCode": 400, "message": example["error"], "error": "Bad Request"}
        assert body["message"] == expected
        return

    assert status == 200, body
    parsed = simulator.last_parsed
    assert parsed is not None
    assert parsed is not before, "this request's own parse"
    assert as_recorded(parsed) == example["parsed"]
    if isinstance(expected, dict):
        assert isinstance(body, dict), "page or offset with a limit answers the envelope"
        assert [r["id"] for r in body["data"]] == expected["ids"]
        assert {k: body[k] for k in ("count", "total", "page", "pageCount")} == {
            k: expected[k] for k in ("count", "total", "page", "pageCount")
        }
    else:
        assert isinstance(body, list), "without page/offset the answer is a bare array"
        assert [r["id"] for r in body] == expected


def test_fields_select_columns_and_always_the_id(
    served: tuple[HipeSimulator, SandboxEndpoint],
) -> None:
    _, endpoint = served
    status, body = send_verbatim(
        endpoint, "/api/companies?" + EXAMPLES["fields_and_between"]["query"]
    )
    assert status == 200
    assert body == [
        {"id": 2, "name": "ACME Boxes & Co", "externalId": "C002"},
        {"id": 3, "name": "Café Ünïcode ☕", "externalId": 'C&D "Q" 50%+1'},
    ]


def _get(endpoint: SandboxEndpoint, params: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=endpoint.url, headers={"X-ACCESS-TOKEN": TOKEN}) as client:
        return client.get("/api/companies", params=params)


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


def _search(condition: Any) -> dict[str, str]:
    return {"s": json.dumps(condition, ensure_ascii=False)}


def test_every_operator_on_the_data_set(served: tuple[HipeSimulator, SandboxEndpoint]) -> None:
    _, endpoint = served
    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({"id": {"$eq": 3}}, [3]),
        ({"id": {"$ne": 3}, "parentId": {"$notnull": True}}, [2, 11]),
        ({"id": {"$gt": 10}}, [11, 12]),
        ({"id": {"$lt": 3}}, [1, 2]),
        ({"id": {"$gte": 11}}, [11, 12]),
        ({"id": {"$lte": 2}}, [1, 2]),
        ({"name": {"$starts": "Beta"}}, [4, 11]),
        ({"name": {"$ends": "Off"}}, [4, 11]),
        ({"name": {"$cont": "Under"}}, [10, 12]),
        ({"name": {"$excl": "e"}, "id": {"$lte": 5}}, [5]),
        ({"externalId": {"$in": ["C004", "C006"]}}, [4, 6]),
        ({"externalId": {"$notin": ["C001", "C002", "C004"]}, "id": {"$lt": 8}}, [3, 6, 7]),
        ({"externalId": {"$isnull": True}}, [5]),
        ({"vat": {"$notnull": True}}, [1, 4]),
        ({"id": {"$between": [4, 6]}}, [4, 5, 6]),
        ({"name": {"$eqL": "acme packaging"}}, [1]),
        ({"name": {"$neL": "acme packaging"}, "id": {"$lte": 2}}, [2]),
        ({"name": {"$startsL": "ACME"}}, [1, 2, 9]),
        ({"name": {"$endsL": "ROCKETS"}}, [8]),
        ({"name": {"$contL": "ÉLAN"}}, [7]),
        ({"name": {"$exclL": "a"}}, [12]),
        ({"externalId": {"$inL": ["c001", "C002"]}}, [1, 10]),
        ({"externalId": {"$notinL": ["c001"]}, "id": {"$lte": 4}}, [2, 3, 4]),
        ({"name": {"eq": "Gamma+Plus"}}, [5]),
        ({"name": {"cont": "Rocket"}}, [8]),
        ({"archived": True}, [9]),
        ({"archived": {"$eq": "yes"}}, [9]),
        ({"id": {"$eq": "3"}}, [3]),
        ({"$and": [{"id": {"$gte": 2}}, {"id": {"$lte": 3}}]}, [2, 3]),
        ({"$or": [{"id": 1}, {"id": 12}], "vat": {"$notnull": True}}, [1]),
        ({"name": {"$cont": "_"}}, list(range(1, 13))),  # '_' is LIKE's any-one-character
        # crud-typeorm reads only "$and" when it is there: the other keys are ignored
        ({"$and": [{"id": 1}], "id": 2}, [1]),
        ({"$and": [{"id": {"$lte": 2}}], "$or": [{"id": 2}]}, [1, 2]),
        ({}, list(range(1, 13))),
    ]
    for condition, expected in cases:
        assert _ids(_get(endpoint, _search(condition))) == expected, condition


def test_or_nested_in_or_applies_the_library_s_own_precedence(
    served: tuple[HipeSimulator, SandboxEndpoint],
) -> None:
    """Inside an ``$or`` item, crud-typeorm ORs the operators of one field (a known quirk)."""
    _, endpoint = served
    condition = {"$or": [{"id": {"$gte": 11, "$lte": 2}}, {"id": 5}]}
    assert _ids(_get(endpoint, _search(condition))) == [1, 2, 5, 11, 12]
    assert _ids(_get(endpoint, _search({"id": {"$gte": 11, "$lte": 2}}))) == []


def test_search_values_survive_query_string_encoding(
    served: tuple[HipeSimulator, SandboxEndpoint],
) -> None:
    _, endpoint = served
    for company_id, company in enumerate(COMPANIES, start=1):
        hits = _ids(_get(endpoint, _search({"name": {"$eq": company["name"]}})))
        assert hits == [company_id], company["name"]
    awkward = COMPANIES[2]["externalId"]
    assert _ids(_get(endpoint, _search({"externalId": awkward}))) == [3]
    assert _ids(_get(endpoint, {"filter": f"externalId||$eq||{awkward}"})) == [3]


def test_query_errors_use_nestjs_bodies(served: tuple[HipeSimulator, SandboxEndpoint]) -> None:
    _, endpoint = served

    def error(params: dict[str, Any]) -> tuple[int, Any]:
        response = _get(endpoint, params)
        return response.status_code, response.json()

    bad_operator = error(_search({"name": {"$like": "x"}}))
    assert bad_operator[0] == 400
    assert bad_operator[1]["message"].startswith("Invalid comparison operator. eq,ne,")
    assert error(_search({"externalId": {"$in": "C001"}})) == (
        400,
        {"statusCode": 400, "message": "Invalid column 'externalId' value", "error": "Bad Request"},
    )
    assert error(_search({"id": {"$between": [1]}}))[1]["message"] == "Invalid column 'id' value"
    assert error({"s": "[1"})[1]["message"] == "Invalid search param. JSON expected"
    assert error({"s": "null"})[1]["message"] == "Invalid search param. JSON expected"
    assert error({"offset": "x"})[1]["message"] == "Invalid offset. Number expected"
    assert error({"sort": "name"})[1]["message"] == "Invalid sort order. ASC,DESC expected"
    assert error({"sort": ",ASC"})[1]["message"] == "Invalid sort field. String expected"
    assert error({"filter": "||$eq||x"})[1]["message"] == (
        "Invalid field type in filter condition. String expected"
    )
    assert error({"or": "name||$eq"})[1]["message"] == "Invalid or value"
    assert error({"join": "||a"})[1]["message"] == "Invalid join field. String expected"
    assert error({"sort": "na'me,ASC"}) == (
        400,
        {
            "statusCode": 400,
            "message": 'SQL injection detected: "Company.na\'me"',
            "error": "Bad Request",
        },
    )


def test_what_the_database_refuses_is_a_500(served: tuple[HipeSimulator, SandboxEndpoint]) -> None:
    _, endpoint = served
    internal = {"statusCode": 500, "message": "Internal server error"}
    for params in (
        _search({"nosuchcolumn": 1}),
        _search({"id": {"$eq": "abc"}}),
        _search({"id": {"$cont": "1"}}),
        _search({"parent.name": "x"}),
        {"sort": "nosuchcolumn,ASC"},
        {"limit": "-1"},
    ):
        response = _get(endpoint, params)
        assert (response.status_code, response.json()) == (500, internal), params


def test_unknown_fields_are_dropped_from_the_selection(
    served: tuple[HipeSimulator, SandboxEndpoint],
) -> None:
    _, endpoint = served
    response = _get(endpoint, {"fields": "name,nosuch", "s": '{"id":1}'})
    assert response.json() == [{"id": 1, "name": "Acme Packaging"}]


def test_get_one_applies_the_query_too(served: tuple[HipeSimulator, SandboxEndpoint]) -> None:
    _, endpoint = served
    with httpx.Client(base_url=endpoint.url, headers={"X-ACCESS-TOKEN": TOKEN}) as client:
        assert client.get("/api/companies/3", params={"fields": "name"}).json() == {
            "id": 3,
            "name": "Café Ünïcode ☕",
        }
        miss = client.get("/api/companies/3", params=_search({"name": "other"}))
        assert (miss.status_code, miss.json()["message"]) == (404, "Company not found")
        assert client.get("/api/companies/3", params={"s": "x"}).status_code == 400
        skipped = client.get("/api/companies/3", params={"limit": 1, "offset": 1})
        assert skipped.status_code == 404, "get-one is built like a list in crud-typeorm"


def test_an_index_lookup_answers_like_a_scan(served: tuple[HipeSimulator, SandboxEndpoint]) -> None:
    """The externalId index must not change a result: compare with an equivalent scan."""
    _, endpoint = served
    for external_id in ("C001", "C004", "nope", 'C&D "Q" 50%+1'):
        indexed = _ids(_get(endpoint, _search({"externalId": {"$eq": external_id}})))
        scanned = _ids(_get(endpoint, _search({"externalId": {"$starts": external_id}})))
        expected = [i for i, c in enumerate(COMPANIES, 1) if c.get("externalId") == external_id]
        assert indexed == expected
        assert set(indexed) <= set(scanned)
        both = _ids(_get(endpoint, _search({"externalId": external_id, "id": {"$gt": 1}})))
        assert both == [i for i in expected if i > 1]
