"""Propeller adapter against httpx.MockTransport: errors, token, paging, bulk outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from adapters.propeller import (
    PROPELLER_RULES,
    PropellerAddressInput,
    PropellerAttributeValue,
    PropellerClient,
    PropellerCompanyInput,
    PropellerCompanyRef,
    PropellerDirective,
    propeller_error_table,
)
from erpsync.errors import (
    AmbiguousMatchError,
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    RecordExistsError,
    RecordMissingError,
    SyncError,
    TransientError,
)
from erpsync.settings import PropellerSettings
from tests.support import Clock

BASE_URL = "https://propeller.example"
CLIENT_ID = "client-4711"
SECRET = "s3cr3t-Pq7-client-secret"
BODY_MARKER = "BODY-MARKER-91c2"

Handler = Callable[[httpx.Request], httpx.Response]


def error_body(code: int, status: int, type_: str = "SomeError") -> dict[str, Any]:
    """Propeller's documented error shape, with a marker that must never reach str(exc)."""
    return {
        "error": {
            "code": code,
            "status": status,
            "type": type_,
            "messages": [f"{BODY_MARKER} detail for {SECRET}"],
            "moreInfo": f"https://www.propel.us/docs/errors/{code}",
        }
    }


def company_json(id_: int, source_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "name": f"Company {source_id}",
        "sources": [{"source": "ERPSYNC", "sourceId": source_id}],
        "dateModified": "2026-03-01T10:00:00",
        **extra,
    }


@dataclass
class FakePropeller:
    """A token endpoint issuing tok-1, tok-2… and a programmable resource handler."""

    resource: Handler = field(default=lambda request: httpx.Response(200, json={"data": {}}))
    token_reply: Callable[[int], httpx.Response] | None = None
    token_requests: list[httpx.Request] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            self.token_requests.append(request)
            n = len(self.token_requests)
            if self.token_reply is not None:
                return self.token_reply(n)
            return httpx.Response(
                200,
                json={
                    "access_token": f"tok-{n}",
                    "expires_in": 1800,
                    "token_type": "Bearer",
                    "scope": "profile",
                },
            )
        self.requests.append(request)
        return self.resource(request)

    def bearer(self, index: int) -> str:
        return self.requests[index].headers["Authorization"]


def make_settings(**overrides: Any) -> PropellerSettings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(SECRET),
        "page_size": 2,
    }
    values.update(overrides)
    return PropellerSettings(**values)


def make(
    fake: FakePropeller,
    *,
    clock: Clock | None = None,
    overrides: dict[str, ErrorClass] | None = None,
    **settings_overrides: Any,
) -> PropellerClient:
    settings = make_settings(**settings_overrides)
    http = make_client(settings, transport=httpx.MockTransport(fake))
    return PropellerClient(http, settings, error_overrides=overrides, clock=clock or Clock(1000.0))


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.content)


def company_input(source_id: str, **fields: Any) -> PropellerCompanyInput:
    return PropellerCompanyInput(source_id=source_id, name=f"Company {source_id}", **fields)


def assert_clean(exc: SyncError) -> None:
    text = f"{exc!s} {exc!r}"
    assert BODY_MARKER not in text
    assert SECRET not in text
    assert "tok-" not in text
    assert exc.system == "propeller"
    assert exc.hint


# ------------------------------------------------------------------ error table

