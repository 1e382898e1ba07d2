"""HTTP plumbing shared by every vendor adapter (exported from :mod:`adapters` for the rest).

It owns the three things that must be done the same way everywhere:

* building an ``httpx.Client`` from a system's settings (timeouts, TLS, pool limits);
* sending a request and turning transport failures (timeouts, refused or dropped
  connections, protocol errors) into :class:`~erpsync.errors.TransientError`, except a
  server certificate that fails TLS verification: that is configuration (auth class, the
  circuit opens), since retrying cannot make an untrusted certificate trusted;
* classifying a failed response through a vendor's :class:`ErrorTable`: vendor code first,
  then HTTP status, then the generic defaults below. The table is data: ``erpsync errors``
  prints it, and the configuration may override the class of any code.

No backoff loop lives here: the worker's retry policy is the one owner of waiting.
"""

from __future__ import annotations

import email.utils
import functools
import json
import os
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from erpsync.errors import (
    DEFAULT_ACTIONS,
    ERROR_TYPES,
    Action,
    AuthError,
    ErrorClass,
    PermanentError,
    SyncError,
)
from erpsync.redaction import redact
from erpsync.settings import HttpSystemSettings

EXCERPT_MAX_CHARS = 500
USER_AGENT = "erpsync/0.1"

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The largest answer read (decoded). Pages are bounded by the page sizes we ask for (1000
records at most), far below this; a larger answer comes from a server that ignores the
page size or a proxy that streams without end, and would make a worker swell or hang."""


def tls_verification(verify: bool) -> ssl.SSLContext | bool:
    """What a client verifies servers with: one shared TLS context per process, or False.

    Building a context loads the whole CA bundle (about 40 ms of CPU); a worker has a
    client per target in each of its threads, which cost a fresh worker a second of CPU
    before its first deliveries. A context is safe to share between threads. It honours
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as httpx does (a new value, a new context).
    """
    if not verify:
        return False
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """The context for these values of the variables httpx reads (they key the cache)."""
    return httpx.create_ssl_context(verify=True, trust_env=True)


def make_client(
    settings: HttpSystemSettings,
    *,
    transport: httpx.BaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` configured from a system's settings (one per worker process)."""
    return httpx.Client(
        base_url=settings.base_url,
        timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
        verify=tls_verification(settings.verify_tls),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        transport=transport,
        follow_redirects=False,
    )


@dataclass(frozen=True)
class ErrorRule:
    """One row of a vendor's routing table: what a code or status means and what to do."""

    system: str
    match: str  # a vendor code ("40005"), "http-<status>" ("http-503") or "exception:<Name>"
    name: str
    error_class: ErrorClass
    hint: str
    error_type: type[SyncError] | None = None  # a more specific subclass of the class's type

    @property
    def action(self) -> Action:
        return DEFAULT_ACTIONS[self.error_class]

    def exception_type(self, error_class: ErrorClass) -> type[SyncError]:
        """The exception to raise; an override that changes the class drops the subclass."""
        if self.error_type is not None and self.error_type.error_class == error_class:
            return self.error_type
        return ERROR_TYPES[error_class]

    def as_row(self, error_class: ErrorClass | None = None) -> dict[str, str]:
        cls = error_class or self.error_class
        return {
            "system": self.system,
            "match": self.match,
            "name": self.name,
            "class": cls.value,
            "action": DEFAULT_ACTIONS[cls].value,
            "hint": self.hint,
        }


TLS_HINT = (
    "TLS verification of {host} failed: its certificate is not trusted (expired, "
    "self-signed, issued for another name, or a proxy intercepting TLS). Fix the "
    "certificate, or trust its issuing CA (SSL_CERT_FILE naming a CA bundle); deliveries "
    "wait behind the open circuit meanwhile. verify_tls = false only for a sandbox"
)


_T, _P, _A = ErrorClass.TRANSIENT, ErrorClass.PERMANENT, ErrorClass.AUTH

