"""Helpers for the HIPE sandbox's tests: creates, searches, waits and imports over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TOKEN = "sandbox-token"


POLL_LIMIT_S = 60.0


def create(hipe: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = hipe.post("/api/companies", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def search(hipe: httpx.Client, condition: str, **params: Any) -> Any:
    response = hipe.get("/api/companies", params={"s": condition, **params})
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> Any:
    """Poll until ``done`` (the background import); fails after a generous bound."""
    deadline = time.monotonic() + POLL_LIMIT_S
    while True:
        body = read()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"still waiting: {body}"
        time.sleep(0.02)


def post_import(hipe: httpx.Client, csv_text: str | bytes, delimiter: str = ",") -> httpx.Response:
    data = csv_text.encode("utf-8") if isinstance(csv_text, str) else csv_text
    return hipe.post(
        "/api/imports",
        data={"type": "16", "delimiter": delimiter},
        files={"csv": ("companies.csv", data, "text/csv")},
    )


def job(hipe: httpx.Client, job_id: str) -> dict[str, Any]:
    answer = hipe.get(f"/api/imports/{job_id}")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def finished(hipe: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = wait_for(lambda: job(hipe, job_id), lambda j: j["status"] in (7, 8))
    return body
