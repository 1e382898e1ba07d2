"""The Propeller sink on the single path, against the simulator over HTTP: every field set,
changed and cleared, parents attached, moved and detached, deactivation by marker, source
deletes and the recycle bin."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog

from simulators.server import RunningSandbox
from tests.support.propeller_sink import CHANGED, CLEARED, FULL, SOURCE, Rig, assert_equal, customer


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_every_field_is_set_changed_and_cleared(rig: Rig, path: str) -> None:
    apply = rig.single if path == "single" else rig.bulk
    for fields in (FULL, CHANGED, CLEARED, FULL):
        record = customer("C1", **fields)
        apply(record)
        assert_equal(rig, record)


def test_a_clear_on_the_single_path_is_one_patch_with_empty_text(rig: Rig) -> None:
    rig.single(customer("C1", **FULL))
    rig.reset_stats()
    rig.single(customer("C1", **CLEARED))
    assert rig.requests("PATCH", "/v2/companies/") == 1
    assert rig.requests("POST", "/v2/companies") == 0
    company = rig.company("C1")
    assert (company["email"], company["phone"], company["taxNumber"]) == ("", "", "")


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_a_parent_is_attached_moved_and_detached(rig: Rig, path: str) -> None:
    apply = rig.single if path == "single" else rig.bulk
    apply(customer("P1"), customer("P2"))
    for parent in (None, "P1", "P2", None, "P1"):
        record = customer("K", parent_key=parent)
        apply(record)
        assert_equal(rig, record)


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_deactivate_and_reactivate_any_number_of_times_without_the_recycle_bin(
    rig: Rig, path: str
) -> None:
    apply = rig.single if path == "single" else rig.bulk
    apply(customer("P"))
    for active in (True, False, True, False, True):
        record = customer("C1", parent_key="P", active=active, **FULL)
        apply(record)
        assert_equal(rig, record)
    assert rig.requests("DELETE", "/v2/companies/") == 0
    assert rig.engine.dlq.count() == 0
    counters = rig.engine.state.counters("propeller")
    assert counters["customers.action_archived"] == 2
    assert counters["customers.action_unarchived"] == 2


def test_a_customer_created_inactive_arrives_marked(rig: Rig) -> None:
    rig.single(customer("C1", active=False))
    assert_equal(rig, customer("C1", active=False))
    rig.bulk(customer("C2", active=False, **FULL))
    assert_equal(rig, customer("C2", active=False, **FULL))


def test_a_rename_of_a_known_company_writes_no_marker_and_no_detach(rig: Rig) -> None:
    rig.single(customer("C1", **FULL))
    rig.reset_stats()
    rig.single(customer("C1", name="Renamed", **FULL))
    assert rig.requests("PATCH", "/v2/companies/") == 1
    assert rig.requests("POST", "/v2/companies/bulk") == 0, "the marker did not change"


def test_a_source_delete_marks_inactive_by_default(rig: Rig) -> None:
    rig.single(customer("C1", **FULL))
    assert rig.engine.process(rig.event({"key": "C1", "active": False}, operation="delete")) == (
        "applied"
    )
    assert_equal(rig, customer("C1", active=False, **FULL))
    rig.single(customer("C1", **FULL))  # created again in the ERP
    assert_equal(rig, customer("C1", **FULL))


def test_the_recycle_bin_only_when_configured_and_only_for_source_deletes(
    sandbox: RunningSandbox, control: httpx.Client
) -> None:
    rig = Rig(sandbox, control, on_source_delete="delete")
    try:
        rig.single(customer("C1"), customer("C2"))
        rig.single(customer("C1", active=False))
        assert_equal(rig, customer("C1", active=False))  # deactivated: marked, not binned
        delete = rig.event({"key": "C2", "active": False}, operation="delete")
        assert rig.engine.process(delete) == "applied"
        (binned,) = [c for c in rig.companies() if c["recycleBin"]]
        assert {"source": SOURCE, "sourceId": "C2"} in binned["sources"]
    finally:
        rig.close()


def test_a_propeller_that_refuses_parent_null_keeps_the_parent_and_dead_letters_nothing(
    sandbox: RunningSandbox, control: httpx.Client
) -> None:
    def refuse_null_parent(request: httpx.Request, real: httpx.Client) -> httpx.Response | None:
        if request.method == "PATCH" and json.loads(request.content) == {"parent": None}:
            error = {
                "code": 10007,
                "status": 400,
                "type": "SchemaValidationException",
                "messages": ["#/parent: expected type: JSONObject, found: Null"],
            }
            return httpx.Response(400, json={"error": error})
        return None

    rig = Rig(sandbox, control, refuse_null_parent)
    try:
        rig.single(customer("P"), customer("K", parent_key="P"))
        with structlog.testing.capture_logs() as logs:
            rig.single(customer("K", name="Detached"))
        company = rig.company("K")
        assert company["name"] == "Detached", "the rest of the record was written"
        assert company["parent"] is not None, "this Propeller keeps the parent"
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "propeller.detach_refused"
        ]
        assert rig.engine.dlq.count() == 0
        assert rig.sink.known_limits("customer") == ["parent_key"]
    finally:
        rig.close()
