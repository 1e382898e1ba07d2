"""The Propeller adapter's errors and token: every status and code routed to its class with
a hint, the client-credentials token cached, refreshed and refused (httpx.MockTransport)."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from adapters.propeller import (
    PROPELLER_RULES,
    propeller_error_table,
)
from erpsync.errors import (
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    SyncError,
    TransientError,
)
from tests.support import Clock
from tests.support.propeller_api import (
    BODY_MARKER,
    CLIENT_ID,
    RESPONSE_CASES,
    SECRET,
    TRANSPORT_CASES,
    FakePropeller,
    assert_clean,
    company_input,
    company_json,
    error_body,
    make,
)


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
