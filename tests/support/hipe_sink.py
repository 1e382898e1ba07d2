"""Builders for the HIPE sink's tests against the simulator over real HTTP: customer events
and changes, the sandbox's companies as stored, and field-by-field comparisons.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from delivery.engine import ApplyContext, ApplyResult, Engine
from delivery.sinks.hipe import HipeSink
from erpsync.events import ChangeEvent, Delivery
from erpsync.mapping import TargetMapping
from simulators.server import RunningSandbox
from state.store import LedgerEntry


def change(key: str, version: int, *, active: bool = True, parent: str | None = None) -> Delivery:
    payload = {"key": key, "name": f"Company {key}", "parent_key": parent, "active": active}
    event = ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key=key,
        operation="upsert",
        payload=payload,
        source_version=version,
        parent_key=parent,
    )
    return Delivery(event=event, target="hipe")


def parked(engine: Engine) -> list[Delivery]:
    """Take every parked delivery, due or not."""
    members = engine.state.claim_due(now=engine.clock() + 1e6)
    engine.state.done(members)
    return [Delivery.model_validate(json.loads(m)) for m in members]


def companies(hipe: RunningSandbox) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{hipe.endpoints['hipe'].url}/_sandbox/records/companies", timeout=10)
    return {str(c["externalId"]): c for c in answer.json()}


CUSTOM = TargetMapping(
    custom_fields={
        "segment": "custom.segment",
        "erpNote": "custom.note",
        "sectors": "custom.sectors",
        "creditLimit": "custom.credit",
    }
)


_versions = itertools.count(10)


def record(key: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": name, "parent_key": None, "active": True, **fields}


def event_of(payload: Mapping[str, Any]) -> ChangeEvent:
    return ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key=str(payload["key"]),
        operation="upsert",
        payload=dict(payload),
        source_version=next(_versions),
        parent_key=payload.get("parent_key"),
    )


def as_stored(company: Mapping[str, Any], by_id: Mapping[int, str]) -> dict[str, Any]:
    """The fields of a HIPE company the customers flow writes, the parent by external id."""
    parent_id = company.get("parentId")
    return {
        "name": company.get("name"),
        "externalId": company.get("externalId"),
        "parent": by_id.get(parent_id) if parent_id is not None else None,
        "email": company.get("email"),
        "phone": company.get("phone"),
        "vat": company.get("vat"),
        "customFields": company.get("customFields"),
        "archived": company.get("archived"),
    }


def from_erp(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What HIPE holds for an ERP customer (the guide's fields; custom fields per mapping)."""
    custom = dict(payload.get("custom") or {})
    if custom.get("credit") is not None:  # a number custom field: the text as a JSON number
        credit = Decimal(custom["credit"])
        custom["credit"] = int(credit) if credit == int(credit) else float(credit)
    source = {
        "segment": "segment",
        "erpNote": "note",
        "sectors": "sectors",
        "creditLimit": "credit",
    }
    return {
        "name": payload["name"],
        "externalId": payload["key"],
        "parent": payload.get("parent_key"),
        "email": payload.get("email"),
        "phone": payload.get("phone"),
        "vat": payload.get("tax_number"),
        "customFields": {k: custom[v] for k, v in source.items() if custom.get(v) is not None},
        "archived": not payload.get("active", True),
    }


def assert_equal_and_views_agree(
    hipe: RunningSandbox, sink: HipeSink, payload: Mapping[str, Any]
) -> None:
    everything = list(companies(hipe).values())
    by_id = {c["id"]: str(c["externalId"]) for c in everything}
    (company,) = [c for c in everything if c["externalId"] == payload["key"]]
    assert as_stored(company, by_id) == from_erp(payload)
    observed = [o for o in sink.observed("customer") if o.key == payload["key"]]
    assert [o.target_id for o in observed] == [str(company["id"])]
    assert observed[0].fields == sink.expected("customer", payload)


FULL = {
    "email": "compta@dupont.qc.ca",
    "phone": "514 555 0100",
    "tax_number": "123456789RT0001",
    "custom": {
        "segment": "retail",
        "note": "net 30",
        "sectors": ["food", "pharma"],
        "credit": "1500.50",
    },
}


CHANGED = {
    "email": "ap@dupont.ca",
    "phone": "450 555 0199",
    "tax_number": "987654321RT0001",
    # a text custom field that spells a number stays text
    "custom": {"segment": "industry", "note": "45", "sectors": ["electronics"], "credit": "20"},
}


CLEARED: dict[str, Any] = {"email": None, "phone": None, "tax_number": None, "custom": {}}


STEPS = [
    record("C1", "Dupont & Fils", parent_key="P1", **FULL),
    record("C1", "Dupont et Fils inc.", parent_key="P2", **CHANGED),
    record("C1", "Dupont et Fils inc.", **CLEARED),
    record("C1", "Dupont", parent_key="P1", **FULL),
    record("C1", "Dupont", **CLEARED),
]


def bulk(sink: HipeSink, ledgers: dict[str, LedgerEntry], payloads: list[dict[str, Any]]) -> None:
    """The sink's bulk path (as delivery.batch drives it): one CSV import for the items."""

    def ctx(payload: Mapping[str, Any]) -> ApplyContext:
        parent_key = payload.get("parent_key")
        return ApplyContext(
            ledger=ledgers.get(str(payload["key"])),
            parent=ledgers.get(parent_key) if parent_key else None,
            lookup=lambda entity, key: ledgers.get(key),
        )

    events = [event_of(p) for p in payloads]
    items = [sink.bulk_item(e, ctx(e.payload)) for e in events]
    assert all(i is not None for i in items), "every change takes the bulk path"
    results = sink.apply_bulk([i for i in items if i is not None], lambda: None)
    for event, result in zip(events, results, strict=True):
        assert isinstance(result, ApplyResult), result
        ledgers[event.key] = LedgerEntry(
            event.fingerprint, event.source_version, target_id=result.target_id
        )