# (status, vendor code in body, headers, expected type, vendor_code, retry_after_s)
RESPONSE_CASES: list[
    tuple[int, int | None, dict[str, str], type[SyncError], str | None, float | None]
] = [
    (400, 10005, {}, PermanentError, "10005", None),
    (400, 10006, {}, PermanentError, "10006", None),
    (400, 10007, {}, PermanentError, "10007", None),
    (404, 10008, {}, PermanentError, "10008", None),
    (400, 10015, {}, PermanentError, "10015", None),
    (400, 10016, {}, PermanentError, "10016", None),
    (400, 10017, {}, PermanentError, "10017", None),
    (400, 40004, {}, RecordExistsError, "40004", None),
    (400, 40005, {}, AmbiguousMatchError, "40005", None),
    (404, 40006, {}, RecordMissingError, "40006", None),
    (404, 40007, {}, DependencyError, "40007", None),
    (405, 40008, {}, PermanentError, "40008", None),
    (404, 90006, {}, RecordMissingError, "90006", None),
    (400, 50004, {}, RecordExistsError, "50004", None),
    (400, 50005, {}, AmbiguousMatchError, "50005", None),
    (404, 50006, {}, RecordMissingError, "50006", None),
    (400, 12345, {}, PermanentError, "12345", None),
    (429, 429, {"Retry-After": "30"}, TransientError, None, 30.0),
    (429, None, {}, TransientError, None, None),
    (500, None, {}, TransientError, None, None),
    (502, None, {}, TransientError, None, None),
    (503, None, {"Retry-After": "7"}, TransientError, None, 7.0),
    (504, None, {}, TransientError, None, None),
    (403, None, {}, AuthError, None, None),
    (404, None, {}, PermanentError, None, None),
]


@pytest.mark.parametrize(
    ("status", "code", "headers", "expected", "vendor_code", "retry_after_s"),
    RESPONSE_CASES,
    ids=[f"{c[0]}-{c[1]}" for c in RESPONSE_CASES],
)
def test_every_status_and_code_maps_to_its_class(
    status: int,
    code: int | None,
    headers: dict[str, str],
    expected: type[SyncError],
    vendor_code: str | None,
    retry_after_s: float | None,
) -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        if code is None:
            return httpx.Response(status, text=f"<html>{BODY_MARKER}</html>", headers=headers)
        return httpx.Response(status, json=error_body(code, status), headers=headers)

    client = make(FakePropeller(resource=resource))
    with pytest.raises(SyncError) as caught:
        client.update_company("C-1", company_input("C-1"))
    exc = caught.value
    assert type(exc) is expected
    assert exc.status_code == status
    assert exc.vendor_code == vendor_code
    assert exc.retry_after_s == retry_after_s
    assert exc.operation == "update_company"
    assert "update_company" in str(exc)
    assert str(status) in str(exc)
    assert_clean(exc)


def test_operator_hints_say_what_to_do() -> None:
    rows = {row["match"]: row for row in propeller_error_table().rows()}
    assert rows["40005"]["hint"] == (
        "the same sourceId exists several times in Propeller; remove the duplicate, then replay"
    )
    assert rows["40007"]["class"] == "dependency"
    assert "waits for it" in rows["40007"]["hint"]
    assert rows["40008"]["class"] == "permanent"
    assert "recycle bin" in rows["40008"]["hint"]
    assert rows["10007"]["class"] == "permanent"
    documented = {"10005", "10006", "10007", "10008", "10015", "10016", "10017"}
    documented |= {"40004", "40005", "40006", "40007", "40008", "90006", "50004", "50005", "50006"}
    assert documented <= {rule.match for rule in PROPELLER_RULES}


TRANSPORT_CASES: list[Exception] = [
    httpx.ConnectTimeout("connect timed out"),
    httpx.ReadTimeout("read timed out"),
    httpx.ConnectError("refused"),
    httpx.ReadError("reset by peer"),
    httpx.RemoteProtocolError("peer closed connection"),
]


@pytest.mark.parametrize("failure", TRANSPORT_CASES, ids=lambda e: type(e).__name__)
def test_transport_failures_are_transient(failure: Exception) -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        raise failure

    client = make(FakePropeller(resource=resource))
    with pytest.raises(TransientError) as caught:
        client.get_company("C-1")
    assert caught.value.__cause__ is failure
    assert caught.value.status_code is None
    assert_clean(caught.value)


def test_an_html_page_with_status_200_is_transient_invalid_response() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(200, text=f"<html>{BODY_MARKER}</html>"))
    with pytest.raises(TransientError) as caught:
        make(fake).get_company("C-1")
    assert caught.value.status_code == 200
    assert_clean(caught.value)


def test_a_reply_without_data_is_an_unexpected_shape() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(200, json={"messages": ["ok"]}))
    with pytest.raises(PermanentError) as caught:
        make(fake).get_company("C-1")
    assert "unexpected response shape" in str(caught.value)


