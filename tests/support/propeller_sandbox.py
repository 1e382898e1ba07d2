"""Helpers for the Propeller sandbox's tests: calls and error readers for a client of the
simulator.
"""

from __future__ import annotations

from typing import Any

import httpx

START = 1_767_225_600.0  # 2026-01-01T00:00:00 UTC


START_STAMP = "2026-01-01T00:00:00"


CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox",
    "client_secret": "sandbox-secret",
}


def error_of(answer: httpx.Response) -> dict[str, Any]:
    """The ``error`` member, after checking the documented error body shape."""
    body = answer.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "status", "type", "messages", "moreInfo"}
    assert error["status"] == answer.status_code
    assert error["moreInfo"] == f"https://www.propel.us/docs/errors/{error['code']}"
    assert error["messages"], "an error always says why"
    return error


def assert_error(answer: httpx.Response, status: int, code: int, type_: str) -> list[str]:
    """The answer is the given vendor error; returns its messages."""
    assert answer.status_code == status, answer.text
    error = error_of(answer)
    assert (error["code"], error["type"]) == (code, type_)
    messages: list[str] = error["messages"]
    return messages


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = api.post("/v2/companies", json=fields)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def bulk(
    api: httpx.Client, companies: list[Any], directives: Any = None, key: str = "sourceId"
) -> Any:
    body: dict[str, Any] = {"companies": companies}
    if directives is not None:
        body["directives"] = directives
    answer = api.post(f"/v2/companies/bulk/{key}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def get(api: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    answer = api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def erp(source_id: str, language: str = "EN", **fields: Any) -> dict[str, Any]:
    return {"source": "ERP", "sourceId": source_id, "language": language, **fields}


def records(client: httpx.Client, entity: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/_sandbox/records/{entity}").json()
    return found


ADDRESS = {"type": "delivery", "street": "12 rue Saint-Paul", "city": "Montréal", "country": "CA"}
