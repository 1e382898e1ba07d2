"""A server certificate that fails TLS verification is configuration, not a network blip.

Retrying cannot make an untrusted certificate trusted: the failure is auth class (the
worker opens the target's circuit at once instead of retrying until the delivery
dead-letters), and the hint names the host and says TLS verification failed, with no
secret. Other connect failures, TLS handshake failures included, stay transient.

The transport raises what httpx raises for a real verification failure: ``httpx.ConnectError``
caused by ``httpcore.ConnectError`` caused by ``ssl.SSLCertVerificationError``.
"""

from __future__ import annotations

import ssl

import certifi
import httpcore
import httpx
import pytest
from pydantic import SecretStr

from adapters import ErrorTable, make_client, send, tls_verification
from adapters.hipe import HipeClient
from erpsync.errors import Action, AuthError, ErrorClass, TransientError
from erpsync.settings import HipeSettings

HOST = "hipe.example.com"
TOKEN = "tok-tls-secret-123456"
SETTINGS = HipeSettings(base_url=f"https://{HOST}/api?key=q-secret", access_token=SecretStr(TOKEN))


def verification_failure(message: str = "self-signed certificate") -> ssl.SSLCertVerificationError:
    """The exception ``ssl`` raises, with the attributes it sets (code 18: self-signed)."""
    error = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message} (_ssl.c:1006)"
    )
    error.verify_code = 18
    error.verify_message = message
    return error


def raising(cause: BaseException) -> httpx.MockTransport:
    """A transport failing to connect the way httpx's does: each layer chains the one below."""

    def handler(request: httpx.Request) -> httpx.Response:
        core = httpcore.ConnectError(str(cause))
        core.__cause__ = cause
        raise httpx.ConnectError(str(core), request=request) from core

    return httpx.MockTransport(handler)


def check(transport: httpx.MockTransport) -> pytest.ExceptionInfo[Exception]:
    with (
        make_client(SETTINGS, transport=transport) as http,
        pytest.raises((AuthError, TransientError)) as caught,
    ):
        HipeClient(http, SETTINGS).check()
    return caught


def test_a_certificate_that_fails_verification_is_auth_class_with_a_hint_naming_the_host() -> None:
    caught = check(raising(verification_failure()))
    error = caught.value
    assert isinstance(error, AuthError)
    assert error.error_class is ErrorClass.AUTH
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert error.hint is not None
    assert f"TLS verification of {HOST} failed" in error.hint
    assert f"TLS verification of {HOST} failed (self-signed certificate)" in str(error)
    shown = " ".join([str(error), error.hint, repr(error.to_dict())])
    assert TOKEN not in shown
    assert "q-secret" not in shown, "the host, never the URL with its query"


def test_the_verification_failure_is_found_however_deep_httpx_wraps_it() -> None:
    table = ErrorTable.build("hipe", [], None)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("certificate verify failed") from verification_failure(
            "certificate has expired"
        )

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        pytest.raises(AuthError) as caught,
    ):
        send(http, "GET", f"https://{HOST}/x", table=table, operation="probe")
    assert "(certificate has expired)" in str(caught.value)


@pytest.mark.parametrize(
    "cause",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
        TimeoutError("handshake timed out"),
    ],
    ids=["refused", "handshake-failure", "timeout"],
)
def test_other_connect_failures_stay_transient(cause: BaseException) -> None:
    error = check(raising(cause)).value
    assert isinstance(error, TransientError)
    assert error.hint is not None
    assert "TLS verification" not in error.hint


def test_operators_see_the_rule_and_may_override_its_class() -> None:
    rows = {row["match"]: row for row in ErrorTable.build("hipe", [], None).rows()}
    rule = rows["exception:TLSVerify"]
    assert (rule["class"], rule["action"]) == (ErrorClass.AUTH.value, Action.OPEN_CIRCUIT.value)

    overridden = HipeClient(
        make_client(SETTINGS, transport=raising(verification_failure())),
        SETTINGS,
        error_overrides={"exception:TLSVerify": ErrorClass.TRANSIENT},
    )
    with pytest.raises(TransientError) as caught:
        overridden.check()
    assert caught.value.hint is not None
    assert f"TLS verification of {HOST} failed" in caught.value.hint


def test_clients_share_one_tls_context_per_process_and_honour_ssl_cert_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker builds a client per target in every thread; each building its own context
    # (the CA bundle loaded again, ~40 ms) cost a fresh worker a second of CPU.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    shared = tls_verification(True)
    assert isinstance(shared, ssl.SSLContext)
    assert tls_verification(True) is shared
    assert shared.verify_mode == ssl.CERT_REQUIRED
    assert shared.check_hostname
    assert tls_verification(False) is False
    # An operator's own CA bundle (SSL_CERT_FILE) gets a context of its own.
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    own = tls_verification(True)
    assert own is not shared
    assert own is tls_verification(True)
