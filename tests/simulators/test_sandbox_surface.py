"""The /_sandbox control surface shared by every simulator, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators._sandbox import SeedRequest, Simulator, VendorError
from simulators.server import RunningSandbox


class EchoSimulator(Simulator):
    """A minimal vendor: a list of items, one read route, one write route."""

    name = "echo"
    non_mutating = frozenset({("POST", "/items/search")})

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, Any]] = []

    def routes(self) -> list[BaseRoute]:
        async def list_items(request: Request) -> Response:
            return JSONResponse(self.items)

        async def add_item(request: Request) -> Response:
            item = await request.json()
            with self.lock:
                self.items.append(item)
            return JSONResponse(item, status_code=201)

        async def search(request: Request) -> Response:
            return JSONResponse(self.items)

        async def boom(request: Request) -> Response:
            raise RuntimeError("simulated bug with a secret-looking value sandbox-secret")

        return [
            Route("/items", list_items, methods=["GET"]),
            Route("/items", add_item, methods=["POST"]),
            Route("/items/search", search, methods=["POST"]),
            Route("/boom", boom, methods=["GET"]),
        ]

    def vendor_error(self, code: str) -> VendorError:
        return VendorError(400, {"error": {"code": int(code), "type": "Injected"}})

    def records(self, entity: str) -> list[Any] | None:
        return list(self.items) if entity == "items" else None

    def entities(self) -> list[str]:
        return ["items"]

    def reset(self) -> None:
        self.items.clear()

    def seed(self, request: SeedRequest) -> dict[str, int]:
        self.items = [{"n": i} for i in range(request.customers)]
        return {"items": request.customers}


@pytest.fixture
def echo() -> Iterator[httpx.Client]:
    with (
        RunningSandbox(simulators={"echo": EchoSimulator()}) as running,
        httpx.Client(base_url=running.endpoints["echo"].url, timeout=10) as client,
    ):
        yield client


def test_stats_count_requests_by_route_and_writes(echo: httpx.Client) -> None:
    echo.get("/items")
    echo.post("/items", json={"a": 1})
    echo.post("/items/search", json={})
    stats = echo.get("/_sandbox/stats").json()
    assert stats["total"] == 3
    assert stats["writes"] == 1, "a search POST is not a write"
    assert {"method": "POST", "route": "/items", "status": "201", "count": 1} in stats["requests"]


def test_records_reset_and_seed(echo: httpx.Client) -> None:
    echo.post("/items", json={"a": 1})
    assert echo.get("/_sandbox/records/items").json() == [{"a": 1}]
    unknown = echo.get("/_sandbox/records/nope")
    assert unknown.status_code == 404
    assert unknown.json()["entities"] == ["items"]
    assert echo.post("/_sandbox/seed", json={"customers": 3}).json() == {"seeded": {"items": 3}}
    assert len(echo.get("/_sandbox/records/items").json()) == 3
    echo.post("/_sandbox/reset")
    assert echo.get("/_sandbox/records/items").json() == []
    assert echo.get("/_sandbox/stats").json()["total"] == 0


def test_status_fault_with_retry_after_and_count(echo: httpx.Client) -> None:
    rule = {"statuses": [503], "retry_after_s": 2, "count": 2, "path": "/items"}
    assert echo.post("/_sandbox/faults", json=rule).status_code == 200
    first, second, third = (echo.get("/items") for _ in range(3))
    assert first.status_code == second.status_code == 503
    assert first.headers["Retry-After"] == "2"
    assert third.status_code == 200, "count bounds how many requests fail"
    assert echo.get("/_sandbox/faults").json()["injected"] == {"503": 2}


def test_vendor_code_fault_uses_vendor_shape(echo: httpx.Client) -> None:
    echo.post(
        "/_sandbox/faults", json={"vendor_code": 40005, "path": "/items", "methods": ["POST"]}
    )
    answer = echo.post("/items", json={"a": 1})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"code": 40005, "type": "Injected"}}
    assert echo.get("/items").status_code == 200, "methods limits the rule"
    assert echo.get("/_sandbox/records/items").json() == [], "the failed write changed nothing"


def test_rate_applies_to_a_share_of_requests(echo: httpx.Client) -> None:
    echo.post("/_sandbox/faults", json={"statuses": [500], "rate": 0.3})
    statuses = [echo.get("/items").status_code for _ in range(300)]
    failed = statuses.count(500)
    assert 45 <= failed <= 135, failed


def test_drop_before_closes_the_connection_without_applying(echo: httpx.Client) -> None:
    echo.post("/_sandbox/faults", json={"drop_rate": 1.0, "count": 1, "path": "/items"})
    # Closed mid-answer: a protocol error or a reset, depending on timing.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        echo.post("/items", json={"a": 1})
    assert echo.get("/_sandbox/records/items").json() == []
    assert echo.post("/items", json={"a": 2}).status_code == 201


def test_drop_after_applies_then_closes(echo: httpx.Client) -> None:
    echo.post(
        "/_sandbox/faults",
        json={"drop_rate": 1.0, "drop_phase": "after", "count": 1, "methods": ["POST"]},
    )
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        echo.post("/items", json={"a": 1})
    assert echo.get("/_sandbox/records/items").json() == [{"a": 1}], "applied, answer lost"


def test_latency_delays_matching_requests(echo: httpx.Client) -> None:
    echo.post("/_sandbox/faults", json={"latency_ms": 150, "path": "/items"})
    answer = echo.get("/items")
    assert answer.status_code == 200
    assert answer.elapsed.total_seconds() >= 0.14


def test_max_per_s_answers_429_beyond_the_limit_and_applies_nothing(
    echo: httpx.Client,
) -> None:
    echo.post("/_sandbox/faults", json={"max_per_s": 3, "path": "/items"})
    started = time.monotonic()
    answers = [echo.post("/items", json={"n": n}) for n in range(5)]
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "five loopback requests take far less than the one-second window"
    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    waits = [float(a.headers["Retry-After"]) for a in answers[3:]]
    assert all(0 < wait <= 1.0 for wait in waits), "the time until the window frees a slot"
    assert [i["n"] for i in echo.get("/_sandbox/records/items").json()] == [0, 1, 2]
    stats = echo.get("/_sandbox/stats").json()
    assert stats["by_status"] == {"201": 3, "429": 2}
    assert echo.get("/_sandbox/faults").json()["injected"] == {"429": 2}


def test_max_per_s_window_slides_and_honours_retry_after_s(echo: httpx.Client) -> None:
    echo.post("/_sandbox/faults", json={"max_per_s": 1, "retry_after_s": 2, "path": "/items"})
    assert echo.get("/items").status_code == 200
    limited = echo.get("/items")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    time.sleep(1.05)
    assert echo.get("/items").status_code == 200, "a second later the window has room"
    assert echo.get("/boom").status_code == 500, "other paths are not limited"


def test_bad_fault_rules_are_refused(echo: httpx.Client) -> None:
    assert echo.post("/_sandbox/faults", json={"rate": 2, "statuses": [500]}).status_code == 400
    assert echo.post("/_sandbox/faults", json={"rate": 0.5}).status_code == 400
    assert echo.post("/_sandbox/faults", json={"statuses": [42]}).status_code == 400
    assert echo.post("/_sandbox/faults", json={"max_per_s": 0}).status_code == 400
    assert echo.post("/_sandbox/faults", content=b"not json").status_code == 400
    assert echo.get("/_sandbox/faults").json()["rules"] == []


def test_faults_never_touch_the_control_surface(echo: httpx.Client) -> None:
    echo.post("/_sandbox/faults", json={"statuses": [500]})
    assert echo.get("/_sandbox/stats").status_code == 200
    assert echo.delete("/_sandbox/faults").status_code == 200
    assert echo.get("/items").status_code == 200


def test_unhandled_errors_answer_in_vendor_shape_without_traceback(echo: httpx.Client) -> None:
    answer = echo.get("/boom")
    assert answer.status_code == 500
    assert answer.json() == {"statusCode": 500, "message": "Internal Server Error"}
    missing = echo.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["statusCode"] == 404
