"""Builders for the billing saga's tests: the ERP and Atollon as fakes behind
``httpx.MockTransport`` that answer as the sandbox conventions say (412 ``Exists`` for a
guarded create of an existing Référence, 400 ``InvalidBody`` naming an unknown customer,
``$filter`` on ``Facture.Référence``), billing records and events, and an engine on fakeredis.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import fakeredis
import httpx
from pydantic import SecretStr

from adapters import make_client
from delivery.engine import ApplyContext, Engine, Sink
from delivery.policy import RetryPolicy
from delivery.sinks.onlineerp import OnlineErpSink, SagaProgress
from erpsync.billing import billing_reference
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.models import Invoice
from erpsync.settings import AtollonSettings, OnlineErpSettings
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import LedgerEntry, State
from tests.support import make_event

ERP_SETTINGS = OnlineErpSettings(
    base_url="http://127.0.0.1:9/api", licence_code="LIC", secret=SecretStr("s3cret-value")
)


ATOLLON_SETTINGS = AtollonSettings(base_url="http://127.0.0.1:9", instance="sandbox")


ACTIVITY = "7000001"


ITEMS = ["900010", "900011", "900012"]


@dataclass
class World:
    """The fake ERP and Atollon, with one log of everything the saga did, in order."""

    customers: set[str] = field(default_factory=lambda: {"C000042"})
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Référence
    billed: dict[str, str] = field(default_factory=dict)  # item id -> status
    activity_status: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    atollon_failures: list[httpx.Response] = field(default_factory=list)
    atollon_invoices: list[dict[str, Any]] = field(default_factory=list)
    #: answers of ``POST invoice-issued`` to lose after the invoice is stored
    lose_record_answers: int = 0

    def erp(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/api/Entity/CustomerInvoice")
        number = request.url.path.removeprefix("/api/Entity/CustomerInvoice").strip("/")
        if request.method == "GET" and number:
            self.log.append("erp:get")
            found = next((i for i in self.invoices.values() if i["NoFacture"] == number), None)
            if found is None:
                return httpx.Response(404, json={"Message": "no", "Code": "NotFound"})
            return httpx.Response(200, json=found)
        if request.method == "GET":
            self.log.append("erp:find")
            match = re.fullmatch(r"Facture\.Référence eq '(.*)'", request.url.params["$filter"])
            assert match is not None
            found = self.invoices.get(match.group(1).replace("''", "'"))
            return httpx.Response(200, json=[found] if found else [])
        self.log.append("erp:create")
        body = json.loads(request.content)
        self.bodies.append(body)
        facture = body["Facture"]
        if facture["Référence"] in self.invoices:
            guarded = request.headers.get("If-None-Match") == "*"
            return httpx.Response(
                412 if guarded else 409, json={"Message": "exists", "Code": "Exists"}
            )
        customer = facture["InfoClientFacturerA"]["NoClient"]
        if customer not in self.customers:
            return httpx.Response(
                400,
                json={
                    "Message": f"The customer '{customer}' (InfoClientFacturerA.NoClient) "
                    "does not exist.",
                    "Code": "InvalidBody",
                },
            )
        self.invoices[facture["Référence"]] = stored = erp_stored(
            f"{len(self.invoices) + 1:08d}", facture
        )
        return httpx.Response(201, json=stored)

    def atollon(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/crab/crawler/invoice-issued":
            return self.atollon_invoice(request)
        assert (request.method, request.url.path) == ("PUT", "/crab/crawler/billing")
        self.log.append("atollon:billed")
        if self.atollon_failures:
            return self.atollon_failures.pop(0)
        for entry in json.loads(request.content):
            for billing_item in entry["billingItems"]:
                self.billed[billing_item["id"]] = billing_item["billingStatus"]
            if entry["activity"].get("statusName"):
                self.activity_status[entry["activity"]["id"]] = entry["activity"]["statusName"]
        return httpx.Response(200, json={"result": "SUCCESS"})

    def atollon_invoice(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.log.append("atollon:find")
            number = request.url.params["invoiceNumber"]
            found = [i for i in self.atollon_invoices if i["invoiceNumber"] == number]
            return httpx.Response(200, json=found)
        assert request.method == "POST"
        self.log.append("atollon:record")
        invoice = {**json.loads(request.content), "id": f"A{len(self.atollon_invoices) + 1}"}
        self.atollon_invoices.append(invoice)
        if self.lose_record_answers:
            self.lose_record_answers -= 1
            raise httpx.ReadError("connection closed after the invoice was stored")
        return httpx.Response(200, json={"result": "SUCCESS", "invoiceId": invoice["id"]})


def _cents(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def erp_stored(number: str, facture: dict[str, Any]) -> dict[str, Any]:
    """An invoice as the ERP stores it (docs/sandbox-conventions.md): each priced line taxed
    at its ``TauxTaxe`` (14.975 % by default), totals, the open state."""
    lines, net_total, tax_total = [], Decimal(0), Decimal(0)
    for line in facture["LigneFacture"]:
        rate = Decimal(str(line.get("TauxTaxe", 14.975)))
        net = Decimal(str(line["QteFacture"])) * Decimal(str(line["PrixUnitaire"]))
        tax = Decimal(str(_cents(net * rate / 100)))
        lines.append(
            {
                **line,
                "TauxTaxe": float(rate),
                "MontantLigne": _cents(net),
                "MontantTaxe": float(tax),
            }
        )
        net_total, tax_total = net_total + net, tax_total + tax
    return {
        "NoFacture": number,
        "Facture": {**facture, "LigneFacture": lines},
        "TotalAvantTaxes": _cents(net_total),
        "TotalTaxes": _cents(tax_total),
        "TotalAvecTaxes": _cents(net_total + tax_total),
        "Statut": "Ouverte",
        "MontantPaye": 0,
        "SoldeDu": _cents(net_total + tax_total),
    }


def make_sink(
    world: World,
    mapping: Mapping[str, Any] | None = None,
    erp: Callable[[httpx.Request], httpx.Response] | None = None,
) -> OnlineErpSink:
    return OnlineErpSink(
        ERP_SETTINGS,
        make_client(ERP_SETTINGS, transport=httpx.MockTransport(erp or world.erp)),
        {"billing": TargetMapping.model_validate(mapping or {})},
        atollon=ATOLLON_SETTINGS,
        atollon_http=make_client(ATOLLON_SETTINGS, transport=httpx.MockTransport(world.atollon)),
    )


def payload(items: list[str] = ITEMS, customer: str | None = "C000042") -> dict[str, Any]:
    """A billing record as the producer maps it: item 900010 is 2 × 10.50, and so on."""
    return {
        "reference": billing_reference(ACTIVITY, items),
        "customer_key": customer,
        "description": "Atollon ACT-1 Intervention",
        "date": "2026-10-09",
        "currency": "CAD",
        "lines": [
            {
                "product_key": None if index == 2 else f"P0000{index + 1}",
                "description": f"Travaux {item_id}",
                "quantity": str(index + 2),
                "unit_price": "10.50",
                "vat_rate": "14.975",
                "source_item_id": item_id,
            }
            for index, item_id in enumerate(items)
        ],
        "activity_id": ACTIVITY,
        "project_id": "8000001",
        "billing_item_ids": items,
    }


def event(body: dict[str, Any], version: int = 1, operation: str = "upsert") -> ChangeEvent:
    """The activity's billable items as the Atollon producer sends them."""
    return make_event(
        body,
        flow="billing",
        source="atollon",
        entity="billing",
        key=ACTIVITY,
        version=version,
        operation=operation,
    )


