"""A customer's addresses as Propeller company addresses, against the simulator over HTTP:
keyed by code, set, changed, cleared field by field, removed (deleted by id), on the single
path and inline in bulk company items; hand-made addresses left alone; reconcile's views."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from adapters.propeller.models import PropellerAddressInput
from delivery.sinks.view import ViewableSink
from tests.support.addresses import D1, D2, INVOICE
from tests.support.propeller_sink import Rig, customer


def stored(rig: Rig, key: str) -> list[dict[str, Any]]:
    """The company's addresses in the sandbox, every field erpsync writes, by code."""
    company_id = rig.company(key)["id"]
    answer = rig.control.get("/_sandbox/records/addresses")
    answer.raise_for_status()
    found = [
        {
            "code": a["code"],
            "type": a["type"],
            "line1": a["street"],
            "city": a["city"],
            "region": a["region"] or None,
            "postal_code": a["postalCode"] or None,
            "country": a["country"],
        }
        for a in answer.json()
        if a["companyId"] == company_id
    ]
    return sorted(found, key=lambda a: a["code"])


ADDRESSES = "/v2/companies/{lookupKey}/{lookupValue}/addresses"


def calls(rig: Rig, method: str, route: str) -> int:
    """Requests to exactly this route (the rig's count takes a prefix)."""
    stats = rig.control.get("/_sandbox/stats").json()
    return sum(
        row["count"]
        for row in stats["requests"]
        if row["method"] == method and row["route"] == route
    )


def by_code(*addresses: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(addresses, key=lambda a: a["code"])


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_addresses_are_set_changed_cleared_and_removed_by_code(rig: Rig, path: str) -> None:
    apply = rig.single if path == "single" else rig.bulk
    steps = [
        [INVOICE, D1],
        [INVOICE, D1, D2],  # one added
        [{**INVOICE, "city": "Longueuil"}, D1, {**D2, "region": None, "postal_code": None}],
        [INVOICE, D2],  # D1 removed
        [],  # every address removed
        [D1],
    ]
    for addresses in steps:
        record = customer("C1", addresses=addresses)
        apply(record)
        assert stored(rig, "C1") == by_code(*addresses), addresses
    assert rig.engine.dlq.count() == 0


def test_unchanged_addresses_cost_no_call_and_a_removal_one_listing_and_a_delete(
    rig: Rig,
) -> None:
    rig.single(customer("C1", addresses=[INVOICE, D1]))
    rig.reset_stats()
    rig.single(customer("C1", name="Renamed", addresses=[INVOICE, D1]))
    assert calls(rig, "POST", ADDRESSES) == 0
    assert calls(rig, "GET", ADDRESSES) == 0
    rig.single(customer("C1", addresses=[INVOICE]))
    assert calls(rig, "POST", f"{ADDRESSES}/bulk") == 1
    assert calls(rig, "GET", ADDRESSES) == 1
    assert calls(rig, "DELETE", f"{ADDRESSES}/{{addressId}}") == 1
    assert stored(rig, "C1") == [INVOICE]


def test_a_bulk_load_carries_the_addresses_in_the_company_items(rig: Rig) -> None:
    records = [customer(f"C{i}", addresses=[INVOICE, D1, D2][: 1 + i % 3]) for i in range(9)]
    rig.bulk(*records)
    assert calls(rig, "POST", "/v2/companies/bulk/{lookupKey}") == 1
    assert calls(rig, "POST", ADDRESSES) == 0
    assert calls(rig, "GET", ADDRESSES) == 0
    for record in records:
        assert stored(rig, record["key"]) == by_code(*record["addresses"])


def test_an_incomplete_address_is_left_out_with_a_warning_and_deleted_if_written(
    rig: Rig,
) -> None:
    rig.single(customer("C1", addresses=[INVOICE, D1]))
    with structlog.testing.capture_logs() as logs:
        rig.single(customer("C1", addresses=[INVOICE, {**D1, "line1": None}]))
    assert stored(rig, "C1") == [INVOICE]
    warned = [e for e in logs if e["event"] == "sync.address_incomplete"]
    assert [(e["key"], e["codes"]) for e in warned] == [("C1", ["delivery:D1"])]
    assert isinstance(rig.sink, ViewableSink)
    record = customer("C1", addresses=[INVOICE, {**D1, "line1": None}])
    assert rig.sink.expected("customer", record)["addresses"] == [INVOICE]


def test_an_address_added_by_hand_in_propeller_is_left_alone_and_not_compared(
    rig: Rig,
) -> None:
    rig.single(customer("C1", addresses=[INVOICE, D1]))
    hand = PropellerAddressInput(
        type="delivery", code="WAREHOUSE", street="9 rue X", city="Laval", country="CA"
    )
    rig.sink.client.create_address("C1", hand)
    rig.single(customer("C1", addresses=[INVOICE]))  # D1 removed: a listing, a delete
    codes = sorted(a["code"] for a in rig.control.get("/_sandbox/records/addresses").json())
    assert codes == ["WAREHOUSE", "invoice"]
    assert isinstance(rig.sink, ViewableSink)
    (seen,) = list(rig.sink.observed("customer"))
    assert seen.fields["addresses"] == [INVOICE]


def test_expected_equals_observed_with_addresses(rig: Rig) -> None:
    assert isinstance(rig.sink, ViewableSink)
    records = [
        customer("A", addresses=[INVOICE, D1, D2]),
        customer("B", addresses=[{**D1, "country": "ca", "region": None}]),
        customer("C"),
    ]
    rig.single(*records)
    observed = {o.key: o.fields for o in rig.sink.observed("customer")}
    for record in records:
        assert observed[record["key"]] == rig.sink.expected("customer", record)
    assert observed["B"]["addresses"] == [{**D1, "region": None}]
    assert observed["C"]["addresses"] is None