#: (match, meaning, class, hint) of the statuses and transport failures every vendor shares.
_GENERIC_ROWS: tuple[tuple[str, str, ErrorClass, str], ...] = (
    (
        "http-400",
        "Bad Request",
        _P,
        "the target refused the data; fix the record or mapping, then replay",
    ),
    ("http-401", "Unauthorized", _A, "credentials refused: check the secret in the configuration"),
    ("http-403", "Forbidden", _A, "the credentials lack a permission: check the API user's rights"),
    (
        "http-404",
        "Not Found",
        _P,
        "the resource or endpoint does not exist: check base_url and ids",
    ),
    ("http-408", "Request Timeout", _T, "the target timed out; retried automatically"),
    ("http-409", "Conflict", _P, "the target reports a conflict; inspect the record, then replay"),
    ("http-413", "Payload Too Large", _P, "lower the batch size or the record's size"),
    (
        "http-422",
        "Unprocessable Entity",
        _P,
        "the target refused the data; fix the record or mapping, then replay",
    ),
    (
        "http-429",
        "Too Many Requests",
        _T,
        "rate limited; retried after Retry-After. Lower rate_limit_per_s if frequent",
    ),
    ("http-500", "Internal Server Error", _T, "the target failed; retried automatically"),
    ("http-502", "Bad Gateway", _T, "a gateway failed; retried automatically"),
    ("http-503", "Service Unavailable", _T, "the target is unavailable; retried automatically"),
    ("http-504", "Gateway Timeout", _T, "a gateway timed out; retried automatically"),
    ("exception:Timeout", "timeout", _T, "no answer in timeout_s; retried automatically"),
    (
        "exception:ConnectError",
        "connection refused",
        _T,
        "the target cannot be reached; check base_url and the network",
    ),
    ("exception:TLSVerify", "TLS verification failed", _A, TLS_HINT.format(host="the server")),
    (
        "exception:RemoteProtocolError",
        "connection dropped",
        _T,
        "the target closed the connection; retried automatically",
    ),
    (
        "exception:InvalidResponse",
        "invalid response",
        _T,
        "the answer was not the JSON expected (HTML page, truncated body); retried",
    ),
    (
        "exception:ResponseTooLarge",
        "response too large",
        _P,
        "the answer exceeded the size limit: check base_url (a proxy?) and the page size",
    ),
)


def generic_rules(system: str) -> list[ErrorRule]:
    """What HTTP statuses and transport failures mean when the vendor says nothing more."""
    return [ErrorRule(system, *row) for row in _GENERIC_ROWS]


