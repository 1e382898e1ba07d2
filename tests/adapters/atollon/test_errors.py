"""The Atollon adapter's errors: every failure routed to its class, messages redacted, the
instance and token sent as configured (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.atollon import AtollonBillingUpdate, AtollonClient, AtollonProductInput, error_table
from erpsync.errors import (
    AuthError,
    DependencyError,
    ErrorClass,
    PermanentError,
    SyncError,
    TransientError,
)
from tests.support.atollon_api import (
    CASES,
    INSTANCE,
    OPERATIONS,
    TOKEN,
    Case,
    Handler,
    _raise,
    company,
    fail,
    make_client,
    reply,
)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_failure_maps_to_its_class(case: Case) -> None:
    client, _ = make_client(case.answer, api_token=TOKEN)

    with pytest.raises(SyncError) as caught:
        client.upsert_contact(company())

    error = caught.value
    assert type(error) is case.expected
    assert error.code == case.code
    assert error.status_code == case.status
    assert error.retry_after_s == case.retry_after_s
    assert error.system == "atollon"
    assert error.operation == "upsert_contact"
    text = str(error)
    assert "upsert_contact" in text
    if case.status is not None:
        assert f"HTTP {case.status}" in text
    # Neither the vendor's message nor any secret ever reaches the exception's text.
    assert "BODY-MARKER" not in text
    assert TOKEN not in text
    assert TOKEN not in repr(error)
    assert error.hint


def test_a_fail_message_travels_in_the_redacted_excerpt_only() -> None:
    body = fail(f"Invalid contact BODY-MARKER (Authorization: Bearer {TOKEN})")
    client, _ = make_client(reply(200, body), api_token=TOKEN)

    with pytest.raises(PermanentError) as caught:
        client.upsert_contact(company())

    assert caught.value.vendor_code == "FAIL"
    excerpt = caught.value.response_excerpt or ""
    assert "BODY-MARKER" in excerpt
    assert TOKEN not in excerpt
    assert "BODY-MARKER" not in str(caught.value)
    assert TOKEN not in json.dumps(caught.value.to_dict())


def test_unknown_instance_tells_the_operator_to_check_the_instance_name() -> None:
    client, _ = make_client(reply(403, fail("Unknown instance")))

    with pytest.raises(AuthError) as caught:
        client.check()

    assert caught.value.hint is not None
    assert "instance name" in caught.value.hint
    assert caught.value.operation == "check"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.list_billing(),
        lambda c: c.invoice_statuses(),
        lambda c: c.download_document("123"),
        lambda c: c.update_billing([AtollonBillingUpdate.mark("1", ["2"])]),
        lambda c: c.upsert_product(AtollonProductInput(name="Box")),
    ],
    ids=["list_billing", "invoice_statuses", "download_document", "update_billing", "product"],
)
def test_fail_with_http_200_is_never_taken_for_success(
    call: Callable[[AtollonClient], object],
) -> None:
    client, _ = make_client(reply(200, fail("Product not found: P1")))

    with pytest.raises(DependencyError):
        call(client)


@pytest.mark.parametrize(
    ("overrides", "answer", "expected"),
    [
        (
            {"FAIL:related-contact-not-found": ErrorClass.PERMANENT},
            reply(200, fail("Related contact not found")),
            PermanentError,
        ),
        ({"FAIL": ErrorClass.TRANSIENT}, reply(200, fail("Locked record")), TransientError),
        ({"http-500": ErrorClass.PERMANENT}, reply(500), PermanentError),
        (
            {"exception:ConnectError": ErrorClass.AUTH},
            _raise(httpx.ConnectError("refused")),
            AuthError,
        ),
    ],
    ids=["fail-code", "generic-fail", "status", "exception"],
)
def test_error_overrides_change_the_class(
    overrides: dict[str, ErrorClass], answer: Handler, expected: type[SyncError]
) -> None:
    client, _ = make_client(answer, overrides=overrides)

    with pytest.raises(SyncError) as caught:
        client.upsert_contact(company())

    assert type(caught.value) is expected


def test_the_routing_table_lists_fail_codes_with_classes_and_hints() -> None:
    rows = {row["match"]: row for row in error_table().rows()}

    assert rows["FAIL:related-contact-not-found"]["class"] == "dependency"
    assert rows["FAIL:contact-not-found"]["class"] == "dependency"
    assert rows["FAIL:product-not-found"]["class"] == "dependency"
    assert rows["FAIL:unknown-instance"]["class"] == "auth"
    assert "instance" in rows["FAIL:unknown-instance"]["hint"]
    assert rows["FAIL"]["class"] == "permanent"
    assert rows["http-400"]["class"] == "permanent"
    assert rows["http-429"]["class"] == "transient"
    assert rows["http-503"]["class"] == "transient"
    assert rows["exception:Timeout"]["class"] == "transient"
    assert all(row["system"] == "atollon" for row in rows.values())


@pytest.mark.parametrize(
    ("call", "method", "path", "answer"),
    [op[1:] for op in OPERATIONS],
    ids=[op[0] for op in OPERATIONS],
)
@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_every_call_names_the_instance_and_sends_a_token_only_when_configured(
    call: Callable[[AtollonClient], object],
    method: str,
    path: str,
    answer: Any,
    token: str | None,
) -> None:
    client, recorder = make_client(reply(200, answer), api_token=token)

    call(client)

    request = recorder.last
    assert request.method == method
    assert request.url.path == path
    assert request.url.params["instance"] == INSTANCE
    if token is None:
        assert "authorization" not in request.headers
    else:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
