"""Issue #8, item 3: what every adapter does with answers a vendor should never give.

Each adapter meets, through ``httpx.MockTransport``, HTML error pages (with 200 and with
5xx), truncated and invalid JSON, empty bodies, JSON of the wrong type, objects with fields
of the wrong type or missing, enormous pages and bodies, and a body that never ends. Each
answer must become one classified error (transient when a retry can help: the page came
from a proxy or was cut; permanent when the JSON itself is not what the API documents),
and ``str(exc)`` never carries the body or a credential.

Enormous answers: a page holds at most what the client asked for in practice, but a server
that ignores the page size, or a proxy that streams without end, must not make a worker
hang or swell. Bodies are read as a stream and refused beyond
:data:`adapters._http.MAX_RESPONSE_BYTES` (a classified error, ``exception:ResponseTooLarge``,
permanent: retrying returns the same answer); below it, a page of 50,000 records or a
body of 20 MB is read whole, in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import MAX_RESPONSE_BYTES
from adapters.atollon import AtollonClient, AtollonContactInput
from adapters.hipe import HipeClient
from adapters.onlineerp import OnlineErpClient
from adapters.propeller import PropellerClient
from erpsync.errors import PermanentError, SyncError, TransientError
from erpsync.settings import AtollonSettings, HipeSettings, OnlineErpSettings, PropellerSettings

BODY_MARKER = "BODY-MARKER-e41b"
SECRET = "sekret-Zq81-value"
TOKEN = "bearer-Tk55-issued"

Handler = Callable[[httpx.Request], httpx.Response]


def erp_customer(n: int, **extra: Any) -> dict[str, Any]:
    return {"NoClient": f"C{n:05d}", "NomClient": f"Client {n}", "EstActif": True, **extra}


def hipe_company(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": n, "name": f"Company {n}", "externalId": f"C{n:05d}", **extra}


def propeller_company(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": n, "name": f"Company {n}", "sourceId": f"C{n:05d}", **extra}


def atollon_activity(n: int, **extra: Any) -> dict[str, Any]:
    return {"activity": {"id": str(n), "name": f"Activity {n}"}, "billingItems": [], **extra}


@dataclass(frozen=True)
class Adapter:
    """How to reach one adapter's object read and page read, and what its answers look like."""

    name: str
    build: Callable[[httpx.Client], Any]
    base_url: str
    read_one: Callable[[Any], Any]
    read_page: Callable[[Any], list[Any]]
    one: Callable[[dict[str, Any]], Any]  # an object answer around a record
    page: Callable[[list[dict[str, Any]]], Any]  # a page answer around records
    record: Callable[..., dict[str, Any]]
    wrong_type: dict[str, Any]  # a field with a value of the wrong type
    missing: str  # a required field

    def client(self, answer: Handler) -> Any:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/oauth2/token"):
                return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 1800})
            return answer(request)

        return self.build(
            httpx.Client(base_url=self.base_url, transport=httpx.MockTransport(handler))
        )


ADAPTERS = [
    Adapter(
        "onlineerp",
        lambda http: OnlineErpClient(
            http,
            OnlineErpSettings(
                base_url="https://erp.example/api",
                licence_code="LIC",
                secret=SecretStr(SECRET),
                page_size=500,
            ),
        ),
        "https://erp.example/api",
        lambda c: c.get_customer("C00001"),
        lambda c: list(c.iter_customers()),
        lambda record: record,
        lambda records: records,
        erp_customer,
        {"NomClient": ["not", "text"]},
        "NomClient",
    ),
    Adapter(
        "propeller",
        lambda http: PropellerClient(
            http,
            PropellerSettings(
                base_url="https://propeller.example",
                client_id="id",
                client_secret=SecretStr(SECRET),
                page_size=100,
            ),
        ),
        "https://propeller.example",
        lambda c: c.get_company("C00001"),
        lambda c: list(c.search_companies(modified_from=datetime(2024, 1, 1, tzinfo=UTC))),
        lambda record: {"data": record},
        lambda records: {"data": records, "page": 1, "offset": 100, "pages": 1},
        propeller_company,
        {"id": "not-a-number"},
        "id",
    ),
    Adapter(
        "hipe",
        lambda http: HipeClient(
            http,
            HipeSettings(
                base_url="https://hipe.example", access_token=SecretStr(SECRET), page_size=100
            ),
        ),
        "https://hipe.example",
        lambda c: c.get_company(1),
        lambda c: c.find_companies_by_external_id("C00001"),
        lambda record: record,
        lambda records: {"data": records, "count": len(records), "page": 1, "pageCount": 1},
        hipe_company,
        {"id": {"not": "a number"}},
        "id",
    ),
    Adapter(
        "atollon",
        lambda http: AtollonClient(
            http,
            AtollonSettings(
                base_url="https://atollon.example",
                instance="acme",
                api_token=SecretStr(SECRET),
            ),
        ),
        "https://atollon.example",
        lambda c: c.upsert_contact(
            AtollonContactInput.model_validate({"company": {"companyName": "X"}})
        ),
        lambda c: c.list_billing(),
        lambda record: {"result": "SUCCESS", **record},
        lambda records: records,
        lambda n, **extra: {"contactId": str(n), **extra},
        {"contactId": {"not": "an id"}},
        "contactId",
    ),
]
PAGE_RECORDS: dict[str, Callable[..., dict[str, Any]]] = {
    "onlineerp": erp_customer,
    "propeller": propeller_company,
    "hipe": hipe_company,
    "atollon": atollon_activity,
}

