"""The billing saga: ERP invoice exactly once, then Atollon items Billed, resumable between.

The ERP and Atollon are fakes behind ``httpx.MockTransport`` that answer as the sandbox
conventions say (412 ``Exists`` for a guarded create of an existing Référence, 400
``InvalidBody`` naming an unknown customer, ``$filter`` on ``Facture.Référence``). The last
tests run the saga through the real engine on fakeredis.
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
import pytest
from pydantic import SecretStr

from adapters import make_client
from delivery.engine import ApplyContext, Engine, InvalidSourceDataError, Sink
from delivery.policy import RetryPolicy
from delivery.sinks.onlineerp import OnlineErpSink, SagaProgress
from erpsync.billing import billing_reference
from erpsync.errors import DependencyError, PermanentError, TransientError
from erpsync.events import ChangeEvent, Delivery
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


# -- one apply ------------------------------------------------------------------------------


def test_invoices_then_checkpoints_then_marks_the_items_billed() -> None:
    world = World()
    sink = make_sink(world, {"fields": {"activity_status": "Invoiced"}})
    result = sink.apply(event(payload()), context(world))

    assert steps(world) == [
        "erp:create",
        "checkpoint",
        "checkpoint",
        "atollon:record",
        "checkpoint",
        "atollon:billed",
    ]
    (invoice,) = world.invoices.values()
    facture = invoice["Facture"]
    assert facture["Référence"] == billing_reference(ACTIVITY, ITEMS)
    assert facture["InfoClientFacturerA"] == {"NoClient": "C000042"}
    assert facture["DateFacture"] == "2026-10-09"
    assert [line.get("strNoProduit") for line in facture["LigneFacture"]] == [
        "P00001",
        "P00002",
        None,
    ]
    assert [(line["QteFacture"], line["PrixUnitaire"]) for line in facture["LigneFacture"]] == [
        (2, 10.5),
        (3, 10.5),
        (4, 10.5),
    ]
    assert facture["LigneFacture"][2]["DescriptionLigne"] == "Travaux 900012", "a text line"
    assert invoice["TotalAvantTaxes"] == pytest.approx(94.5)
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert world.activity_status == {ACTIVITY: "Invoiced"}

    assert result.action == "invoiced"
    assert result.counts == ("invoice_recorded",), "erpsync status counts it once"
    assert result.target_id == invoice["NoFacture"]
    assert result.extra is not None
    done = SagaProgress.model_validate_json(result.extra)
    assert (done.step, done.invoice_number, done.invoiced_item_ids) == (
        "billed",
        invoice["NoFacture"],
        ITEMS,
    )
    assert [(c.step, c.invoice_number, c.atollon_invoice_id) for c in checkpoints(world)] == [
        ("invoiced", invoice["NoFacture"], None),
        ("recording", invoice["NoFacture"], None),
        ("recorded", invoice["NoFacture"], "A1"),
    ]
    assert (done.atollon_invoice_id, done.recorded) == ("A1", {invoice["NoFacture"]: "A1"})

    # Step 2: the invoice in Atollon, as the ERP stored it (rows, taxes and totals its own).
    (recorded,) = world.atollon_invoices
    ext = [{"system": "onlineerp", "id": "C000042"}]
    context_ = {"activity": ACTIVITY, "project": "8000001"}
    assert recorded == {
        "id": "A1",
        "invoiceNumber": invoice["NoFacture"],
        "externalNumber": invoice["NoFacture"],
        "externalReferenceNumber": billing_reference(ACTIVITY, ITEMS),
        "issuedDate": "2026-10-09",
        "taxationDate": "2026-10-09",
        "stateName": "Issued",
        "customer": {"customerExternalId": ext, "contactExternalId": ext},
        "rows": [
            {
                "orderIndex": index,
                "description": f"Travaux {item}",
                "value": {
                    "netTotal": net,
                    "currency": "CAD",
                    "unitPrice": 10.5,
                    "unitQuantity": quantity,
                    "VAT": "14.975 %",
                    "VATPercent": 14.975,
                    "VATValue": vat,
                },
                **product,
                "context": context_,
            }
            for index, (item, quantity, net, vat, product) in enumerate(
                [
                    ("900010", 2, 21.0, 3.14, product_of("P00001", "Travaux 900010")),
                    ("900011", 3, 31.5, 4.72, product_of("P00002", "Travaux 900011")),
                    ("900012", 4, 42.0, 6.29, {}),
                ]
            )
        ],
        "totals": {
            "currency": "CAD",
            "currencyRate": 1.0,
            "total": 108.65,
            "totalWithVAT": 108.65,
        },
        "payment": {"toBePaid": 108.65},
        "context": context_,
        "texts": {"description": "Atollon ACT-1 Intervention"},
    }
    assert (invoice["TotalTaxes"], invoice["TotalAvecTaxes"]) == (14.15, 108.65)


def product_of(key: str, name: str) -> dict[str, Any]:
    return {
        "product": {"itemName": name, "productExternalId": [{"system": "onlineerp", "id": key}]}
    }


def test_a_crash_before_the_checkpoint_finds_the_invoice_and_only_marks_billed() -> None:
    world = World()
    make_sink(world).apply(event(payload()), context(world))
    world.log.clear()
    world.billed.clear()  # the first worker died before step 2 (before its checkpoint)
    world.atollon_invoices.clear()

    result = make_sink(world).apply(event(payload()), context(world))

    assert steps(world) == [
        "erp:create",
        "erp:find",
        "checkpoint",
        "checkpoint",
        "atollon:record",
        "checkpoint",
        "atollon:billed",
    ]
    assert len(world.invoices) == 1, "the 412 stopped a second invoice"
    assert len(world.atollon_invoices) == 1
    assert world.bodies[-1]["Facture"]["Référence"] == billing_reference(ACTIVITY, ITEMS)
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert result.target_id == "00000001"


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


def test_a_checkpoint_after_step_one_reads_the_invoice_back_and_never_creates_it() -> None:
    world = World()
    stored_invoice(world, "00000077")
    result = make_sink(world).apply(event(payload()), context(world, extra=progress_at("invoiced")))
    assert steps(world) == [
        "erp:get",
        "checkpoint",
        "atollon:record",
        "checkpoint",
        "atollon:billed",
    ], "no ERP create, no Atollon look-up: the POST was certainly not sent before"
    (recorded,) = world.atollon_invoices
    assert recorded["invoiceNumber"] == "00000077"
    assert recorded["totals"]["totalWithVAT"] == 24.14
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert result.target_id == "00000077"
    assert result.extra is not None
    assert SagaProgress.model_validate_json(result.extra).step == "billed"


def test_a_checkpoint_during_step_two_looks_the_invoice_up_before_posting_it() -> None:
    world = World()
    stored_invoice(world, "00000077")
    world.atollon_invoices.append({"id": "A9", "invoiceNumber": "00000077"})
    result = make_sink(world).apply(
        event(payload()), context(world, extra=progress_at("recording"))
    )
    assert steps(world) == ["erp:get", "atollon:find", "checkpoint", "atollon:billed"]
    assert len(world.atollon_invoices) == 1, "the POST whose answer was lost had landed"
    assert result.extra is not None
    assert SagaProgress.model_validate_json(result.extra).atollon_invoice_id == "A9"

    world.log.clear()
    world.atollon_invoices.clear()  # this time the lost POST had not landed
    make_sink(world).apply(event(payload()), context(world, extra=progress_at("recording")))
    assert steps(world) == [
        "erp:get",
        "atollon:find",
        "checkpoint",
        "atollon:record",
        "checkpoint",
        "atollon:billed",
    ]
    assert len(world.atollon_invoices) == 1


def test_a_post_that_may_still_land_is_waited_for_before_posting_again() -> None:
    world = World()
    stored_invoice(world, "00000077")
    sink = make_sink(world)
    sink.clock = lambda: 1_000.0
    extra = progress_at("recording", recording_at=990.0)  # sent 10 s ago; timeout 30 s
    with pytest.raises(DependencyError) as caught:
        sink.apply(event(payload()), context(world, extra=extra))
    assert caught.value.vendor_code == "invoice-post-may-land"
    assert caught.value.retry_after_s == pytest.approx(25.0)
    assert world.atollon_invoices == [], "not posted while the earlier POST may land"
    assert steps(world) == ["erp:get", "atollon:find"]

    world.log.clear()
    sink.clock = lambda: 1_026.0  # past the timeout and its margin: it did not land
    sink.apply(event(payload()), context(world, extra=extra))
    assert steps(world)[:3] == ["erp:get", "atollon:find", "checkpoint"]
    assert len(world.atollon_invoices) == 1
    assert checkpoints(world)[0].recording_at == 1_026.0


def test_a_checkpoint_after_step_two_only_marks_billed() -> None:
    world = World()
    extra = progress_at("recorded", atollon_invoice_id="A3", recorded={"00000077": "A3"})
    result = make_sink(world).apply(event(payload()), context(world, extra=extra))
    assert steps(world) == ["atollon:billed"], "neither the ERP nor invoice-issued again"
    assert result.extra is not None
    done = SagaProgress.model_validate_json(result.extra)
    assert (done.step, done.atollon_invoice_id, done.recorded, done.counted) == (
        "billed",
        "A3",
        {"00000077": "A3"},
        ["00000077"],
    )
    assert (result.action, result.counts) == ("invoiced", ("invoice_recorded",)), (
        "counted by the apply that finished the saga, whichever step it resumed at"
    )
    world.log.clear()
    again = make_sink(world).apply(event(payload(), version=2), context(world, result.extra))
    assert (again.action, again.counts) == ("updated", ()), "never counted twice"
    assert steps(world) == ["atollon:billed"]


def test_items_already_invoiced_are_left_out_of_a_later_invoice() -> None:
    world = World()
    earlier = ITEMS[:2]
    progress = SagaProgress(
        step="billed",
        reference=billing_reference(ACTIVITY, earlier),
        invoice_number="00000005",
        item_ids=earlier,
        invoiced_item_ids=earlier,
    )
    # A poll ran while step 2 was marking the first two: it listed them beside a new one.
    result = make_sink(world).apply(
        event(payload(ITEMS), version=2), context(world, extra=progress.model_dump_json())
    )
    (invoice,) = world.invoices.values()
    assert invoice["Facture"]["Référence"] == billing_reference(ACTIVITY, ["900012"])
    assert [line["DescriptionLigne"] for line in invoice["Facture"]["LigneFacture"]] == [
        "Travaux 900012"
    ]
    assert world.billed == dict.fromkeys(ITEMS, "Billed"), "every listed item is now invoiced"
    assert [i["invoiceNumber"] for i in world.atollon_invoices] == [invoice["NoFacture"]]
    assert result.extra is not None
    assert SagaProgress.model_validate_json(result.extra).invoiced_item_ids == ITEMS


def test_a_delete_is_nothing_to_do_and_keeps_the_progress() -> None:
    world = World()
    extra = SagaProgress(step="billed", reference="ATL-1-x", invoice_number="9").model_dump_json()
    result = make_sink(world).apply(
        event({"key": ACTIVITY, "active": False}, operation="delete"), context(world, extra)
    )
    assert world.log == [], "no call to either system: nothing is cancelled"
    assert (result.action, result.deleted, result.extra) == ("unchanged", False, extra)


def test_an_unknown_customer_waits_with_a_hint_and_marks_nothing() -> None:
    world = World(customers=set())
    with pytest.raises(DependencyError) as caught:
        make_sink(world).apply(event(payload()), context(world))
    assert "C000042" in (caught.value.hint or "")
    assert "must exist in the ERP" in (caught.value.hint or "")
    assert world.invoices == {}
    assert steps(world) == ["erp:create"], "no checkpoint, nothing marked Billed"


def test_a_customer_without_an_erp_key_is_invalid_source_data_with_a_hint() -> None:
    world = World()
    with pytest.raises(InvalidSourceDataError) as caught:
        make_sink(world).apply(event(payload(customer=None)), context(world))
    assert "externalId" in (caught.value.hint or "")
    assert world.log == []


def test_a_reference_taken_by_another_customer_is_not_marked_billed() -> None:
    world = World()
    reference = billing_reference(ACTIVITY, ITEMS)
    world.invoices[reference] = {
        "NoFacture": "00000099",
        "Facture": {
            "Référence": reference,
            "InfoClientFacturerA": {"NoClient": "C000001"},
            "LigneFacture": [{"DescriptionLigne": "x"}],
        },
    }
    with pytest.raises(PermanentError) as caught:
        make_sink(world).apply(event(payload()), context(world))
    assert caught.value.vendor_code == "reference-taken"
    assert world.billed == {}


def test_mapped_custom_fields_carry_currency_and_vat_to_the_erp() -> None:
    world = World()
    mapping = {"custom_fields": {"Devise": "currency", "LigneFacture.TauxTaxe": "vat_rate"}}
    make_sink(world, mapping).apply(event(payload()), context(world))
    facture = world.bodies[0]["Facture"]
    assert facture["Devise"] == "CAD"
    assert [line["TauxTaxe"] for line in facture["LigneFacture"]] == [14.975] * 3


# -- through the engine ---------------------------------------------------------------------


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


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


def test_a_failed_step_two_is_retried_from_the_checkpoint(
    redis_client: fakeredis.FakeRedis,
) -> None:
    world = World(atollon_failures=[httpx.Response(503, json={"result": "FAIL"})])
    engine = make_engine(redis_client, make_sink(world))
    delivery = Delivery(event=event(payload()), target="onlineerp")

    assert engine.process(delivery) == "parked", "Atollon answered 503: retried later"
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    progress = SagaProgress.parse(ledger.extra)
    assert progress is not None
    assert progress.step == "recorded", "both invoices are checkpointed before step 3"

    world.log.clear()
    assert engine.process(delivery) == "applied"
    assert steps(world) == ["atollon:billed"], "the retry went back to neither invoice"
    assert len(world.atollon_invoices) == 1
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    assert ledger.target_id == "00000001"
    assert ledger.fingerprint == delivery.event.fingerprint

    assert engine.process(delivery) == "skipped", "a duplicate delivery does nothing"
    assert len(world.invoices) == 1


def test_a_lost_answer_of_step_two_is_found_by_number_not_posted_again(
    redis_client: fakeredis.FakeRedis,
) -> None:
    world = World(lose_record_answers=1)
    engine = make_engine(redis_client, make_sink(world))
    delivery = Delivery(event=event(payload()), target="onlineerp")

    assert engine.process(delivery) == "parked", "the lost answer is a transient failure"
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    progress = SagaProgress.parse(ledger.extra)
    assert progress is not None
    assert progress.step == "recording"
    assert world.billed == {}

    world.log.clear()
    assert engine.process(delivery) == "applied"
    assert steps(world) == ["erp:get", "atollon:find", "atollon:billed"]
    assert len(world.invoices) == len(world.atollon_invoices) == 1
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    done = SagaProgress.parse(ledger.extra)
    assert done is not None
    assert (done.step, done.atollon_invoice_id) == ("billed", "A1")


def test_an_unknown_customer_is_dead_lettered_with_the_hint_then_replayed_once(
    redis_client: fakeredis.FakeRedis,
) -> None:
    world = World(customers=set())
    engine = make_engine(redis_client, make_sink(world))
    delivery = Delivery(event=event(payload()), target="onlineerp")
    assert engine.process(delivery) == "parked", "first it waits for the customer"
    assert engine.process(delivery) == "dead_lettered"
    (entry,) = engine.dlq.iter_entries()
    assert entry.error_class == "dependency"
    assert "C000042" in (entry.hint or "")

    world.customers.add("C000042")
    replay = entry.delivery.model_copy(update={"replay_of": entry.id})
    assert engine.process(replay) == "applied"
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert engine.dlq.count() == 0, "the replayed entry is resolved"


def test_a_transient_erp_failure_is_retried(redis_client: fakeredis.FakeRedis) -> None:
    world = World()
    calls = {"n": 0}

    def robot_offline_once(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, json={"Message": "robot", "Code": "RobotOffline"})
        return world.erp(request)

    sink = make_sink(world, erp=robot_offline_once)
    with pytest.raises(TransientError):
        sink.apply(event(payload()), context(world))
    assert world.billed == {}
    sink.apply(event(payload()), context(world))
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
