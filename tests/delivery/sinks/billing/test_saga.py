"""The billing saga, one apply at a time: ERP invoice exactly once, then the invoice in
Atollon, then the items Billed, resumable from every checkpoint (fakes behind
httpx.MockTransport, tests.support.billing_sink)."""

from __future__ import annotations

from typing import Any

import pytest

from delivery.engine import ApplyResult, InvalidSourceDataError
from delivery.sinks.onlineerp import SagaProgress
from erpsync.billing import billing_reference
from erpsync.errors import DependencyError, PermanentError
from tests.support.billing_sink import (
    ACTIVITY,
    ITEMS,
    World,
    checkpoints,
    context,
    event,
    make_sink,
    payload,
    product_of,
    progress_at,
    steps,
    stored_invoice,
)


def invoiced_once() -> tuple[World, ApplyResult, dict[str, Any]]:
    """One apply of the activity's three items on empty fakes: the world, the result and the
    ERP invoice it made."""
    world = World()
    sink = make_sink(world, {"fields": {"activity_status": "Invoiced"}})
    result = sink.apply(event(payload()), context(world))
    (invoice,) = world.invoices.values()
    return world, result, invoice


def test_invoices_then_checkpoints_then_marks_the_items_billed() -> None:
    world, _, invoice = invoiced_once()

    assert steps(world) == [
        "erp:create",
        "checkpoint",
        "checkpoint",
        "atollon:record",
        "checkpoint",
        "atollon:billed",
    ]
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


def test_the_result_and_the_checkpoints_name_the_invoice_at_each_step() -> None:
    world, result, invoice = invoiced_once()

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


def test_step_two_records_the_invoice_in_atollon_as_the_erp_stored_it() -> None:
    """Rows, taxes and totals are the ERP's own."""
    world, _, invoice = invoiced_once()

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
