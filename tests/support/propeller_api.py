"""Builders for the Propeller adapter's unit tests: a client over httpx.MockTransport with a
token endpoint, canned answers and failure cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from adapters import make_client
from adapters.propeller import (
    PropellerClient,
    PropellerCompanyInput,
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


TRANSPORT_CASES: list[Exception] = [
    httpx.ConnectTimeout("connect timed out"),
    httpx.ReadTimeout("read timed out"),
    httpx.ConnectError("refused"),
    httpx.ReadError("reset by peer"),
    httpx.RemoteProtocolError("peer closed connection"),
]


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


def address_json(id_: int, type_: str, code: str | None = None) -> dict[str, Any]:
    return {
        "id": id_,
        "type": type_,
        "code": code,
        "street": "Main",
        "city": "Gent",
        "country": "BE",
    }