def test_error_overrides_change_the_class() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(40007, 404)))
    default = make(fake)
    with pytest.raises(DependencyError):
        default.create_company(company_input("C-2"))
    overridden = make(fake, overrides={"40007": ErrorClass.PERMANENT})
    with pytest.raises(SyncError) as caught:
        overridden.create_company(company_input("C-2"))
    assert type(caught.value) is PermanentError
    assert caught.value.vendor_code == "40007"
    assert {row["match"]: row["class"] for row in overridden.error_table.rows()}[
        "40007"
    ] == "permanent"


def test_an_override_can_make_a_status_transient() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(409, text="conflict"))
    with pytest.raises(PermanentError):
        make(fake).delete_company("C-1")
    with pytest.raises(TransientError):
        make(fake, overrides={"http-409": ErrorClass.TRANSIENT}).delete_company("C-1")


# ------------------------------------------------------------------------ token


def test_token_request_is_a_client_credentials_form() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(1, "C-1")})
    )
    make(fake).get_company("C-1")
    (token_request,) = fake.token_requests
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_request.content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [SECRET],
    }
    assert fake.bearer(0) == "Bearer tok-1"


def test_token_is_cached_then_refreshed_before_expiry() -> None:
    clock = Clock(1000.0)
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(1, "C-1")})
    )
    client = make(fake, clock=clock, token_refresh_margin_s=120.0)
    client.get_company("C-1")
    clock.now += 1800 - 121  # still more than the margin left
    client.get_company("C-1")
    assert len(fake.token_requests) == 1
    clock.now += 2  # now fewer than 120 s remain
    client.get_company("C-1")
    assert len(fake.token_requests) == 2
    assert [fake.bearer(i) for i in range(3)] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_token_lifetime_as_a_string_and_a_short_lifetime_are_handled() -> None:
    clock = Clock(1000.0)

    def reply(n: int) -> httpx.Response:
        return httpx.Response(
            200,
            json={"access_token": f"tok-{n}", "expires_in": "100", "token_type": "BearerToken"},
        )

    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(1, "C-1")}),
        token_reply=reply,
    )
    client = make(fake, clock=clock, token_refresh_margin_s=120.0)
    client.get_company("C-1")
    client.get_company("C-1")  # a margin above the lifetime must not refresh every call
    assert len(fake.token_requests) == 1
    clock.now += 51
    client.get_company("C-1")
    assert len(fake.token_requests) == 2
    assert fake.bearer(0) == "Bearer tok-1"


def test_a_401_refreshes_once_and_retries_once() -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer tok-1":
            return httpx.Response(401, json=error_body(401, 401, "InvalidAccessToken"))
        return httpx.Response(200, json={"data": company_json(7, "C-1")})

    fake = FakePropeller(resource=resource)
    company = make(fake).get_company("C-1")
    assert company is not None
    assert company.id == 7
    assert len(fake.token_requests) == 2
    assert [fake.bearer(i) for i in range(2)] == ["Bearer tok-1", "Bearer tok-2"]


def test_a_second_401_is_an_auth_error_without_a_loop() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(401, json=error_body(401, 401, "InvalidAccessToken"))
    )
    client = make(fake)
    with pytest.raises(AuthError) as caught:
        client.get_company("C-1")
    assert len(fake.token_requests) == 2
    assert len(fake.requests) == 2
    assert caught.value.status_code == 401
    assert "after a token refresh" in str(caught.value)
    assert_clean(caught.value)


def test_wrong_client_credentials_are_an_auth_error_naming_bad_credentials() -> None:
    def reply(n: int) -> httpx.Response:
        return httpx.Response(
            401,
            json={"error": "invalid_client", "error_description": f"{BODY_MARKER} {SECRET}"},
        )

    fake = FakePropeller(token_reply=reply)
    with pytest.raises(AuthError) as caught:
        make(fake).check()
    exc = caught.value
    assert "bad credentials" in str(exc)
    assert "propeller" in str(exc).lower()
    assert exc.operation == "token"
    assert exc.status_code == 401
    assert exc.vendor_code == "invalid_client"
    assert exc.response_excerpt is not None
    assert SECRET not in exc.response_excerpt
    assert fake.requests == []
    assert_clean(exc)


