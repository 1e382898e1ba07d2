"""Issue 15: one ERP customer through every change, equal field by field in HIPE and Atollon.

Real pieces only: the sandbox over HTTP, a real Redis, a real ``erpsync worker`` process and
the producer. The customer is edited in the ERP through its API; after each step the whole
HIPE company and the whole Atollon contact are compared, field by field, with what the ERP
holds (read from ``/_sandbox/records``), as the vendors' docs and docs/sandbox-conventions.md
say each target stores it: values set, changed and removed, the parent attached, moved and
detached, deactivated and reactivated twice. On the single path and, for HIPE, the CSV
import (bulk) path; for Atollon with the default ``deactivation = "none"`` and with
``"group"`` (the Inactive group assigned for good: a known limit). No dead letter may be
left, and ``erpsync reconcile`` finds no drift.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import REPO, Pipeline
from state.dlq import DeadLetterStore

pytestmark = pytest.mark.integration

ERP = "onlineerp"
TARGETS = ("hipe", "atollon")
FLOWS: dict[str, Any] = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(TARGETS),
        "source_fields": {"segment": "Secteur", "note": "NoteERP"},
        "mapping": {
            "hipe": {"custom_fields": {"segment": "custom.segment", "erpNote": "custom.note"}},
        },
    }
}
#: ERP custom field -> the HIPE custom field the mapping above fills from it
HIPE_CUSTOM = {"Secteur": "segment", "NoteERP": "erpNote"}

EMPTY_ADDRESS = {"Ligne1": None, "Ville": None, "Province": None, "CodePostal": None, "Pays": None}
FULL = {
    "Courriel": "compta@dupont.qc.ca",
    "Telephone": "+1 514 555 0100",  # a leading + the CSV would alter: PATCHed after import
    "NoTPS": "123456789RT0001",
    "Adresse": {
        "Ligne1": "1 rue Principale",
        "Ville": "Montréal",
        "Province": "QC",
        "CodePostal": "H2X 1Y4",
        "Pays": "CA",
    },
    "Secteur": "retail",
    "NoteERP": "net 30",
}
CHANGED = {
    "Courriel": "ap@dupont.ca",
    "Telephone": "450 555 0199",
    "NoTPS": "987654321RT0001",
    "Adresse": {
        "Ligne1": "9 boul. Nord",
        "Ville": "Laval",
        "Province": "QC",
        "CodePostal": "H7N 1A1",
        "Pays": "CA",
    },
    "Secteur": "industry",
    "NoteERP": "net 45",
}
CLEARED: dict[str, Any] = {
    "Courriel": None,
    "Telephone": None,
    "NoTPS": None,
    "Adresse": None,
    "Secteur": None,
    "NoteERP": None,
}
ONLY_CITY = {**CLEARED, "Adresse": {**EMPTY_ADDRESS, "Ville": "Québec"}, "NoteERP": "seul"}

#: (what the step does, the ERP fields of C1 it sets)
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("every field changed, parent moved", {"NomClient": "Dupont et Fils inc.",
                                           "NoClientParent": "P2", **CHANGED}),
    ("every field cleared, parent detached", {"NoClientParent": None, **CLEARED}),
    ("one address field and one custom field set, parent attached",
     {"NomClient": "Dupont", "NoClientParent": "P1", **ONLY_CITY}),
    ("deactivated, and changed meanwhile", {"EstActif": False, "NoClientParent": "P2", **FULL}),
    ("reactivated", {"EstActif": True}),
    ("deactivated again, fields cleared", {"EstActif": False, **CLEARED}),
    ("reactivated again, changed, parent detached",
     {"EstActif": True, "NoClientParent": None, "NomClient": "Dupont & Fils", **CHANGED}),
]  # fmt: skip


# -- the ERP -----------------------------------------------------------------------------


def erp_customer(key: str, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "NoClient": key,
        "NomClient": name,
        "NoClientParent": None,
        "Langue": "fr",
        "EstActif": True,
        **CLEARED,
        **fields,
    }


def erp_put(p: Pipeline, record: dict[str, Any]) -> None:
    with p.erp() as erp:
        erp.put(f"/Entity/Customer/{record['NoClient']}", json=record).raise_for_status()


def erp_post(p: Pipeline, record: dict[str, Any]) -> None:
    with p.erp() as erp:
        erp.post("/Entity/Customer", json=record).raise_for_status()


# -- what each target holds for an ERP customer, from the vendors' docs ------------------------


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else value


def hipe_from_erp(customer: dict[str, Any]) -> dict[str, Any]:
    """The HIPE company of an ERP customer (the guide's fields; archived when inactive)."""
    return {
        "name": customer["NomClient"],
        "externalId": customer["NoClient"],
        "parent": customer["NoClientParent"],
        "email": _text(customer["Courriel"]),
        "phone": _text(customer["Telephone"]),
        "vat": _text(customer["NoTPS"]),
        "customFields": {
            hipe: customer[erp]
            for erp, hipe in HIPE_CUSTOM.items()
            if customer.get(erp) is not None
        },
        "archived": not customer["EstActif"],
    }


def hipe_as_stored(company: dict[str, Any], external_of: dict[int, str]) -> dict[str, Any]:
    parent_id = company["parentId"]
    return {
        "name": company["name"],
        "externalId": company["externalId"],
        "parent": None if parent_id is None else external_of[parent_id],
        "email": company["email"],
        "phone": company["phone"],
        "vat": company["vat"],
        "customFields": company["customFields"],
        "archived": company["archived"],
    }


def atollon_from_erp(customer: dict[str, Any], ever_inactive: bool = False) -> dict[str, Any]:
    """The Atollon company contact of an ERP customer (crawler page + conventions).

    Every list states the whole list, an emptied text is empty, and the contact keeps
    following its fields whatever its ERP state. By default (``deactivation = "none"``) no
    deactivation is sent; with ``"group"`` a contact ever deactivated is in ``Inactive``
    for good ("assign the contact to the group": nothing documented takes it out).
    """
    address = customer["Adresse"] or EMPTY_ADDRESS
    has_address = any(_text(v) for v in address.values())
    return {
        "companyName": customer["NomClient"],
        "parents": [customer["NoClientParent"]] if customer["NoClientParent"] else [],
        "address": [
            {
                "street": _text(address["Ligne1"]),
                "city": _text(address["Ville"]),
                "zip": _text(address["CodePostal"]),
                "region": _text(address["Province"]),
                "country": _text(address["Pays"]),
            }
        ]
        if has_address
        else [],
        "email": [customer["Courriel"]] if customer["Courriel"] else [],
        "phone": [customer["Telephone"]] if customer["Telephone"] else [],
        "vatNo": _text(customer["NoTPS"]),
        "groups": ["Inactive"] if ever_inactive else [],
        "folders": ["com.atollon.project.fpatypecategory.client"],  # every customer a client
        "externalId": [{"system": ERP, "id": customer["NoClient"]}],
    }


def atollon_as_stored(contact: dict[str, Any]) -> dict[str, Any]:
    company = contact["company"]
    return {
        "companyName": company["companyName"],
        "parents": [
            e["id"]
            for relation in company["companyCompanyRelation"]
            for e in relation["companyExternalId"]
            if e["system"] == ERP
        ],
        "address": [
            {k: a[k] for k in ("street", "city", "zip", "region", "country")}
            for a in contact["address"]
        ],
        "email": [e["contact"] for e in contact["contacts"]["email"]],
        "phone": [e["contact"] for e in contact["contacts"]["phone"]],
        "vatNo": contact["vatNo"],
        "groups": [g["name"] for g in contact["contactGroup"]],
        "folders": [f["category"] for f in contact["contactFolder"]],
        "externalId": contact["externalId"],
    }


def assert_targets_equal_the_erp(p: Pipeline, step: str, ever_inactive: set[str]) -> None:
    customers = {c["NoClient"]: c for c in p.records(ERP, "Customer")}
    companies = p.records("hipe", "companies")
    external_of = {c["id"]: c["externalId"] for c in companies}
    assert sorted(external_of.values()) == sorted(customers), f"{step}: one company each"
    for company in companies:
        want = hipe_from_erp(customers[company["externalId"]])
        assert hipe_as_stored(company, external_of) == want, f"{step}: HIPE"
    contacts = p.records("atollon", "contacts")
    assert len(contacts) == len(customers), f"{step}: one contact each"
    for contact in contacts:
        (key,) = [e["id"] for e in contact["externalId"] if e["system"] == ERP]
        want = atollon_from_erp(customers[key], key in ever_inactive)
        assert atollon_as_stored(contact) == want, f"{step}: Atollon"


def assert_no_dead_letter(p: Pipeline) -> None:
    dlq = DeadLetterStore(p.redis, p.keys)
    assert dlq.count() == 0, [(e.target, e.key, e.code, e.message) for e in dlq.iter_entries()]


def reconcile(p: Pipeline, flow: str = "customers") -> tuple[int, dict[str, Any]]:
    """``erpsync reconcile FLOW --json`` as a user runs it: its exit status and report."""
    done = subprocess.run(
        [sys.executable, "-m", "cli", "reconcile", flow, "--json"],
        cwd=REPO,
        env=p.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


# -- the test ----------------------------------------------------------------------------------


def hipe_imports(p: Pipeline) -> int:
    """How many CSV imports HIPE received."""
    return sum(
        row["count"]
        for row in p.stats("hipe")["requests"]
        if row["method"] == "POST" and row["route"] == "/api/imports"
    )


def assert_hipe_uuids_kept(p: Pipeline) -> None:
    """HIPE served UUID ids, and the ledger keeps C1's."""
    ids = [c["id"] for c in p.records("hipe", "companies")]
    assert all(isinstance(i, str) and len(i) == 36 for i in ids), ids
    ledger = p.redis.hgetall(p.keys.ledger("hipe", "customer", "C1"))
    assert ledger["target_id"] in ids, "the ledger keeps HIPE's UUID"


def assert_reconciled_without_drift(p: Pipeline) -> None:
    """Reconcile finds the four customers in each target, no drift, Atollon's known limit."""
    status, report = reconcile(p)
    for target in TARGETS:
        found = report["targets"][target]
        drift = {k: found[k] for k in ("missing", "different", "orphaned", "duplicates")}
        assert drift == {"missing": [], "different": [], "orphaned": [], "duplicates": []}
        assert found["checked"] == 4
    assert report["targets"]["atollon"]["known_limits"] == ["active"]
    assert status == 0


@pytest.mark.parametrize(
    ("path", "deactivation", "hipe_ids"),
    [
        ("single", "none", "int"),
        ("bulk", "none", "int"),
        ("single", "group", "int"),
        # HIPE serving UUID ids (the guide's shape): the imports, the listing that learns
        # the imported ids, the single path's PATCH, archive and parent by id, reconcile
        ("bulk", "none", "uuid"),
    ],
)
def test_one_customer_through_every_change_equals_the_erp_in_hipe_and_atollon(
    make_pipeline: Callable[..., Pipeline], path: str, deactivation: str, hipe_ids: str
) -> None:
    # bulk: HIPE imports every poll of two changes or more (a ticker customer changes with
    # C1 at each step); single: one PATCH per change, as everyday polls do
    hipe = {"bulk_threshold": 1} if path == "bulk" else {}
    atollon = {"deactivation": deactivation}
    p = make_pipeline(flows=FLOWS, systems={"hipe": hipe, "atollon": atollon}, hipe_ids=hipe_ids)
    ever_inactive: set[str] = set()
    p.start_worker()
    p.wait_workers(1)
    c1 = erp_customer("C1", "Dupont & Fils", NoClientParent="P1", **FULL)
    ticker = erp_customer("T", "Ticker 0")
    for record in (erp_customer("P1", "Parent 1"), erp_customer("P2", "Parent 2"), c1, ticker):
        erp_post(p, record)

    def step(name: str) -> None:
        (result,) = p.produce()
        assert result.events >= 1, name
        p.wait_converged(timeout_s=120, targets=TARGETS)
        assert_targets_equal_the_erp(p, name, ever_inactive)
        assert_no_dead_letter(p)

    step("created with every field")
    imports_before = 0
    for number, (name, changes) in enumerate(STEPS, 1):
        c1 = {**c1, **changes}
        if deactivation == "group" and not c1["EstActif"]:
            ever_inactive.add("C1")
        erp_put(p, c1)
        ticker = {**ticker, "NomClient": f"Ticker {number}"}
        erp_put(p, ticker)
        step(name)
        imports = hipe_imports(p)
        if path == "bulk":
            assert imports > imports_before, f"{name}: HIPE took the CSV import path"
        else:
            assert imports == 0, f"{name}: HIPE took the single path"
        imports_before = imports

    if hipe_ids == "uuid":
        assert_hipe_uuids_kept(p)

    assert_reconciled_without_drift(p)


# -- products → Atollon --------------------------------------------------------------------------

PRODUCT_FLOWS: dict[str, Any] = {
    "products": {"source": "onlineerp", "entity": "product", "targets": ["atollon"]},
}


def atollon_product_from_erp(product: dict[str, Any]) -> dict[str, Any]:
    """The Atollon product of an ERP product (crawler page: matched by externalId)."""
    return {
        "name": product["Description"],
        "refId": product["NoProduit"],
        "description": product["Description"],
        "unitPrice": float(product["PrixVente"]),
        # the sandbox ERP's Devise, CodeTaxe, Unite; a value removed is emptied
        "unitPriceCurrencyName": product.get("Devise"),
        "vatRateName": product.get("CodeTaxe"),
        "unitsName": product.get("Unite"),
        "statusName": "Active" if product["EstActif"] else "Inactive",
        "externalId": [{"system": ERP, "id": product["NoProduit"]}],
    }


def test_one_product_through_every_change_equals_the_erp_in_atollon(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=PRODUCT_FLOWS)
    p.start_worker()
    p.wait_workers(1)
    product = {
        "NoProduit": "P1",
        "Description": "Ruban 48 mm",
        "PrixVente": 2.5,
        "Devise": "CAD",
        "CodeTaxe": "TPS+TVQ 14,975 %",
        "Unite": "unité",
        "EstActif": True,
    }
    steps: list[tuple[str, dict[str, Any]]] = [
        ("renamed, repriced", {"Description": "Ruban adhésif 50 mm", "PrixVente": 3.25}),
        ("currency, tax, unit changed", {"Devise": "USD", "CodeTaxe": "TPS 5 %", "Unite": "h"}),
        ("currency, tax, unit cleared", {"Devise": None, "CodeTaxe": None, "Unite": None}),
        ("deactivated", {"EstActif": False, "CodeTaxe": "Exonéré"}),
        ("reactivated, repriced", {"EstActif": True, "PrixVente": 0}),
        ("deactivated again, renamed", {"EstActif": False, "Description": "Ruban 50"}),
        ("reactivated again", {"EstActif": True}),
    ]
    with p.erp() as erp:
        erp.post("/Entity/Product", json=product).raise_for_status()
    for number, (name, changes) in enumerate([("created", {}), *steps]):
        if number:
            product = {**product, **changes}
            with p.erp() as erp:
                erp.put("/Entity/Product/P1", json=product).raise_for_status()
        results = {r.stream: r for r in p.produce()}
        assert results["onlineerp.product"].events == 1, name
        p.wait_converged(timeout_s=120, targets=("atollon",))
        (stored,) = p.records("atollon", "products")
        seen = {k: stored[k] for k in atollon_product_from_erp(product)}
        assert seen == atollon_product_from_erp(product), name
        assert_no_dead_letter(p)

    status, report = reconcile(p, "products")
    assert status == 0, report
    found = report["targets"]["atollon"]
    assert (found["checked"], found["in_sync"], found["known_limits"]) == (1, 1, [])