@dataclass
class ErrorTable:
    """A vendor's routing table, vendor rules first, with configuration overrides applied."""

    system: str
    rules: list[ErrorRule]
    overrides: Mapping[str, ErrorClass] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_match: dict[str, ErrorRule] = {}
        for rule in [*self.rules, *generic_rules(self.system)]:
            self._by_match.setdefault(rule.match, rule)

    @classmethod
    def build(
        cls, system: str, rules: Iterable[ErrorRule], overrides: Mapping[str, ErrorClass] | None
    ) -> ErrorTable:
        return cls(system=system, rules=list(rules), overrides=dict(overrides or {}))

    def rows(self) -> list[dict[str, str]]:
        """The table as operators see it (``erpsync errors``)."""
        return [rule.as_row(self.overrides.get(rule.match)) for rule in self._by_match.values()]

    def lookup(self, *, vendor_code: str | None, status_code: int | None) -> ErrorRule:
        """The rule for a vendor code, else the status, else the status family's default."""
        if vendor_code is not None and vendor_code in self._by_match:
            return self._by_match[vendor_code]
        if status_code is not None:
            exact = self._by_match.get(f"http-{status_code}")
            if exact is not None:
                return exact
            if status_code >= 500:
                return self._by_match["http-500"]
            return self._by_match["http-400"]
        return self._by_match["exception:InvalidResponse"]

    def error(
        self,
        *,
        operation: str,
        status_code: int | None,
        vendor_code: str | None = None,
        retry_after_s: float | None = None,
        response_excerpt: str | None = None,
        detail: str | None = None,
    ) -> SyncError:
        """Build the classified exception for a failed call (the caller raises it)."""
        rule = self.lookup(vendor_code=vendor_code, status_code=status_code)
        error_class = self.overrides.get(rule.match, rule.error_class)
        what = f"{self.system} {operation} failed"
        if status_code is not None:
            what += f": HTTP {status_code}"
        if vendor_code is not None:
            what += f", {rule.name if rule.match == vendor_code else 'code'} {vendor_code}"
        elif rule.match.startswith("http-"):
            what += f" {rule.name}"
        if detail:
            what += f" ({detail})"
        return rule.exception_type(error_class)(
            what,
            system=self.system,
            operation=operation,
            status_code=status_code,
            vendor_code=vendor_code,
            vendor_name=rule.name if rule.match == vendor_code else None,
            retry_after_s=retry_after_s,
            response_excerpt=response_excerpt,
            hint=rule.hint,
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def excerpt(response: httpx.Response) -> str:
    """A short, redacted excerpt of a response body for a dead-letter entry."""
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    return redact(text, max_chars=EXCERPT_MAX_CHARS)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    table: ErrorTable,
    operation: str,
    max_bytes: int = MAX_RESPONSE_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; transport failures become classified errors, responses are returned.

    The body is read as a stream and refused beyond ``max_bytes`` (a classified
    ``exception:ResponseTooLarge``), so that no answer can exhaust a worker's memory.
    """
    try:
        with client.stream(method, url, **kwargs) as streamed:
            return _read_bounded(streamed, table, operation, max_bytes)
    except httpx.TimeoutException as exc:
        raise _transport_error(table, "exception:Timeout", operation, type(exc).__name__) from exc
    except httpx.ConnectError as exc:
        refused = _tls_verification_error(exc)
        if refused is not None:
            host = _host(exc, client)
            raise _transport_error(
                table,
                "exception:TLSVerify",
                operation,
                f"TLS verification of {host} failed ({_verify_message(refused)})",
                hint=TLS_HINT.format(host=host),
            ) from exc
        raise _transport_error(
            table, "exception:ConnectError", operation, "connection failed"
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise _transport_error(
            table, "exception:RemoteProtocolError", operation, "connection dropped"
        ) from exc
    except httpx.UnsupportedProtocol as exc:
        raise AuthError(
            f"{table.system} {operation} failed: unsupported URL scheme (check base_url)",
            system=table.system,
            operation=operation,
            hint="base_url must start with http:// or https://",
        ) from exc


def _tls_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a connect error, if that is its cause
    (httpx wraps httpcore's error, which wraps the ``ssl`` one)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _verify_message(error: ssl.SSLCertVerificationError) -> str:
    """What OpenSSL found wrong with the certificate ("certificate has expired"...)."""
    message = getattr(error, "verify_message", None)
    return str(message) if message else "certificate not trusted"


def _host(exc: httpx.RequestError, client: httpx.Client) -> str:
    """The host a failed request went to (never the full URL: it may carry a token)."""
    try:
        url = exc.request.url
    except RuntimeError:
        url = client.base_url
    return url.host or "the server"


def _read_bounded(
    response: httpx.Response, table: ErrorTable, operation: str, max_bytes: int
) -> httpx.Response:
    """The response with its body read, or ResponseTooLarge past ``max_bytes`` (decoded)."""

    def too_large() -> SyncError:
        return _transport_error(
            table,
            "exception:ResponseTooLarge",
            operation,
            f"HTTP {response.status_code} answer too large (over {max_bytes} bytes)",
            status_code=response.status_code,
        )

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large()
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise too_large()
    # A complete response built from the decoded body (so without its transfer headers).
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body),
        request=response.request,
        extensions=response.extensions,
    )


def _transport_error(
    table: ErrorTable,
    match: str,
    operation: str,
    detail: str,
    *,
    status_code: int | None = None,
    response_excerpt: str | None = None,
    hint: str | None = None,
) -> SyncError:
    rule = table.lookup(vendor_code=match, status_code=None)
    error_class = table.overrides.get(rule.match, rule.error_class)
    return rule.exception_type(error_class)(
        f"{table.system} {operation} failed: {detail}",
        system=table.system,
        operation=operation,
        status_code=status_code,
        response_excerpt=response_excerpt,
        hint=hint or rule.hint,
    )


def decode_json(response: httpx.Response, *, table: ErrorTable, operation: str) -> Any:
    """The response's JSON, or a classified error for HTML pages and truncated bodies."""
    content_type = response.headers.get("content-type", "")
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "an HTML page" if "html" in content_type.lower() else "invalid JSON"
        raise _transport_error(
            table,
            "exception:InvalidResponse",
            operation,
            f"HTTP {response.status_code} with {kind}",
            status_code=response.status_code,
            response_excerpt=excerpt(response),
        ) from exc


def unexpected_shape(table: ErrorTable, operation: str, detail: str) -> PermanentError:
    """The vendor answered JSON of a shape we cannot read (wrong types, missing fields)."""
    return PermanentError(
        f"{table.system} {operation} failed: unexpected response shape ({detail})",
        system=table.system,
        operation=operation,
        hint="the target answered in an unexpected shape; check the API version",
    )
