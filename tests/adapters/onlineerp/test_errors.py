"""The OnlineERP adapter's error table: every status, code and exception routed to its class,
the original exception chained, overrides applied (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from adapters.onlineerp import (
    table,
)
from erpsync.errors import (
    AuthError,
    ErrorClass,
    PermanentError,
    SyncError,
    TransientError,
)
from tests.support.onlineerp_api import (
    BASIC,
    BODY_MARKER,
    CASES,
    SECRET,
    Case,
    _answer,
    _raise,
    client_for,
    invoice,
    vendor_error,
)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_status_code_and_exception_maps_to_its_class(case: Case) -> None:
    client = client_for(case.handler)
    with pytest.raises(SyncError) as caught:
        case.call(client)
    exc = caught.value
    assert type(exc) is case.error_type
    assert exc.system == "onlineerp"
    assert exc.operation == case.operation
    assert exc.status_code == case.status_code
    assert exc.vendor_code == case.vendor_code
    assert exc.retry_after_s == case.retry_after_s
    text = str(exc)
    assert text.startswith(f"onlineerp {case.operation} failed")
    if case.status_code is not None:
        assert f"HTTP {case.status_code}" in text
    for word in case.words:
        assert word in text
    for leak in (SECRET, BASIC, BODY_MARKER, "Robot non connecté", "Message"):
        assert leak not in text
    if exc.response_excerpt:
        assert SECRET not in exc.response_excerpt
    assert exc.hint


def test_transport_errors_chain_the_original_exception() -> None:
    client = client_for(_raise(httpx.ConnectError("refused")))
    with pytest.raises(TransientError) as caught:
        client.check()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_table_lists_every_documented_code_with_a_hint() -> None:
    rows = {row["match"]: row for row in table().rows()}
    expected = {
        "NotFound": "conflict",
        "Exists": "conflict",
        "InvalidFilter": "permanent",
        "InvalidBody": "permanent",
        "InvalidBody/Customer": "dependency",
        "InvalidBody/Product": "dependency",
        "Unauthorized": "auth",
        "Forbidden": "auth",
        "MethodNotAllowed": "permanent",
        "RobotOffline": "transient",
        "RobotTimeout": "transient",
        "http-412": "conflict",
        "http-409": "conflict",
    }
    for match, error_class in expected.items():
        assert rows[match]["class"] == error_class, match
        assert rows[match]["system"] == "onlineerp"
        assert rows[match]["hint"]
    assert "robot at the customer's site is not connected" in rows["RobotOffline"]["hint"]


def test_error_overrides_from_the_configuration_change_the_class() -> None:
    offline = _answer(vendor_error(503, "RobotOffline"))
    with pytest.raises(PermanentError) as caught:
        list(
            client_for(
                offline, error_overrides={"RobotOffline": ErrorClass.PERMANENT}
            ).iter_customers()
        )
    assert caught.value.vendor_code == "RobotOffline"

    unknown_customer = _answer(vendor_error(400, "InvalidBody", "C000042"))
    overrides = {"InvalidBody/Customer": ErrorClass.PERMANENT}
    with pytest.raises(PermanentError):
        client_for(unknown_customer, error_overrides=overrides).create_invoice(invoice())

    refused = _answer(httpx.Response(503))
    with pytest.raises(AuthError):
        client_for(refused, error_overrides={"http-503": ErrorClass.AUTH}).check()
