"""The HIPE adapter's errors: every status routed to its class on every operation, overrides,
hints, and the token header (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from adapters.hipe import (
    HipeCompanyInput,
    error_rows,
)
from erpsync.errors import (
    ErrorClass,
    PermanentError,
    RecordMissingError,
    SyncError,
    TransientError,
)
from tests.support.hipe_api import (
    OPERATIONS,
    RECORD_OPERATIONS,
    STATUS_TABLE,
    TOKEN,
    _always,
    _assert_clean,
    _raise,
    make,
)


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