def test_a_token_endpoint_outage_is_transient() -> None:
    fake = FakePropeller(
        token_reply=lambda n: httpx.Response(503, text="down", headers={"Retry-After": "12"})
    )
    with pytest.raises(TransientError) as caught:
        make(fake).get_company("C-1")
    assert caught.value.operation == "token"
    assert caught.value.retry_after_s == 12.0


def test_check_fetches_a_token_and_makes_one_call() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": [], "messages": ["Completed"], "page": 1, "offset": 1, "total": 0}
        )
    )
    description = make(fake).check()
    assert "token" in description
    assert len(fake.token_requests) == 1
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/search"


# --------------------------------------------------------------------- companies


def test_get_company_looks_up_by_source_id_source_and_language() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": company_json(5, "C/5 é", debtorId=123), "messages": [], "total": 1}
        )
    )
    company = make(fake, source="MYERP", language="NL").get_company("C/5 é")
    assert company is not None
    assert company.id == 5
    assert company.debtor_id == "123"
    assert company.source_id_for("ERPSYNC") == "C/5 é"
    assert company.date_modified == datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.url.raw_path.split(b"?")[0] == b"/v2/companies/sourceId/C%2F5%20%C3%A9"
    assert request.url.params["source"] == "MYERP"
    assert request.url.params["language"] == "NL"


def test_get_company_returns_none_only_for_company_not_found() -> None:
    missing = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(40006, 404)))
    assert make(missing).get_company("C-9") is None
    no_route = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(10008, 404)))
    with pytest.raises(PermanentError):
        make(no_route).get_company("C-9")


def test_create_company_sends_one_flat_shape() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            201, json={"data": {"id": 42}, "messages": ["Company created"], "total": 1}
        )
    )
    company = make(fake).create_company(
        company_input(
            "C-3",
            parent=PropellerCompanyRef(source_id="P-1", source="ERPSYNC"),
            tax_number="BE0123",
            debtor_id="1001",
            email="a@b.example",
        )
    )
    assert company.id == 42
    assert company.name == "Company C-3"
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.url.path == "/v2/companies"
    assert sent_json(request) == {
        "sourceId": "C-3",
        "source": "ERPSYNC",
        "language": "EN",
        "name": "Company C-3",
        "parent": {"sourceId": "P-1", "source": "ERPSYNC"},
        "taxNumber": "BE0123",
        "debtorId": "1001",
        "email": "a@b.example",
    }


def test_single_calls_refuse_inline_addresses() -> None:
    fake = FakePropeller()
    address = PropellerAddressInput(type="invoice", street="Main", city="Gent", country="BE")
    with pytest.raises(ValueError, match="addresses"):
        make(fake).create_company(company_input("C-3", addresses=[address]))
    assert fake.requests == []
    fake.resource = lambda r: httpx.Response(201, json={"data": {"id": 3}})
    make(fake).create_company(company_input("C-3", addresses=[]))
    assert "addresses" not in sent_json(fake.requests[0])


def test_update_company_patches_only_the_changes() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": company_json(9, "C-4", name="New"), "messages": ["Company updated"]}
        )
    )
    company = make(fake).update_company("C-4", PropellerCompanyInput(source_id="C-4", name="New"))
    assert company.id == 9
    assert company.name == "New"
    (request,) = fake.requests
    assert request.method == "PATCH"
    assert request.url.path == "/v2/companies/sourceId/C-4"
    assert request.url.params["source"] == "ERPSYNC"
    assert sent_json(request) == {"name": "New"}


def test_delete_company_uses_the_lookup_key() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": {}, "messages": ["Company deleted"]})
    )
    make(fake).delete_company("C-5")
    (request,) = fake.requests
    assert request.method == "DELETE"
    assert request.url.path == "/v2/companies/sourceId/C-5"
    assert request.url.params["language"] == "EN"


