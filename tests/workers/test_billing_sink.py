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
from decimal import Decimal
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import SecretStr

from adapters._http import make_client
from erpsync.errors import DependencyError, PermanentError, TransientError
from erpsync.events import ChangeEvent, Delivery
from erpsync.keys import Keys
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings, OnlineErpSettings
from workers.dlq import DeadLetterStore
from workers.engine import ApplyContext, Engine, InvalidSourceDataError, Sink
from workers.limits import Circuit
from workers.policy import RetryPolicy
from workers.sinks.onlineerp import OnlineErpSink, SagaProgress, billing_reference
from workers.state import LedgerEntry, State

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

    def erp(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/api/Entity/CustomerInvoice")
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
        number = f"{len(self.invoices) + 1:08d}"
        total = sum(
            Decimal(str(line["QteFacture"])) * Decimal(str(line["PrixUnitaire"]))
            for line in facture["LigneFacture"]
        )
        stored = {"NoFacture": number, "Facture": facture, "TotalAvantTaxes": float(total)}
        self.invoices[facture["Référence"]] = stored
        return httpx.Response(201, json=stored)

    def atollon(self, request: httpx.Request) -> httpx.Response:
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
    return ChangeEvent.create(
        flow="billing",
        source="atollon",
        entity="billing",
        key=ACTIVITY,
        operation=operation,  # type: ignore[arg-type]
        payload=body,
        source_version=version,
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

    assert steps(world) == ["erp:create", "checkpoint", "atollon:billed"]
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
    assert result.target_id == invoice["NoFacture"]
    assert result.extra is not None
    done = SagaProgress.model_validate_json(result.extra)
    assert (done.step, done.invoice_number, done.invoiced_item_ids) == (
        "billed",
        invoice["NoFacture"],
        ITEMS,
    )
    (saved,) = checkpoints(world)
    assert (saved.step, saved.invoice_number) == ("invoiced", invoice["NoFacture"])


def test_a_crash_before_the_checkpoint_finds_the_invoice_and_only_marks_billed() -> None:
    world = World()
    make_sink(world).apply(event(payload()), context(world))
    world.log.clear()
    world.billed.clear()  # the first worker died before step 2

    result = make_sink(world).apply(event(payload()), context(world))

    assert steps(world) == ["erp:create", "erp:find", "checkpoint", "atollon:billed"]
    assert len(world.invoices) == 1, "the 412 stopped a second invoice"
    assert world.bodies[-1]["Facture"]["Référence"] == billing_reference(ACTIVITY, ITEMS)
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert result.target_id == "00000001"


def test_a_checkpoint_resumes_at_step_two_without_asking_the_erp() -> None:
    world = World()
    progress = SagaProgress(
        step="invoiced",
        reference=billing_reference(ACTIVITY, ITEMS),
        invoice_number="00000077",
        item_ids=ITEMS,
        invoiced_item_ids=ITEMS,
    )
    result = make_sink(world).apply(
        event(payload()), context(world, extra=progress.model_dump_json())
    )
    assert steps(world) == ["atollon:billed"], "no ERP call at all"
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    assert result.target_id == "00000077"
    assert result.extra is not None
    assert SagaProgress.model_validate_json(result.extra).step == "billed"


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
    assert progress.step == "invoiced", "the invoice is recorded before step 2"

    world.log.clear()
    assert engine.process(delivery) == "applied"
    assert steps(world) == ["atollon:billed"], "the retry did not go back to the ERP"
    assert len(world.invoices) == 1
    assert world.billed == dict.fromkeys(ITEMS, "Billed")
    ledger = engine.state.ledger_get("onlineerp", "billing", ACTIVITY)
    assert ledger is not None
    assert ledger.target_id == "00000001"
    assert ledger.fingerprint == delivery.event.fingerprint

    assert engine.process(delivery) == "skipped", "a duplicate delivery does nothing"
    assert len(world.invoices) == 1


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
