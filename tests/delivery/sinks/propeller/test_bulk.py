"""The Propeller sink's bulk path, against the simulator over HTTP: every field in every mode,
e-mail and phone inline or patched after, the fallback when Propeller refuses them in bulk."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import structlog

from delivery.batch import BatchApplier
from simulators.propeller import PropellerSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support.propeller_sink import (
    CHANGED,
    CLEARED,
    FULL,
    MARKER,
    Rig,
    assert_equal,
    bulk_spy,
    customer,
)


@pytest.mark.parametrize(
    ("mode", "sandbox_bulk"),
    [("auto", "guide"), ("inline", "guide"), ("patch", "guide"), ("auto", "strict")],
)
def test_bulk_sets_changes_and_clears_every_field_in_every_mode(
    sandbox: RunningSandbox, control: httpx.Client, mode: str, sandbox_bulk: str
) -> None:
    simulator = sandbox.simulators["propeller"]
    assert isinstance(simulator, PropellerSimulator)
    simulator.bulk_mode = sandbox_bulk
    rig = Rig(sandbox, control, bulk_contact_fields=mode)
    try:
        for fields in (FULL, CHANGED, CLEARED, FULL):
            records = [customer("C1", **fields), customer("C2", parent_key="C1", **fields)]
            rig.bulk(*records)
            for record in records:
                assert_equal(rig, record)
        assert rig.engine.dlq.count() == 0
    finally:
        simulator.bulk_mode = "guide"
        rig.close()


def test_inline_bulk_items_carry_email_and_phone_and_no_patch_follows(
    sandbox: RunningSandbox, control: httpx.Client
) -> None:
    """The default against a Propeller that takes them (the guide's reading): one call."""
    bodies: list[dict[str, Any]] = []
    rig = Rig(sandbox, control, bulk_spy(bodies))
    try:
        records = [customer("A", **FULL), customer("B"), customer("C", email="c@x.example")]
        rig.bulk(*records)
        (body,) = bodies
        assert [(i["email"], i["phone"]) for i in body["companies"]] == [
            (FULL["email"], FULL["phone"]),
            ("", ""),
            ("c@x.example", ""),
        ]
        assert rig.requests("PATCH", "/v2/companies/") == 0
        assert rig.requests("POST", "/v2/companies/bulk") == 1
        for record in records:
            assert_equal(rig, record)

        rig.reset_stats()
        changed = [customer("A", name="A2", **FULL), customer("B", phone="1"), customer("C")]
        rig.bulk(*changed)
        assert rig.requests("PATCH", "/v2/companies/") == 0, "the clear rode in the item"
        assert rig.requests("POST", "/v2/companies/bulk") == 1
        for record in changed:
            assert_equal(rig, record)
    finally:
        rig.close()


def test_auto_falls_back_to_patch_once_when_propeller_refuses_email_in_bulk(
    sandbox: RunningSandbox, control: httpx.Client, strict: None
) -> None:
    """The reference's reading: one refused call, the same batch sent the documented way,
    every later batch documented-only from the start; nothing lost, nothing dead-lettered."""
    bodies: list[dict[str, Any]] = []
    rig = Rig(sandbox, control, bulk_spy(bodies))
    try:
        first = [customer("A", **FULL), customer("B"), customer("C", email="c@x.example")]
        with structlog.testing.capture_logs() as logs:
            rig.bulk(*first)
        refused, resent = bodies
        assert all("email" in i and "phone" in i for i in refused["companies"])
        assert all("email" not in i and "phone" not in i for i in resent["companies"])
        assert rig.requests("POST", "/v2/companies/bulk", "400") == 1
        assert rig.requests("POST", "/v2/companies/bulk", "200") == 1
        assert rig.requests("PATCH", "/v2/companies/") == 2, "A's and C's e-mail and phone"
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [(e["event"], e["fields"]) for e in warnings] == [
            ("propeller.bulk_fields_refused", ["email", "phone"])
        ]
        assert CREDENTIALS["propeller"]["client_secret"] not in json.dumps(warnings)
        for record in first:
            assert_equal(rig, record)

        rig.reset_stats()
        bodies.clear()
        second = [customer("A", name="A2", **FULL), customer("B", phone="1"), customer("C")]
        with structlog.testing.capture_logs() as logs:
            rig.bulk(*second)
        (body,) = bodies
        assert all("email" not in i and "phone" not in i for i in body["companies"])
        assert rig.requests("POST", "/v2/companies/bulk", "400") == 0
        assert rig.requests("PATCH", "/v2/companies/") == 2, "B's new phone, C's cleared e-mail"
        assert not [e for e in logs if e["log_level"] == "warning"]
        for record in second:
            assert_equal(rig, record)
        assert rig.engine.dlq.count() == 0
    finally:
        rig.close()


def test_inline_chosen_against_a_strict_propeller_goes_the_single_path_without_loss(
    sandbox: RunningSandbox, control: httpx.Client, strict: None
) -> None:
    """``inline`` is the operator's word: no fall-back; the refused batch's deliveries are
    parked for the single path one by one (the batch machinery's rule for a refused call),
    none dead-lettered, and the single path writes them whole."""
    rig = Rig(sandbox, control, bulk_contact_fields="inline")
    try:
        records = [customer("A", **FULL), customer("B")]
        with structlog.testing.capture_logs() as logs:
            result = BatchApplier(rig.engine).process([rig.event(r) for r in records])
        assert result == {"parked": 2}
        assert rig.sink.inline, "no fall-back"
        assert "propeller.bulk_fields_refused" not in [e["event"] for e in logs]
        assert rig.companies() == [], "the refused call wrote nothing"
        assert rig.engine.dlq.count() == 0
        rig.single(*records)
        for record in records:
            assert_equal(rig, record)
    finally:
        rig.close()


def test_bulk_items_carry_no_email_or_phone_and_a_patch_writes_only_what_changed(
    sandbox: RunningSandbox, control: httpx.Client
) -> None:
    """``patch``: the endpoint reference's reading from the start."""
    bodies: list[dict[str, Any]] = []
    rig = Rig(sandbox, control, bulk_spy(bodies), bulk_contact_fields="patch")
    try:
        rig.bulk(customer("A", **FULL), customer("B"), customer("C", email="c@x.example"))
        items = bodies[0]["companies"]
        assert all("email" not in i and "phone" not in i for i in items)
        assert all(i["attributes"] == [{"name": MARKER, "value": "N"}] for i in items)
        # The new companies with an e-mail or a phone got them by one PATCH each.
        assert rig.requests("PATCH", "/v2/companies/") == 2
        for record in (customer("A", **FULL), customer("B"), customer("C", email="c@x.example")):
            assert_equal(rig, record)

        rig.reset_stats()
        rig.bulk(customer("A", name="A2", **FULL), customer("B", phone="1"), customer("C"))
        assert rig.requests("PATCH", "/v2/companies/") == 2, "B's new phone, C's cleared e-mail"
        assert_equal(rig, customer("A", name="A2", **FULL))
        assert_equal(rig, customer("B", phone="1"))
        assert_equal(rig, customer("C"))
    finally:
        rig.close()
