"""Every field the shared table (erpsync.flows) says a sink writes is what the sink sends.

``erpsync doctor`` shows a flow's field mapping from the table; the sinks write with their
own code. Each sink applies a record whose every canonical field has a value of its own,
against the sandbox over HTTP, and the bodies it sent must carry each value at the field the
table names (and the mapping's overrides and custom fields where they say), so that what
doctor shows cannot drift from what is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import make_client
from delivery.engine import Sink
from delivery.sinks.atollon import AtollonSink
from delivery.sinks.hipe import HipeSink
from delivery.sinks.onlineerp import OnlineErpSink
from delivery.sinks.propeller import PropellerSink
from erpsync.events import Delivery
from erpsync.flows import TARGETS, effective_mapping
from erpsync.mapping import TargetMapping, resolve
from erpsync.models import Invoice
from erpsync.settings import (
    AtollonSettings,
    HipeSettings,
    HttpSystemSettings,
    OnlineErpSettings,
    PropellerSettings,
)
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support import delivery_of, make_event
from tests.support.engine import engine_over

#: fields whose value the sink translates (a lifecycle representation): present, not equal
TRANSLATED = {"active"}


class Recording(httpx.BaseTransport):
    """Sends requests on and keeps each JSON body sent."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[Any] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.content and request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            self.bodies.append(json.loads(request.content))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def flatten(
    value: Any, path: str = "", out: dict[str, list[Any]] | None = None
) -> dict[str, list[Any]]:
    """Every leaf of a JSON body by dotted path, ``[]`` after a list's name."""
    found: dict[str, list[Any]] = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for item in value:
            flatten(item, f"{path}[]", found)
    else:
        found.setdefault(path, []).append(value)
    return found


def company(key: str, parent_key: str | None = None) -> dict[str, Any]:
    """A canonical company whose every field has a value of its own."""
    return {
        "key": key,
        "name": f"Name of {key}",
        "parent_key": parent_key,
        "email": f"{key.lower()}@example.com",
        "phone": f"+1 514 555 {len(key):04d}",
        "tax_number": f"TAX-{key}",
        "language": "FR",
        "active": True,
        "address": {
            "line1": f"1 rue {key}",
            "city": f"City {key}",
            "region": "QC",
            "postal_code": "H2X 1Y4",
            "country": "CA",
        },
        "addresses": [
            {
                "code": "delivery:D1",
                "type": "delivery",
                "line1": f"2 rue {key}",
                "city": f"Town {key}",
                "region": "ON",
                "postal_code": "K1A 0B1",
                "country": "FR",
            }
        ],
        "custom": {"segment": f"segment {key}", "shop_email": f"shop-{key.lower()}@example.com"},
    }


def product(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": f"Product {key}",
        "price": "12.5",
        "currency": "CAD",
        "vat_rate": "TPS 5 %",
        "units": "h",
        "active": True,
        "group": "G1",
        "custom": {},
    }


def delivery(target: str, entity: str, payload: dict[str, Any]) -> Delivery:
    event = make_event(payload, flow="f", entity=entity, parent_key=payload.get("parent_key"))
    return delivery_of(event, target)


def settings_for(target: str, sandbox: RunningSandbox) -> HttpSystemSettings:
    url = sandbox.endpoints[target].api_url
    models: dict[str, type[HttpSystemSettings]] = {
        "propeller": PropellerSettings,
        "hipe": HipeSettings,
        "atollon": AtollonSettings,
        "onlineerp": OnlineErpSettings,
    }
    return models[target].model_validate({"base_url": url, **CREDENTIALS[target]})


def build(
    target: str,
    system: HttpSystemSettings,
    http: httpx.Client,
    mappings: Mapping[str, TargetMapping],
) -> Sink:
    if isinstance(system, PropellerSettings):
        return PropellerSink(system, http, mappings)
    if isinstance(system, HipeSettings):
        return HipeSink(system, http, mappings)
    if isinstance(system, AtollonSettings):
        return AtollonSink(system, http, mappings)
    raise AssertionError(target)


@pytest.fixture
def fresh(sandbox: RunningSandbox) -> RunningSandbox:
    for endpoint in sandbox.endpoints.values():
        httpx.post(f"{endpoint.url}/_sandbox/reset", timeout=10).raise_for_status()
    return sandbox


def run(
    target: str, sandbox: RunningSandbox, mapping: TargetMapping, records: list[Delivery]
) -> list[Any]:
    """Apply the records in order through the engine; the JSON bodies the sink sent."""
    system = settings_for(target, sandbox)
    recording = Recording()
    entity = records[0].event.entity
    sink = build(target, system, make_client(system, transport=recording), {entity: mapping})
    engine = engine_over(target, sink, seed=1)
    try:
        for record in records:
            assert engine.process(record) == "applied", record.event.key
    finally:
        recording.close()
    return recording.bodies


