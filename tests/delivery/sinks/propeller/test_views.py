"""The Propeller sink's views for reconcile, against the simulator over HTTP: expected equals
observed, foreign sources and parents, forced repairs, and what doctor shows."""

from __future__ import annotations

import httpx

from adapters.propeller import PropellerCompanyInput, PropellerCompanyRef
from cli._output import console
from cli.diagnose import _print_mappings, flow_mappings
from delivery.sinks.view import ViewableSink, view
from erpsync.settings import Settings
from simulators.server import RunningSandbox
from tests.support.propeller_sink import CHANGED, FULL, SOURCE, Rig, assert_equal, customer


def test_expected_equals_observed_for_every_record(rig: Rig) -> None:
    assert isinstance(rig.sink, ViewableSink)
    records = [
        customer("P", **FULL),
        customer("K1", parent_key="P", active=False, **CHANGED),
        customer("K2", parent_key="P"),
    ]
    rig.single(*records)
    observed = {o.key: o for o in rig.sink.observed("customer")}
    assert sorted(observed) == ["K1", "K2", "P"]
    for record in records:
        assert observed[record["key"]].fields == rig.sink.expected("customer", record)
        assert observed[record["key"]].target_id == str(rig.company(record["key"])["id"])
    assert rig.sink.expected("customer", records[1]) == view(
        {
            "name": "Company K1",
            "email": "b@acme.example",
            "phone": "+1 514 555 0200",
            "tax_number": "BE0456",
            "parent_key": "P",
            "active": False,
            "addresses": [],
        }
    )


def test_observed_reads_a_company_when_the_search_leaves_fields_out(
    sandbox: RunningSandbox, control: httpx.Client
) -> None:
    """The documented search results list neither e-mail, phone nor parent."""

    def documented_search(request: httpx.Request, real: httpx.Client) -> httpx.Response | None:
        if not request.url.path.endswith("/companies/search"):
            return None
        answer = real.send(
            real.build_request(
                "POST", request.url, headers=request.headers, content=request.content
            )
        )
        body = answer.json()
        for item in body["data"]:
            for name in ("email", "phone", "parent", "attributes"):
                item.pop(name, None)
        return httpx.Response(200, json=body)

    rig = Rig(sandbox, control, documented_search, page_size=2)
    try:
        records = [customer("P", **FULL), customer("K", parent_key="P", active=False)]
        records += [customer(f"X{i}") for i in range(3)]
        rig.single(*records)
        rig.reset_stats()
        observed = {o.key: o.fields for o in rig.sink.observed("customer")}
        assert observed == {r["key"]: rig.sink.expected("customer", r) for r in records}
        reads = rig.requests("GET", "/v2/companies/")
        listings = rig.requests("GET", "/v2/companies/{lookupKey}/{lookupValue}/addresses")
        assert reads - listings == len(records), "one read per company"
        assert listings == len(records), "and one listing of its addresses"
        assert rig.requests("POST", "/v2/companies/search") == 3, "pages of two"
    finally:
        rig.close()


def test_observed_skips_companies_of_other_sources_and_names_foreign_parents(rig: Rig) -> None:
    rig.single(customer("C1"))
    client = rig.sink.client
    theirs = client.create_company(
        PropellerCompanyInput(source_id="Z", source="OTHER", name="Theirs")
    )
    client.update_company(
        "C1", PropellerCompanyInput(source_id="C1", parent=PropellerCompanyRef(id=theirs.id))
    )
    other = theirs.id
    (only,) = rig.sink.observed("customer")
    assert only.key == "C1"
    assert only.fields["parent_key"] == f"propeller-id:{other}"


def test_a_forced_repair_rewrites_the_marker_and_the_detach_the_ledger_vouches_for(
    rig: Rig,
) -> None:
    """A reconcile's repair: someone reactivated and attached the company by hand."""
    rig.single(customer("P"), customer("C1", active=False))
    client = rig.sink.client
    client.set_attributes("C1", [rig.sink.marker(True)])
    client.update_company(
        "C1",
        PropellerCompanyInput(
            source_id="C1", parent=PropellerCompanyRef(source_id="P", source=SOURCE)
        ),
    )
    same = rig.event(customer("C1", active=False))
    assert rig.engine.process(same) == "skipped", "unchanged for the ledger"
    forced = rig.event(customer("C1", active=False)).model_copy(update={"force": True})
    assert rig.engine.process(forced) == "applied"
    assert_equal(rig, customer("C1", active=False))


def test_a_parent_paged_after_its_child_is_named_by_one_read_by_id(rig: Rig) -> None:
    rig.single(customer("K1"), customer("K2"), customer("P"))
    rig.single(customer("K1", parent_key="P"), customer("K2", parent_key="P"))
    rig.reset_stats()
    found = {o.key: o.fields["parent_key"] for o in rig.sink.observed("customer")}
    assert found == {"K1": "P", "K2": "P", "P": None}
    # The search orders by dateModified then id: whichever child comes before P costs one
    # read of P by id, then P is remembered.
    listings = rig.requests("GET", "/v2/companies/{lookupKey}/{lookupValue}/addresses")
    assert listings == 3, "one listing of each company's addresses"
    assert rig.requests("GET", "/v2/companies/") - listings <= 1


def test_erpsync_doctor_shows_the_detach_limit(rig: Rig) -> None:
    settings = Settings.model_validate(
        {
            "systems": {
                "onlineerp": {"base_url": "http://127.0.0.1:1", "licence_code": "L", "secret": "s"},
                "propeller": rig.settings.model_dump(),
            },
            "flows": {
                "customers": {"source": "onlineerp", "entity": "customer", "targets": ["propeller"]}
            },
        }
    )
    flows = flow_mappings(settings, {"propeller": rig.sink})
    assert flows["customers"]["targets"]["propeller"]["known_limits"] == ["parent_key"]
    with console.capture() as captured:
        _print_mappings(flows)
    assert "known limits (propeller documents no way to write or clear): parent_key" in (
        captured.get()
    )
