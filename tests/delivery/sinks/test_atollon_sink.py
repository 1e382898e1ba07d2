"""The Atollon sink under the engine, against the Atollon simulator over real HTTP.

Each step's contact is compared whole, field by field, with what the ERP record says the
crawler stores (written here from the crawler page and docs/sandbox-conventions.md, not
from the sink), and the sink's reconcile views with each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest

from adapters import make_client
from delivery.engine import Engine
from delivery.sinks.atollon import INACTIVE_GROUP, AtollonSink
from delivery.sinks.view import ViewableSink
from erpsync.events import Delivery
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings
from simulators.atollon import AtollonSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from tests.support import delivery_of, make_event
from tests.support.engine import engine_over

ERP = "onlineerp"
CLIENT = "com.atollon.project.fpatypecategory.client"


@pytest.fixture
def atollon() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as running:
        yield running


def build(atollon: RunningSandbox, **options: Any) -> tuple[Engine, AtollonSink]:
    settings = AtollonSettings(
        base_url=atollon.endpoints["atollon"].api_url,
        instance=CREDENTIALS["atollon"]["instance"],
        page_size=3,  # several pages with a handful of contacts
        **options,
    )
    mappings = {"customer": TargetMapping(), "product": TargetMapping()}
    sink = AtollonSink(settings, make_client(settings), mappings)
    engine = engine_over("atollon", sink, seed=5)
    return engine, sink


@pytest.fixture
def engines(atollon: RunningSandbox) -> Iterator[Callable[..., tuple[Engine, AtollonSink]]]:
    built: list[AtollonSink] = []

    def make(**options: Any) -> tuple[Engine, AtollonSink]:
        engine, sink = build(atollon, **options)
        built.append(sink)
        return engine, sink

    yield make
    for sink in built:
        sink.close()


_versions = itertools.count(1)


def customer(key: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": name, "parent_key": None, "active": True, **fields}


def deliver(
    payload: Mapping[str, Any], *, entity: str = "customer", op: str = "upsert"
) -> Delivery:
    event = make_event(
        dict(payload),
        flow="customers" if entity == "customer" else "products",
        source=ERP,
        entity=entity,
        operation=op,
        parent_key=payload.get("parent_key"),
        version=next(_versions),
    )
    return delivery_of(event, "atollon")


def records(atollon: RunningSandbox, entity: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=atollon.endpoints["atollon"].url, timeout=10) as client:
        found: list[dict[str, Any]] = client.get(f"/_sandbox/records/{entity}").json()
    return found


def stored(atollon: RunningSandbox, key: str, entity: str = "contacts") -> dict[str, Any]:
    (record,) = [
        r
        for r in records(atollon, entity)
        if any(e.get("system") == ERP and e.get("id") == key for e in r.get("externalId") or [])
    ]
    return record


def as_stored(contact: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a stored contact that the customers flow writes, in their JSON form."""
    company = contact.get("company") or {}
    return {
        "companyName": company.get("companyName"),
        "parents": [
            e["id"]
            for relation in company.get("companyCompanyRelation") or []
            for e in relation.get("companyExternalId") or []
            if e.get("system") == ERP
        ],
        "address": [
            {k: a.get(k) for k in ("street", "city", "zip", "region", "country")}
            for a in contact.get("address") or []
        ],
        "email": [e["contact"] for e in (contact.get("contacts") or {}).get("email") or []],
        "phone": [e["contact"] for e in (contact.get("contacts") or {}).get("phone") or []],
        "vatNo": contact.get("vatNo"),
        "groups": [g["name"] for g in contact.get("contactGroup") or []],
        "folders": [(f["category"], f["typeName"]) for f in contact.get("contactFolder") or []],
        "externalId": contact.get("externalId"),
    }