MAPPINGS = {
    "propeller": TargetMapping(fields={"email": "custom.shop_email", "notes": "custom.segment"}),
    "hipe": TargetMapping(
        fields={"phone": "custom.segment"}, custom_fields={"erpNote": "custom.segment"}
    ),
    "atollon": TargetMapping(),
}


@pytest.mark.parametrize("target", ["propeller", "hipe", "atollon"])
def test_customer_fields_reach_the_target_fields_the_table_names(
    target: str, fresh: RunningSandbox
) -> None:
    parent, child = company("P1"), company("C1", parent_key="P1")
    mapping = MAPPINGS[target]
    bodies = run(
        target,
        fresh,
        mapping,
        [delivery(target, "customer", parent), delivery(target, "customer", child)],
    )
    sent: dict[str, list[Any]] = {}
    for body in bodies:
        if "C1" in json.dumps(body):  # the child's bodies (not the parent's, nor a token's)
            # HIPE's address guide sends a bare array of a company's addresses; a new
            # Propeller company with addresses goes in a one-item bulk call
            if isinstance(body, list):
                body = {"addresses": body}
            for item in body.get("companies", [body]):
                flatten(item, out=sent)
    routes = effective_mapping("onlineerp", "customer", target, mapping, {})
    assert {r.target for r in routes} >= {f.target for f in TARGETS[("customer", target)].fields}
    for route in routes:
        if route.canonical in TRANSLATED:
            continue
        expected = resolve(child, route.canonical)
        if route.canonical.startswith("addresses[]."):
            expected = child["addresses"][0][route.canonical.removeprefix("addresses[].")]
        if route.canonical == "parent_key" and target == "hipe":
            expected = int(
                next(b["id"] for b in _created(fresh, "hipe") if b["externalId"] == "P1")
            )
        assert expected in sent.get(route.target, []), (route, sorted(sent))


def _created(sandbox: RunningSandbox, target: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=sandbox.endpoints[target].url, timeout=10) as control:
        records: list[dict[str, Any]] = control.get("/_sandbox/records/companies").json()
    return records


def test_product_fields_reach_the_atollon_fields_the_table_names(fresh: RunningSandbox) -> None:
    record = product("X1")
    sent: dict[str, list[Any]] = {}
    for body in run("atollon", fresh, TargetMapping(), [delivery("atollon", "product", record)]):
        flatten(body, out=sent)
    for route in effective_mapping("onlineerp", "product", "atollon", TargetMapping(), {}):
        if route.canonical in TRANSLATED:
            assert route.target in sent, route
            continue
        expected = resolve(record, route.canonical)
        if route.canonical == "price":
            assert [Decimal(str(v)) for v in sent[route.target]] == [Decimal(expected)], route
        else:
            assert expected in sent.get(route.target, []), (route, sorted(sent))


def test_invoice_fields_reach_the_erp_fields_the_table_names() -> None:
    invoice = Invoice.model_validate(
        {
            "reference": "ATL-A1-0000",
            "customer_key": "C1",
            "description": "Atollon work",
            "date": "2026-01-02",
            "currency": "CAD",
            "lines": [
                {
                    "product_key": "X1",
                    "description": "Line one",
                    "quantity": "2",
                    "unit_price": "12.5",
                    "vat_rate": "0.15",
                }
            ],
            "activity_id": "A1",
        }
    )
    mapping = TargetMapping(
        custom_fields={"Devise": "currency", "LigneFacture.TauxTaxe": "vat_rate"}
    )
    system = OnlineErpSettings(base_url="http://127.0.0.1:1", licence_code="L", secret="s")  # type: ignore[arg-type]
    with httpx.Client() as http:
        sink = OnlineErpSink(system, http, {"billing": mapping})
        body = sink.erp_invoice(invoice, invoice.reference, list(invoice.lines))
    sent = flatten(body.model_dump(mode="json", by_alias=True))
    record = invoice.model_dump(mode="json")
    for route in effective_mapping("atollon", "billing", "onlineerp", mapping, {}):
        line = route.canonical.startswith("lines.") or route.target.startswith("LigneFacture")
        path = route.canonical.removeprefix("lines.")
        expected = resolve(record["lines"][0], path) if line else resolve(record, path)
        target = route.target
        if route.origin == "custom_fields" and line:
            target = f"LigneFacture[].{target.removeprefix('LigneFacture.')}"
        values = [_comparable(v) for v in sent.get(target, [])]
        assert _comparable(expected) in values, (route, sorted(sent))


def _comparable(value: Any) -> Any:
    """Amounts as decimals (the ERP's JSON takes numbers, the invoice holds text)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return value