def context(world: World, extra: str | None = None) -> ApplyContext:
    ledger = None if extra is None else LedgerEntry(fingerprint="", source_version=0, extra=extra)
    return ApplyContext(
        ledger=ledger,
        parent=None,
        lookup=lambda entity, key: None,
        checkpoint=lambda value: world.log.append(f"checkpoint:{value}"),
    )


def checkpoints(world: World) -> list[SagaProgress]:
    return [
        SagaProgress.model_validate_json(line.removeprefix("checkpoint:"))
        for line in world.log
        if line.startswith("checkpoint:")
    ]


def steps(world: World) -> list[str]:
    return [line.split(":")[0] if line.startswith("checkpoint") else line for line in world.log]


def product_of(key: str, name: str) -> dict[str, Any]:
    return {
        "product": {"itemName": name, "productExternalId": [{"system": "onlineerp", "id": key}]}
    }


def stored_invoice(world: World, number: str) -> None:
    """The ERP invoice of ``payload()`` stored under ``number`` (step 1 done earlier)."""
    body = make_sink(world).erp_invoice(
        Invoice.model_validate(payload()), billing_reference(ACTIVITY, ITEMS), []
    )
    facture = {
        **body.to_erp(exclude_none=True),
        "LigneFacture": [
            {"strNoProduit": "P00001", "QteFacture": 2, "PrixUnitaire": 10.5},
        ],
    }
    world.invoices[billing_reference(ACTIVITY, ITEMS)] = erp_stored(number, facture)


def progress_at(step: str, number: str = "00000077", **more: Any) -> str:
    return SagaProgress.model_validate(
        {
            "step": step,
            "reference": billing_reference(ACTIVITY, ITEMS),
            "invoice_number": number,
            "item_ids": ITEMS,
            "invoiced_item_ids": ITEMS,
            **more,
        }
    ).model_dump_json()


def make_engine(redis_client: fakeredis.FakeRedis, sink: OnlineErpSink) -> Engine:
    keys = Keys("t")
    sinks: Mapping[str, Sink] = {"onlineerp": sink}
    return Engine(
        state=State(redis_client, keys),
        circuit=Circuit(redis_client, keys, failure_threshold=5, cooldown_s=10),
        dlq=DeadLetterStore(redis_client, keys),
        sinks=lambda: sinks,
        policy=RetryPolicy(transient_max_attempts=5, dependency_max_waits=1),
        rng=random.Random(3),
    )