def from_erp(
    record: Mapping[str, Any],
    groups: list[str] | None = None,
    folders: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """What the crawler stores for an ERP customer: every value, every absence."""
    address = record.get("address") or {}
    has_address = any(address.values())
    return {
        "companyName": record["name"],
        "parents": [record["parent_key"]] if record.get("parent_key") else [],
        "address": [
            {
                "street": address.get("line1"),
                "city": address.get("city"),
                "zip": address.get("postal_code"),
                "region": address.get("region"),
                "country": address.get("country"),
            }
        ]
        if has_address
        else [],
        "email": [record["email"]] if record.get("email") else [],
        "phone": [record["phone"]] if record.get("phone") else [],
        "vatNo": record.get("tax_number"),
        "groups": groups or [],
        # the documented client category by default: every customer is an Atollon client
        "folders": [(CLIENT, "Client")] if folders is None else folders,
        "externalId": [{"system": ERP, "id": record["key"]}],
    }


def assert_equal_and_views_agree(
    atollon: RunningSandbox, sink: ViewableSink, record: Mapping[str, Any], **kw: Any
) -> None:
    assert as_stored(stored(atollon, record["key"])) == from_erp(record, **kw)
    observed = {o.key: o for o in sink.observed("customer")}
    expected = sink.expected("customer", record)
    limits = set(sink.known_limits("customer"))
    seen = {f: v for f, v in observed[record["key"]].fields.items() if f not in limits}
    assert seen == {f: v for f, v in expected.items() if f not in limits}


FULL = {
    "email": "compta@dupont.qc.ca",
    "phone": "+1 514 555 0100",
    "tax_number": "123456789RT0001",
    "address": {
        "line1": "1 rue Principale",
        "city": "Montréal",
        "region": "QC",
        "postal_code": "H2X 1Y4",
        "country": "CA",
    },
}
CHANGED = {
    "email": "ap@dupont.ca",
    "phone": "450 555 0199",
    "tax_number": "987654321RT0001",
    "address": {
        "line1": "9 boul. Nord",
        "city": "Laval",
        "region": "QC",
        "postal_code": "H7N 1A1",
        "country": "CA",
    },
}
CLEARED: dict[str, Any] = {"email": None, "phone": None, "tax_number": None, "address": None}


def test_every_field_is_set_changed_and_cleared_and_the_parent_attached_moved_detached(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    engine, sink = engines()
    for parent in ("P1", "P2"):
        assert engine.process(deliver(customer(parent, f"Parent {parent}"))) == "applied"

    steps = [
        customer("C1", "Dupont & Fils", parent_key="P1", **FULL),
        customer("C1", "Dupont et Fils inc.", parent_key="P2", **CHANGED),
        customer("C1", "Dupont et Fils inc.", parent_key=None, **CLEARED),
        # one address field alone: the others are sent (and stored) empty
        customer("C1", "Dupont", parent_key="P1", address={"city": "Québec"}),
        customer("C1", "Dupont", parent_key=None, **CLEARED),
    ]
    folder_ids = set()
    for record in steps:
        assert engine.process(deliver(record)) == "applied"
        assert_equal_and_views_agree(atollon, sink, record)
        folder_ids |= {f["folderId"] for f in stored(atollon, "C1")["contactFolder"]}
    assert engine.dlq.count() == 0
    assert len(records(atollon, "contacts")) == 3, "one contact per ERP customer"
    assert len(folder_ids) == 1, "the client folder is created once and kept"
    (seen,) = [o for o in sink.observed("customer") if o.key == "C1"]
    assert seen.fields["client_folder"] == CLIENT


def test_the_client_folder_category_is_a_setting_and_a_missing_folder_is_drift(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    partner = "com.atollon.project.fpatypecategory.partner"
    engine, sink = engines(client_folder_category=partner)
    record = customer("C1", "Partenaire inc.", **FULL)
    assert engine.process(deliver(record)) == "applied"
    assert_equal_and_views_agree(atollon, sink, record, folders=[(partner, "Partner")])

    _, no_folder = engines(client_folder_category="")
    body = no_folder.contact_input(customer("C2", "Sans dossier")).to_json()
    assert "contactFolder" not in body
    assert "client_folder" not in no_folder.expected("customer", customer("C2", "Sans dossier"))

    # a contact of ours that Atollon shows without the folder is drift on that field
    with httpx.Client(base_url=atollon.endpoints["atollon"].url, timeout=10) as client:
        made = client.post(
            "/crab/crawler/contact",
            params={"instance": CREDENTIALS["atollon"]["instance"]},
            json={
                "company": {"companyName": "Fait main"},
                "externalId": [{"system": ERP, "id": "C3"}],
            },
        ).json()
    assert made["folderId"] is None
    (seen,) = [o for o in sink.observed("customer") if o.key == "C3"]
    assert seen.fields["client_folder"] is None
    assert sink.expected("customer", customer("C3", "Fait main"))["client_folder"] == partner


def test_deactivate_and_reactivate_twice_by_default_changes_no_group_and_fields_follow(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    """Default ``deactivation = "none"``: nothing documented can undo a deactivation, so
    none is sent; the contact keeps following every field, whatever its ERP state."""
    engine, sink = engines()
    assert sink.known_limits("customer") == ["active"]
    assert engine.process(deliver(customer("P1", "Parent"))) == "applied"
    steps = [
        customer("C1", "Roy", **FULL),
        customer("C1", "Roy", active=False, parent_key="P1", **CHANGED),
        customer("C1", "Roy Transport", **CLEARED),
        customer("C1", "Roy Transport", active=False, **FULL),
        customer("C1", "Roy Transport enr.", parent_key="P1", **CHANGED),
    ]
    for record in steps:
        assert engine.process(deliver(record)) == "applied"
        assert_equal_and_views_agree(atollon, sink, record)  # no group, ever
        (observed,) = [o for o in sink.observed("customer") if o.key == "C1"]
        assert observed.fields["active"] is True, "Atollon shows no deactivation"
    assert engine.dlq.count() == 0


def test_with_the_group_option_a_deactivation_assigns_inactive_and_a_reactivation_keeps_it(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    """``deactivation = "group"``: the documented assignment, which nothing can undo (a
    known limit: reported, never a dead letter, and the other fields keep following)."""
    engine, sink = engines(deactivation="group")
    assert sink.known_limits("customer") == ["active"]
    states = [True, False, True, False, True]
    for number, active in enumerate(states):
        record = customer("C1", f"Roy {number}", active=active, **(FULL if number % 2 else CLEARED))
        assert engine.process(deliver(record)) == "applied"
        ever_deactivated = number >= 1
        groups = [INACTIVE_GROUP] if ever_deactivated else []
        assert_equal_and_views_agree(atollon, sink, record, groups=groups)
        (observed,) = [o for o in sink.observed("customer") if o.key == "C1"]
        assert observed.fields["active"] is not ever_deactivated
    assert engine.dlq.count() == 0
    ledger = engine.state.ledger_get("atollon", "customer", "C1")
    assert ledger is not None
    assert not ledger.deleted


def test_a_customer_deleted_in_the_erp_leaves_its_contact_as_it_was(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    engine, _ = engines()
    record = customer("C1", "Roy", **FULL)
    assert engine.process(deliver(record)) == "applied"
    gone = {"key": "C1", "active": False}
    assert engine.process(deliver(gone, op="delete")) == "applied"
    assert as_stored(stored(atollon, "C1")) == from_erp(record)
    assert engine.dlq.count() == 0


def test_products_clear_their_price_and_currency_and_their_views_agree(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    engine, sink = engines()

    def product_of(name: str, price: str | None, active: bool, **fields: Any) -> dict[str, Any]:
        return {"key": "P1", "name": name, "price": price, "active": active, **fields}

    steps: list[dict[str, Any]] = [
        product_of(
            "Ruban 48 mm", "2.50", True, currency="CAD", vat_rate="TPS+TVQ 14,975 %", units="unité"
        ),
        product_of("Ruban 50 mm", "3", False, currency="USD", vat_rate="TPS 5 %", units="boîte"),
        product_of("Ruban 50 mm", None, True, currency=None, vat_rate=None, units=None),
        product_of("Ruban", "1", True, currency="CAD", vat_rate=None, units="h"),
    ]
    for record in steps:
        assert engine.process(deliver(record, entity="product")) == "applied"
        product = stored(atollon, "P1", "products")
        price = record["price"]
        fields = ("name", "unitPrice", "unitPriceCurrencyName", "vatRateName", "unitsName")
        assert {k: product[k] for k in fields} == {
            "name": record["name"],
            "unitPrice": None if price is None else float(price),
            "unitPriceCurrencyName": record["currency"],
            "vatRateName": record["vat_rate"],
            "unitsName": record["units"],
        }
        assert product["statusName"] == ("Active" if record["active"] else "Inactive")
        (observed,) = list(sink.observed("product"))
        assert observed.key == "P1"
        assert observed.target_id == product["productId"]
        assert observed.fields == sink.expected("product", record)
    assert sink.known_limits("product") == []
    assert engine.dlq.count() == 0


def test_product_currency_vat_and_units_can_take_other_canonical_paths(
    atollon: RunningSandbox,
) -> None:
    """``[flows.products.mapping.atollon.fields]`` points a field at another path."""
    settings = AtollonSettings(
        base_url=atollon.endpoints["atollon"].api_url,
        instance=CREDENTIALS["atollon"]["instance"],
    )
    mapping = TargetMapping(fields={"vat_rate": "custom.taxe", "units": "custom.unite"})
    sink = AtollonSink(settings, make_client(settings), {"product": mapping})
    try:
        record = {
            "key": "P9",
            "name": "Colle",
            "price": "4",
            "currency": "CAD",
            "vat_rate": "ignored",
            "custom": {"taxe": "15 %", "unite": "kg"},
        }
        body = sink.product_input(record).to_json()
        assert (body["unitPriceCurrencyName"], body["vatRateName"], body["unitsName"]) == (
            "CAD",
            "15 %",
            "kg",
        )
        cleared = sink.product_input({**record, "custom": {}}).to_json()
        assert (cleared["vatRateName"], cleared["unitsName"]) == ("", "")
    finally:
        sink.close()


def test_observed_pages_through_every_contact_and_skips_those_of_other_systems(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    engine, sink = engines()
    for number in range(7):  # three pages of three
        assert engine.process(deliver(customer(f"C{number}", f"Company {number}"))) == "applied"
    foreign = {"company": {"companyName": "Not ours"}, "externalId": [{"system": "x", "id": "1"}]}
    with httpx.Client(base_url=atollon.endpoints["atollon"].api_url, timeout=10) as client:
        answer = client.post("/crab/crawler/contact", params={"instance": "sandbox"}, json=foreign)
        assert answer.json()["result"] == "SUCCESS"

    observed = list(sink.observed("customer"))

    assert [o.key for o in observed] == [f"C{n}" for n in range(7)]
    by_key = {r["externalId"][0]["id"]: r["contactId"] for r in records(atollon, "contacts")}
    assert all(o.target_id == by_key[o.key] for o in observed)


def test_a_product_deleted_in_the_erp_becomes_inactive_and_comes_back_when_created_again(
    engines: Callable[..., tuple[Engine, AtollonSink]], atollon: RunningSandbox
) -> None:
    engine, _ = engines()
    record = {"key": "P1", "name": "Ruban 48 mm", "price": "2.50", "currency": None}
    assert engine.process(deliver({**record, "active": True}, entity="product")) == "applied"
    gone = deliver({"key": "P1"}, entity="product", op="delete")
    assert engine.process(gone) == "applied"
    retired = stored(atollon, "P1", "products")
    assert (retired["statusName"], retired["name"], retired["unitPrice"]) == (
        "Inactive",
        "Ruban 48 mm",
        2.5,
    ), "no longer sold, otherwise kept"
    again = {"key": "P1", "name": "Ruban 50 mm", "price": "3", "currency": None, "active": True}
    assert engine.process(deliver(again, entity="product")) == "applied"
    back = stored(atollon, "P1", "products")
    assert (back["statusName"], back["name"], back["unitPrice"]) == ("Active", "Ruban 50 mm", 3.0)
    assert back["productId"] == retired["productId"]
    never = deliver({"key": "P2"}, entity="product", op="delete")
    assert engine.process(never) == "applied"
    assert [p for p in records(atollon, "products") if p["refId"] == "P2"] == []
    assert engine.dlq.count() == 0


def test_two_customers_merged_by_name_are_dead_lettered_and_nothing_else_moves() -> None:
    """Atollon matches a company "by name" (the page's words read alone): the second
    customer of one name is answered with the first one's contact: a dead letter with a
    hint, never a silent merge; the first customer's ledger and the others stay as they are."""
    with RunningSandbox(simulators={"atollon": AtollonSimulator(company_match="name")}) as running:
        engine, sink = build(running)
        try:
            assert engine.process(deliver(customer("C1", "Acme inc.", **FULL))) == "applied"
            first = engine.state.ledger_get("atollon", "customer", "C1")
            assert first is not None
            assert engine.process(deliver(customer("C2", "ACME  Inc."))) == "dead_lettered"
            assert engine.process(deliver(customer("C3", "Autre"))) == "applied"
            assert engine.process(deliver(customer("C1", "Acme inc.", **CHANGED))) == "applied"
        finally:
            sink.close()
        [letter] = engine.dlq.iter_entries()
        assert (letter.key, letter.code, letter.error_class) == (
            "C2",
            "merged-contact",
            "permanent",
        )
        assert letter.hint is not None
        assert "C1" in letter.hint
        assert "distinct names" in letter.hint
        assert engine.state.ledger_get("atollon", "customer", "C2") is None
        after = engine.state.ledger_get("atollon", "customer", "C1")
        assert after is not None
        assert after.target_id == first.target_id
        names = sorted(c["name"] for c in records(running, "contacts"))
        assert names == ["Acme inc.", "Autre"], "no contact was created for C2"
