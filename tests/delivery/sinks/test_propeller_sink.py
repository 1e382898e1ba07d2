"""The Propeller sink under the engine and the batch applier, against the simulator over
real HTTP: every field equal to the source through every change (clears included), a
lifecycle the API can undo, e-mail and phone in bulk items or by PATCH (both readings of
the docs, ``bulk_contact_fields``), and the reconcile views.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import fakeredis
import httpx
import pytest
import structlog
from pydantic import SecretStr

from adapters import make_client
from adapters.propeller import PropellerCompanyInput, PropellerCompanyRef
from cli._output import console
from cli.diagnose import _print_mappings, flow_mappings
from delivery.batch import BatchApplier
from delivery.engine import Engine, Sink
from delivery.policy import RetryPolicy
from delivery.sinks.propeller import PropellerSink
from delivery.sinks.view import ViewableSink, view
from erpsync.events import Delivery
from erpsync.mapping import TargetMapping
from erpsync.settings import PropellerSettings, Settings
from simulators.propeller import PropellerSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import State
from tests.support import make_event

SOURCE = "ERPSYNC"
MARKER = "ERPSYNC_INACTIVE"

Handler = Callable[[httpx.Request, httpx.Client], httpx.Response | None]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"propeller": PropellerSimulator()}) as running:
        yield running


@pytest.fixture
def control(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.endpoints["propeller"].url, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        http.delete("/_sandbox/stats").raise_for_status()
        yield http


class Rig:
    """A sink, an engine on fakeredis, and the sandbox's records."""

    def __init__(
        self,
        sandbox: RunningSandbox,
        control: httpx.Client,
        intercept: Handler | None = None,
        **settings: Any,
    ) -> None:
        self.control = control
        self.settings = PropellerSettings(
            base_url=sandbox.endpoints["propeller"].api_url,
            client_id=CREDENTIALS["propeller"]["client_id"],
            client_secret=SecretStr(CREDENTIALS["propeller"]["client_secret"]),
            **settings,
        )
        http = make_client(self.settings)
        if intercept is not None:
            real = http

            def handler(request: httpx.Request) -> httpx.Response:
                answer = intercept(request, real)
                if answer is not None:
                    return answer
                forwarded = real.send(
                    real.build_request(
                        request.method,
                        request.url,
                        headers=request.headers,
                        content=request.content,
                    )
                )
                forwarded.read()
                return httpx.Response(
                    forwarded.status_code, headers=forwarded.headers, content=forwarded.content
                )

            http = httpx.Client(transport=httpx.MockTransport(handler), base_url=real.base_url)
            self._real = real
        self.sink = PropellerSink(self.settings, http, {"customer": TargetMapping()})
        redis = fakeredis.FakeRedis(decode_responses=True)
        keys = Keys("t")
        sinks: Mapping[str, Sink] = {"propeller": self.sink}
        self.engine = Engine(
            state=State(redis, keys),
            circuit=Circuit(redis, keys),
            dlq=DeadLetterStore(redis, keys),
            sinks=lambda: sinks,
            policy=RetryPolicy(),
            rng=random.Random(5),
        )
        self.version = 0

    def event(self, record: dict[str, Any], *, operation: str = "upsert") -> Delivery:
        self.version += 1
        event = make_event(
            record, version=self.version, operation=operation, parent_key=record.get("parent_key")
        )
        delivery = Delivery(event=event, target="propeller")
        self.engine.state.mark_produced("propeller", delivery.delivery_id, flow="customers")
        return delivery

    def single(self, *records: dict[str, Any]) -> None:
        for record in records:
            assert self.engine.process(self.event(record)) == "applied", record

    def bulk(self, *records: dict[str, Any]) -> None:
        deliveries = [self.event(r) for r in records]
        assert BatchApplier(self.engine).process(deliveries) == {"applied": len(records)}

    def companies(self) -> list[dict[str, Any]]:
        answer = self.control.get("/_sandbox/records/companies")
        answer.raise_for_status()
        records: list[dict[str, Any]] = answer.json()
        return records

    def company(self, key: str) -> dict[str, Any]:
        found = [
            c
            for c in self.companies()
            if {"source": SOURCE, "sourceId": key} in (c.get("sources") or [])
            and not c["recycleBin"]
        ]
        assert len(found) == 1, (key, found)
        return found[0]

    def requests(self, method: str, route: str, status: str | None = None) -> int:
        stats = self.control.get("/_sandbox/stats").json()
        return sum(
            row["count"]
            for row in stats["requests"]
            if row["method"] == method
            and row["route"].startswith(route)
            and status in (None, row["status"])
        )

    def reset_stats(self) -> None:
        self.control.delete("/_sandbox/stats").raise_for_status()

    def close(self) -> None:
        self.sink.close()
        if hasattr(self, "_real"):
            self._real.close()


@pytest.fixture
def rig(sandbox: RunningSandbox, control: httpx.Client) -> Iterator[Rig]:
    made = Rig(sandbox, control)
    yield made
    made.close()


def customer(key: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": key,
        "name": f"Company {key}",
        "parent_key": None,
        "email": None,
        "phone": None,
        "tax_number": None,
        "active": True,
    }
    record.update(fields)
    return record


def text(value: Any) -> Any:
    return value if value not in ("", None) else None


def assert_equal(rig: Rig, record: dict[str, Any]) -> None:
    """The whole company, field by field, against the canonical record."""
    company = rig.company(record["key"])
    by_id = {c["id"]: c for c in rig.companies()}
    parent = company["parent"]
    parent_key = None
    if parent is not None:
        (parent_key,) = [
            s["sourceId"] for s in by_id[parent["id"]]["sources"] if s["source"] == SOURCE
        ]
    marker = {a["name"]: a["value"] for a in company["attributes"]}.get(MARKER)
    seen = {
        "name": company["name"],
        "email": text(company["email"]),
        "phone": text(company["phone"]),
        "tax_number": text(company["taxNumber"]),
        "parent_key": parent_key,
        "active": marker != "Y",
        "language": company["language"],
        "recycle_bin": company["recycleBin"],
    }
    want = {
        "name": record["name"],
        "email": record["email"],
        "phone": record["phone"],
        "tax_number": record["tax_number"],
        "parent_key": record["parent_key"],
        "active": record["active"],
        "language": "EN",
        "recycle_bin": False,
    }
    assert seen == want


FULL = {"email": "a@acme.example", "phone": "+1 514 555 0100", "tax_number": "BE0123"}
CHANGED = {"email": "b@acme.example", "phone": "+1 514 555 0200", "tax_number": "BE0456"}
CLEARED = {"email": None, "phone": None, "tax_number": None}


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


@pytest.fixture
def strict(sandbox: RunningSandbox) -> Iterator[None]:
    """The sandbox follows the endpoint reference: no e-mail or phone in bulk items."""
    simulator = sandbox.simulators["propeller"]
    assert isinstance(simulator, PropellerSimulator)
    simulator.bulk_mode = "strict"
    yield
    simulator.bulk_mode = "guide"


def bulk_spy(bodies: list[dict[str, Any]]) -> Handler:
    def spy(request: httpx.Request, real: httpx.Client) -> None:
        if request.url.path.endswith("/companies/bulk/sourceId"):
            bodies.append(json.loads(request.content))

    return spy


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


# -- views for reconcile -------------------------------------------------------------------


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