PAGE_WRONG_TYPE: dict[str, dict[str, Any]] = {
    "onlineerp": {"EstActif": {"not": "a boolean"}},
    "propeller": {"id": "not-a-number"},
    "hipe": {"id": {"not": "a number"}},
    "atollon": {"activity": "not an object"},
}


def by_name(adapters: list[Adapter]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("adapter", adapters, ids=[a.name for a in adapters])


def fails(adapter: Adapter, answer: Handler, read: str = "read_one") -> SyncError:
    """The error an adapter raises for ``answer``, checked to be clean."""
    client = adapter.client(answer)
    with pytest.raises(SyncError) as caught:
        getattr(adapter, read)(client)
    error = caught.value
    text = str(error)
    assert BODY_MARKER not in text, f"{adapter.name}: the body leaked into str(exc): {text}"
    assert SECRET not in text
    assert TOKEN not in text
    assert "<html" not in text.lower()
    assert error.system == adapter.name
    if error.response_excerpt is not None:
        assert SECRET not in error.response_excerpt
    return error


# -- pages that are not JSON: a proxy, a cut connection (transient) --------------------------

NOT_JSON: dict[str, Handler] = {
    "html page with 200": lambda r: httpx.Response(
        200, html=f"<html><body><h1>Maintenance</h1>{BODY_MARKER}</body></html>"
    ),
    "html page with 502": lambda r: httpx.Response(
        502, html=f"<html><body>Bad gateway {BODY_MARKER}</body></html>"
    ),
    "html page with 503": lambda r: httpx.Response(
        503, html=f"<!DOCTYPE html><title>{BODY_MARKER}</title>"
    ),
    "truncated json": lambda r: httpx.Response(
        200,
        content=f'{{"data": [{{"id": 1, "name": "{BODY_MARKER}'.encode(),
        headers={"content-type": "application/json"},
    ),
    "invalid json": lambda r: httpx.Response(
        200,
        content=f"{{'id': 1, 'name': '{BODY_MARKER}',}}".encode(),
        headers={"content-type": "application/json"},
    ),
    "empty body": lambda r: httpx.Response(200, headers={"content-type": "application/json"}),
    "not utf-8": lambda r: httpx.Response(
        200, content=b'{"name": "\xff\xfe' + BODY_MARKER.encode() + b'"}'
    ),
}


@by_name(ADAPTERS)
@pytest.mark.parametrize("case", sorted(NOT_JSON))
def test_a_body_that_is_not_json_is_transient_on_every_read(adapter: Adapter, case: str) -> None:
    for read in ("read_one", "read_page"):
        error = fails(adapter, NOT_JSON[case], read)
        assert isinstance(error, TransientError), (adapter.name, case, read, repr(error))


# -- JSON of the wrong shape: the vendor answered, but not what its API documents (permanent)


def _shape_cases(adapter: Adapter) -> dict[str, tuple[str, Any]]:
    good = adapter.record(1)
    missing = {k: v for k, v in good.items() if k != adapter.missing}
    missing["marker"] = BODY_MARKER
    return {
        "field of the wrong type": ("read_one", adapter.one({**good, **adapter.wrong_type})),
        "required field missing": ("read_one", adapter.one(missing)),
        "a list for an object": ("read_one", [good, BODY_MARKER]),
        "a string for an object": ("read_one", BODY_MARKER),
        "null for an object": ("read_one", None),
        "a number for a page": ("read_page", 12345),
        "an object for a page": ("read_page", {"unexpected": BODY_MARKER}),
    }


SHAPES = sorted(_shape_cases(ADAPTERS[0]))


@by_name(ADAPTERS)
@pytest.mark.parametrize("case", SHAPES)
def test_json_of_the_wrong_shape_is_permanent(adapter: Adapter, case: str) -> None:
    read, body = _shape_cases(adapter)[case]
    content = json.dumps(body).encode()
    error = fails(adapter, lambda r: httpx.Response(200, content=content), read)
    assert isinstance(error, PermanentError), (adapter.name, case, repr(error))
    assert "unexpected response shape" in str(error)


@by_name(ADAPTERS)
def test_a_page_item_of_the_wrong_type_is_permanent(adapter: Adapter) -> None:
    record = PAGE_RECORDS[adapter.name]
    broken = {**record(2), **PAGE_WRONG_TYPE[adapter.name]}
    body = adapter.page([record(1), broken, record(3)])
    error = fails(adapter, lambda r: httpx.Response(200, json=body), "read_page")
    assert isinstance(error, PermanentError), repr(error)


# -- enormous answers --------------------------------------------------------------------------


def answer_once(body: bytes, calls: list[str] | None = None) -> Handler:
    """``body`` for the first request, an empty page after it (OnlineERP asks past a full page)."""
    seen = calls if calls is not None else []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if len(seen) > 1:
            return httpx.Response(200, json=[])
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return answer


@by_name(ADAPTERS)
@pytest.mark.timeout(120)
def test_a_page_of_50000_records_is_read_whole_without_hanging(adapter: Adapter) -> None:
    """A server that ignores the page size: every record is read once, and the scan ends."""
    record = PAGE_RECORDS[adapter.name]
    big = json.dumps(adapter.page([record(n) for n in range(50_000)])).encode()
    assert len(big) < MAX_RESPONSE_BYTES
    calls: list[str] = []
    records = adapter.read_page(adapter.client(answer_once(big, calls)))
    assert len(records) == 50_000
    assert len(calls) <= 2, "the scan ends"


@by_name(ADAPTERS)
@pytest.mark.timeout(120)
def test_a_body_of_20_mb_is_read(adapter: Adapter) -> None:
    record = PAGE_RECORDS[adapter.name]
    filler = "x" * 40_000
    items = [record(n, note=filler) for n in range(500)]
    body = json.dumps(adapter.page(items)).encode()
    assert 20_000_000 <= len(body) < MAX_RESPONSE_BYTES

    assert len(adapter.read_page(adapter.client(answer_once(body)))) == 500


@by_name(ADAPTERS)
@pytest.mark.timeout(120)
def test_a_body_over_the_limit_is_refused_before_it_is_read(adapter: Adapter) -> None:
    """A declared length over the limit is refused at once: nothing is downloaded."""
    produced = 0

    def chunks() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(4):
            produced += 1
            yield b" " * (1 << 20)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=chunks(),
            headers={
                "content-type": "application/json",
                "content-length": str(MAX_RESPONSE_BYTES + 1),
            },
        )

    error = fails(adapter, answer, "read_page")
    assert isinstance(error, PermanentError), repr(error)
    assert "too large" in str(error)
    assert produced <= 1, "the body was not downloaded"


@by_name(ADAPTERS)
@pytest.mark.timeout(120)
def test_a_body_that_never_ends_is_cut_at_the_limit(adapter: Adapter) -> None:
    """A proxy streaming without end (no Content-Length): the read stops at the limit."""
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        chunk = b"[" + b'"' + b"y" * (1 << 20) + b'",'
        while True:
            sent += len(chunk)
            yield chunk

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "application/json"})

    error = fails(adapter, answer, "read_page")
    assert isinstance(error, PermanentError), repr(error)
    assert "too large" in str(error)
    assert sent <= MAX_RESPONSE_BYTES + 2 * (1 << 20)
