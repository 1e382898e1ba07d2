"""A rig for the Propeller sink's tests: the sink against the simulator over HTTP, with its
requests counted and spied, customer events, and field-by-field comparisons.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from adapters import make_client
from delivery.batch import BatchApplier
from delivery.sinks.propeller import PropellerSink
from erpsync.events import Delivery
from erpsync.mapping import TargetMapping
from erpsync.settings import PropellerSettings
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support import make_event
from tests.support.engine import engine_over

SOURCE = "ERPSYNC"


MARKER = "ERPSYNC_INACTIVE"


Handler = Callable[[httpx.Request, httpx.Client], httpx.Response | None]


class Rig:
    """A sink, an engine on fakeredis, and the sandbox's records."""

    def __init__(
        self,
        sandbox: RunningSandbox,
        control: httpx.Client,
        intercept: Handler | None = None,
        **settings: Any,
    ) -> None:
        self.control = control
        self.settings = PropellerSettings(
            base_url=sandbox.endpoints["propeller"].api_url,
            client_id=CREDENTIALS["propeller"]["client_id"],
            client_secret=SecretStr(CREDENTIALS["propeller"]["client_secret"]),
            **settings,
        )
        http = make_client(self.settings)
        if intercept is not None:
            real = http

            def handler(request: httpx.Request) -> httpx.Response:
                answer = intercept(request, real)
                if answer is not None:
                    return answer
                forwarded = real.send(
                    real.build_request(
                        request.method,
                        request.url,
                        headers=request.headers,
                        content=request.content,
                    )
                )
                forwarded.read()
                return httpx.Response(
                    forwarded.status_code, headers=forwarded.headers, content=forwarded.content
                )

            http = httpx.Client(transport=httpx.MockTransport(handler), base_url=real.base_url)
            self._real = real
        self.sink = PropellerSink(self.settings, http, {"customer": TargetMapping()})
        self.engine = engine_over("propeller", self.sink, seed=5)
        self.version = 0

    def event(self, record: dict[str, Any], *, operation: str = "upsert") -> Delivery:
        self.version += 1
        event = make_event(
            record, version=self.version, operation=operation, parent_key=record.get("parent_key")
        )
        delivery = Delivery(event=event, target="propeller")
        self.engine.state.mark_produced("propeller", delivery.delivery_id, flow="customers")
        return delivery

    def single(self, *records: dict[str, Any]) -> None:
        for record in records:
            assert self.engine.process(self.event(record)) == "applied", record

    def bulk(self, *records: dict[str, Any]) -> None:
        deliveries = [self.event(r) for r in records]
        assert BatchApplier(self.engine).process(deliveries) == {"applied": len(records)}

    def companies(self) -> list[dict[str, Any]]:
        answer = self.control.get("/_sandbox/records/companies")
        answer.raise_for_status()
        records: list[dict[str, Any]] = answer.json()
        return records

    def company(self, key: str) -> dict[str, Any]:
        found = [
            c
            for c in self.companies()
            if {"source": SOURCE, "sourceId": key} in (c.get("sources") or [])
            and not c["recycleBin"]
        ]
        assert len(found) == 1, (key, found)
        return found[0]

    def requests(self, method: str, route: str, status: str | None = None) -> int:
        stats = self.control.get("/_sandbox/stats").json()
        return sum(
            row["count"]
            for row in stats["requests"]
            if row["method"] == method
            and row["route"].startswith(route)
            and status in (None, row["status"])
        )

    def reset_stats(self) -> None:
        self.control.delete("/_sandbox/stats").raise_for_status()

    def close(self) -> None:
        self.sink.close()
        if hasattr(self, "_real"):
            self._real.close()


def customer(key: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": key,
        "name": f"Company {key}",
        "parent_key": None,
        "email": None,
        "phone": None,
        "tax_number": None,
        "active": True,
    }
    record.update(fields)
    return record


def text(value: Any) -> Any:
    return value if value not in ("", None) else None


def assert_equal(rig: Rig, record: dict[str, Any]) -> None:
    """The whole company, field by field, against the canonical record."""
    company = rig.company(record["key"])
    by_id = {c["id"]: c for c in rig.companies()}
    parent = company["parent"]
    parent_key = None
    if parent is not None:
        (parent_key,) = [
            s["sourceId"] for s in by_id[parent["id"]]["sources"] if s["source"] == SOURCE
        ]
    marker = {a["name"]: a["value"] for a in company["attributes"]}.get(MARKER)
    seen = {
        "name": company["name"],
        "email": text(company["email"]),
        "phone": text(company["phone"]),
        "tax_number": text(company["taxNumber"]),
        "parent_key": parent_key,
        "active": marker != "Y",
        "language": company["language"],
        "recycle_bin": company["recycleBin"],
    }
    want = {
        "name": record["name"],
        "email": record["email"],
        "phone": record["phone"],
        "tax_number": record["tax_number"],
        "parent_key": record["parent_key"],
        "active": record["active"],
        "language": "EN",
        "recycle_bin": False,
    }
    assert seen == want


FULL = {"email": "a@acme.example", "phone": "+1 514 555 0100", "tax_number": "BE0123"}


CHANGED = {"email": "b@acme.example", "phone": "+1 514 555 0200", "tax_number": "BE0456"}


CLEARED = {"email": None, "phone": None, "tax_number": None}


def bulk_spy(bodies: list[dict[str, Any]]) -> Handler:
    def spy(request: httpx.Request, real: httpx.Client) -> None:
        if request.url.path.endswith("/companies/bulk/sourceId"):
            bodies.append(json.loads(request.content))

    return spy