# ------------------------------------------------------------------------ search


def paged(items: list[dict[str, Any]], *, with_pages: bool) -> Handler:
    """A search endpoint serving ``items`` by page/offset from the JSON body."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = sent_json(request)
        page, size = body["page"], body["offset"]
        chunk = items[(page - 1) * size : page * size]
        envelope: dict[str, Any] = {
            "data": chunk,
            "messages": ["Completed"],
            "start": (page - 1) * size + 1,
            "end": (page - 1) * size + len(chunk),
            "page": page,
            "offset": size,
            "total": len(items),
        }
        if with_pages:
            envelope["pages"] = max(1, -(-len(items) // size))
        return httpx.Response(200, json=envelope)

    return handler


def test_search_pages_to_the_last_page_by_page_count() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 6)]
    fake = FakePropeller(resource=paged(items, with_pages=True))
    found = list(
        make(fake, page_size=2).search_companies(
            modified_from=datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            modified_to=datetime(2026, 3, 2, 0, 0, 0),
        )
    )
    assert [c.id for c in found] == [1, 2, 3, 4, 5]
    assert len(fake.requests) == 3
    first = sent_json(fake.requests[0])
    assert first == {
        "dateModified": {"from": "2026-03-01T10:00:00", "to": "2026-03-02T00:00:00"},
        "page": 1,
        "offset": 2,
    }
    assert [sent_json(r)["page"] for r in fake.requests] == [1, 2, 3]
    assert fake.requests[0].url.path == "/v2/companies/search"


def test_search_stops_on_a_full_last_page_when_the_page_count_says_so() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 5)]
    fake = FakePropeller(resource=paged(items, with_pages=True))
    found = list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert len(found) == 4
    assert len(fake.requests) == 2


def test_search_stops_on_a_short_page_without_a_page_count() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 4)]
    fake = FakePropeller(resource=paged(items, with_pages=False))
    found = list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert [c.id for c in found] == [1, 2, 3]
    assert len(fake.requests) == 2
    assert "to" not in sent_json(fake.requests[0])["dateModified"]


def test_search_stops_on_an_empty_page() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 5)]
    fake = FakePropeller(resource=paged(items, with_pages=False))
    found = list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert len(found) == 4
    assert len(fake.requests) == 3  # the third page is empty: the end


def test_search_with_no_match_makes_one_call() -> None:
    fake = FakePropeller(resource=paged([], with_pages=True))
    assert list(make(fake).search_companies(modified_from=datetime(2026, 1, 1))) == []
    assert len(fake.requests) == 1


def test_search_refuses_a_server_that_ignores_the_page() -> None:
    items = [company_json(i, f"C-{i}") for i in range(1, 3)]
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": items, "offset": 2, "total": 9})
    )
    with pytest.raises(PermanentError, match="repeats"):
        list(make(fake, page_size=2).search_companies(modified_from=datetime(2026, 1, 1)))
    assert len(fake.requests) == 2


# -------------------------------------------------------------------------- bulk


def bulk_reply(items: list[dict[str, Any]]) -> Handler:
    return lambda r: httpx.Response(
        200, json={"data": items, "messages": ["Completed"], "total": len(items)}
    )


def ok_item(key: str, action: str, id_: int) -> dict[str, Any]:
    return {"key": key, "lookupKey": "sourceId", "success": True, "action": action, "id": id_}


def failed_item(key: str, code: int, type_: str) -> dict[str, Any]:
    return {
        "key": key,
        "lookupKey": "sourceId",
        "success": False,
        "action": None,
        "id": None,
        "error": {"code": code, "type": type_, "messages": [f"{BODY_MARKER} {key}"]},
    }


def test_bulk_maps_each_outcome_in_input_order() -> None:
    fake = FakePropeller(
        resource=bulk_reply(
            [
                ok_item("A", "create", 1),
                failed_item("B", 40007, "ParentCompanyNotFound"),
                ok_item("C", "update", 3),
                failed_item("D", 40008, "CompanyNotAllowed"),
            ]
        )
    )
    outcomes = make(fake).upsert_companies_bulk([company_input(k) for k in "ABCD"])
    assert [(o.index, o.key, o.ok) for o in outcomes] == [
        (0, "A", True),
        (1, "B", False),
        (2, "C", True),
        (3, "D", False),
    ]
    assert (outcomes[0].action, outcomes[0].id) == ("create", 1)
    assert (outcomes[2].action, outcomes[2].id) == ("update", 3)
    dependency, recycled = outcomes[1].error, outcomes[3].error
    assert type(dependency) is DependencyError
    assert dependency.vendor_code == "40007"
    assert dependency.operation == "upsert_companies_bulk"
    assert "sourceId B" in str(dependency)
    assert dependency.response_excerpt is not None
    assert "40007" in dependency.response_excerpt
    assert type(recycled) is PermanentError
    assert recycled.vendor_code == "40008"
    assert "recycle bin" in (recycled.hint or "")
    assert_clean(dependency)
    assert_clean(recycled)


def test_bulk_items_carry_email_and_phone_only_when_asked() -> None:
    """The reference's bulk fields leave them out, the guide's example takes ``email``: the
    caller chooses (``contact_inline``); by default a bulk item refuses them locally."""
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    client = make(fake)
    item = company_input("A", email="a@x.example", phone="")
    with pytest.raises(ValueError, match="email, phone"):
        client.upsert_companies_bulk([item])
    assert fake.requests == []
    (outcome,) = client.upsert_companies_bulk([item], contact_inline=True)
    assert outcome.ok
    (sent,) = json.loads(fake.requests[0].content)["companies"]
    assert (sent["email"], sent["phone"]) == ("a@x.example", "")


def test_bulk_outcomes_in_another_order_are_matched_by_key() -> None:
    fake = FakePropeller(
        resource=bulk_reply([ok_item("B", "update", 2), ok_item("A", "create", 1)])
    )
    outcomes = make(fake).upsert_companies_bulk([company_input("A"), company_input("B")])
    assert [(o.key, o.id) for o in outcomes] == [("A", 1), ("B", 2)]


def test_bulk_item_errors_follow_the_overrides() -> None:
    fake = FakePropeller(resource=bulk_reply([failed_item("A", 40007, "ParentCompanyNotFound")]))
    (outcome,) = make(fake, overrides={"40007": ErrorClass.PERMANENT}).upsert_companies_bulk(
        [company_input("A")]
    )
    assert type(outcome.error) is PermanentError


def test_bulk_item_with_an_unknown_code_is_permanent() -> None:
    fake = FakePropeller(resource=bulk_reply([failed_item("A", 77777, "Surprise")]))
    (outcome,) = make(fake).upsert_companies_bulk([company_input("A")])
    assert type(outcome.error) is PermanentError
    assert outcome.error.vendor_code == "77777"


def test_bulk_body_is_flat_with_settings_defaults_and_array_directives() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    address = PropellerAddressInput(
        type="invoice", street="Main", number="12", postal_code="9000", city="Gent", country="BE"
    )
    make(fake).upsert_companies_bulk(
        [
            company_input(
                "A",
                parent=PropellerCompanyRef(source_id="P", source="ERPSYNC"),
                addresses=[address],
            )
        ],
        directives=[PropellerDirective(operation="skipIfNotEmpty", fields=["name", "email"])],
    )
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/bulk/sourceId"
    assert sent_json(request) == {
        "companies": [
            {
                "sourceId": "A",
                "source": "ERPSYNC",
                "language": "EN",
                "name": "Company A",
                "parent": {"sourceId": "P", "source": "ERPSYNC"},
                "addresses": [
                    {
                        "type": "invoice",
                        "street": "Main",
                        "number": "12",
                        "postalCode": "9000",
                        "city": "Gent",
                        "country": "BE",
                    }
                ],
            }
        ],
        "directives": [{"operation": "skipIfNotEmpty", "fields": ["name", "email"]}],
    }


def test_bulk_without_directives_leaves_the_key_out() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    make(fake).upsert_companies_bulk([company_input("A")])
    assert "directives" not in sent_json(fake.requests[0])


def test_bulk_splits_into_batches_and_keeps_the_order() -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        keys = [c["sourceId"] for c in sent_json(request)["companies"]]
        return bulk_reply([ok_item(k, "create", int(k[1:])) for k in keys])(request)

    fake = FakePropeller(resource=resource)
    outcomes = make(fake, bulk_batch_size=2).upsert_companies_bulk(
        [company_input(f"C{i}") for i in range(5)]
    )
    assert [len(sent_json(r)["companies"]) for r in fake.requests] == [2, 2, 1]
    assert [(o.index, o.key, o.id) for o in outcomes] == [(i, f"C{i}", i) for i in range(5)]


def test_bulk_whole_request_failure_raises() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(400, json=error_body(10007, 400)))
    with pytest.raises(PermanentError) as caught:
        make(fake).upsert_companies_bulk([company_input("A")])
    assert caught.value.vendor_code == "10007"
    assert_clean(caught.value)


def test_bulk_reply_missing_an_item_is_an_unexpected_shape() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    with pytest.raises(PermanentError, match="1 outcomes for 2 items"):
        make(fake).upsert_companies_bulk([company_input("A"), company_input("B")])


# --------------------------------------------------------------------- addresses


def address_json(id_: int, type_: str, code: str | None = None) -> dict[str, Any]:
    return {
        "id": id_,
        "type": type_,
        "code": code,
        "street": "Main",
        "city": "Gent",
        "country": "BE",
    }


def test_list_addresses_filters_by_type() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            200, json={"data": [address_json(1, "delivery"), address_json(2, "delivery")]}
        )
    )
    found = make(fake).list_addresses("C-1", type="delivery")
    assert [a.id for a in found] == [1, 2]
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/sourceId/C-1/addresses"
    assert request.url.params["type"] == "delivery"
    assert request.url.params["source"] == "ERPSYNC"


def test_list_addresses_follows_the_page_count() -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return httpx.Response(
            200, json={"data": [address_json(page, "invoice")], "page": page, "pages": 2}
        )

    fake = FakePropeller(resource=resource)
    assert [a.id for a in make(fake).list_addresses("C-1")] == [1, 2]
    assert len(fake.requests) == 2


def test_create_address_returns_the_new_id() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(201, json={"data": {"id": 77}}))
    address = make(fake).create_address(
        "C-1", PropellerAddressInput(type="invoice", street="Main", city="Gent", country="BE")
    )
    assert address.id == 77
    assert address.city == "Gent"
    assert sent_json(fake.requests[0]) == {
        "type": "invoice",
        "street": "Main",
        "city": "Gent",
        "country": "BE",
    }


def test_upsert_addresses_bulk_maps_outcomes_by_code() -> None:
    fake = FakePropeller(
        resource=bulk_reply(
            [
                {"key": "HQ", "lookupKey": "code", "success": True, "action": "update", "id": 5},
                {"key": None, "lookupKey": "code", "success": True, "action": "create", "id": 6},
            ]
        )
    )
    outcomes = make(fake).upsert_addresses_bulk(
        "C-1",
        [
            PropellerAddressInput(type="invoice", code="HQ", street="A", city="B", country="BE"),
            PropellerAddressInput(type="delivery", street="A", city="B", country="BE"),
        ],
    )
    assert [(o.key, o.action, o.id) for o in outcomes] == [("HQ", "update", 5), (None, "create", 6)]
    assert fake.requests[0].url.path == "/v2/companies/sourceId/C-1/addresses/bulk"
    assert [a["type"] for a in sent_json(fake.requests[0])["addresses"]] == ["invoice", "delivery"]


def test_delete_of_a_missing_address_is_record_missing() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(404, json=error_body(90006, 404)))
    with pytest.raises(RecordMissingError) as caught:
        make(fake).delete_address("C-1", 106077)
    assert fake.requests[0].url.path == "/v2/companies/sourceId/C-1/addresses/106077"
    assert caught.value.vendor_code == "90006"


# --- issue 15: clears, detaching, attributes, documented bulk fields ---------------------


def test_writing_sends_a_cleared_text_as_empty_and_a_cleared_enum_as_its_default() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(9, "C-1")})
    )
    body = PropellerCompanyInput.writing(
        {
            "source_id": "C-1",
            "name": "Acme",
            "email": None,
            "phone": None,
            "taxNumber": None,
            "budget": None,
            "notes": "kept",
            "parent": None,
        }
    )
    make(fake).update_company("C-1", body)
    (request,) = fake.requests
    assert request.method == "PATCH"
    assert sent_json(request) == {
        "name": "Acme",
        "email": "",
        "phone": "",
        "taxNumber": "",
        "budget": "N",
        "notes": "kept",
    }


def test_detach_parent_patches_parent_null_only() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(200, json={"data": company_json(9, "C-1")})
    )
    make(fake).detach_parent("C-1")
    (request,) = fake.requests
    assert (request.method, request.url.path) == ("PATCH", "/v2/companies/sourceId/C-1")
    assert parse_qs(request.url.query.decode()) == {"source": ["ERPSYNC"], "language": ["EN"]}
    assert request.content == b'{"parent":null}'


def test_a_refused_detach_is_a_permanent_schema_error() -> None:
    fake = FakePropeller(
        resource=lambda r: httpx.Response(
            400, json=error_body(10007, 400, "SchemaValidationException")
        )
    )
    with pytest.raises(PermanentError) as refused:
        make(fake).detach_parent("C-1")
    assert refused.value.vendor_code == "10007"


def test_set_attributes_is_one_bulk_item_with_skip_create() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("C-1", "update", 9)]))
    marker = PropellerAttributeValue(name="ERPSYNC_INACTIVE", value="Y")
    assert make(fake).set_attributes("C-1", [marker]) is True
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/bulk/sourceId"
    assert sent_json(request) == {
        "companies": [
            {
                "sourceId": "C-1",
                "source": "ERPSYNC",
                "language": "EN",
                "attributes": [{"name": "ERPSYNC_INACTIVE", "value": "Y"}],
            }
        ],
        "directives": [{"operation": "skipCreate", "fields": []}],
    }


def test_set_attributes_on_a_missing_company_is_false_and_other_failures_raise() -> None:
    marker = PropellerAttributeValue(name="ERPSYNC_INACTIVE", value="Y")
    missing = FakePropeller(resource=bulk_reply([failed_item("C-1", 40006, "CompanyNotFound")]))
    assert make(missing).set_attributes("C-1", [marker]) is False
    refused = FakePropeller(
        resource=bulk_reply([failed_item("C-1", 10017, "PayloadValidationError")])
    )
    with pytest.raises(SyncError):
        make(refused).set_attributes("C-1", [marker])


@pytest.mark.parametrize("field_name", ["email", "phone"])
def test_bulk_items_refuse_fields_the_bulk_docs_leave_out(field_name: str) -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    with pytest.raises(ValueError, match=field_name):
        make(fake).upsert_companies_bulk([company_input("A", **{field_name: "x"})])
    assert fake.requests == []


def test_single_calls_refuse_attributes() -> None:
    fake = FakePropeller()
    marker = PropellerAttributeValue(name="ERPSYNC_INACTIVE", value="Y")
    with pytest.raises(ValueError, match="attributes"):
        make(fake).create_company(company_input("C-3", attributes=[marker]))
    assert fake.requests == []


def test_search_of_every_company_sends_no_date_filter_and_reads_attributes() -> None:
    item = {**company_json(1, "A"), "attributes": [{"name": "ERPSYNC_INACTIVE", "value": "Y"}]}
    fake = FakePropeller(resource=paged([item], with_pages=True))
    client = make(fake, page_size=2)
    (found,) = client.search_companies(modified_from=None, expands=("sources", "attributes"))
    (request,) = fake.requests
    assert sent_json(request) == {"page": 1, "offset": 2}
    assert parse_qs(request.url.query.decode()) == {"expands": ["sources,attributes"]}
    assert found.attribute("ERPSYNC_INACTIVE") == "Y"
    assert "attributes" in found.model_fields_set
    assert "email" not in found.model_fields_set, "the reply did not carry it"
