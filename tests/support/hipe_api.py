"""Builders for the HIPE adapter's unit tests: a client over httpx.MockTransport, canned pages
and answers, and the import's scripted statuses.
"""

from __future__ import annotations

import csv
import email.parser
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import SecretStr

from adapters.hipe import (
    HipeClient,
    HipeCompanyImportRow,
    HipeCompanyInput,
    HipeContactInput,
    HipeId,
)
from erpsync.errors import (
    AuthError,
    ErrorClass,
    PermanentError,
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


AWKWARD = [
    TRICKY_NAME,
    "a+b c",
    "50% off & more=yes;#frag?x",
    "מפעל אריזות 🚀 ☃",
    "back\\slash 'single' \"double\"",
    "line\nbreak\ttab",
]


def _parse_csv(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


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
