"""Issue 18, must hold: the people of every ERP customer reach HIPE and Atollon, linked to
the right company, and follow every edit, clear, removal, deactivation and reactivation.

Real Redis, a real ``erpsync worker`` process, the producer, and the sandbox over HTTP.
Customers with one to four people each (ERP ``Contact``, the sandbox's names) are created;
then, in rounds each followed by one poll: people's fields changed and cleared, people
added, deleted in the ERP and deactivated; edits made while inactive; reactivations. After
each round every person in each target equals, field by field, what the ERP holds (an
oracle written from the vendors' docs and docs/sandbox-conventions.md, not from the sinks):

* HIPE: a contact with the person's ``externalId``, its fields (``null`` where the ERP has
  no value), ``collaborationIds`` the HIPE id of its employer's company, archived while
  inactive or once deleted (its fields as they last were);
* Atollon: a person contact (external id system ``onlineerp-contact``) bound to its
  employer by the employer's ERP id, its position the job title, its e-mail, phone and
  mobile; with ``deactivation = "group"`` in the ``Inactive`` group once ever inactive
  (the crawler documents no way out); a deleted person stays as it last was.

At the end ``erpsync reconcile contacts`` (and ``customers``) finds no drift. Run once with
HIPE serving integer ids, once with UUIDs. ``ERPSYNC_PEOPLE_FULL=1`` runs 300 customers
(default 40, to keep the suite's time).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import Pipeline
from state.dlq import DeadLetterStore
from tests.integration.equality.reconcile import drift, reconcile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CUSTOMERS = 300 if os.environ.get("ERPSYNC_PEOPLE_FULL") else 40
TARGETS = ("hipe", "atollon")
PERSON_SYSTEM = "onlineerp-contact"
FLOWS: dict[str, Any] = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(TARGETS),
        "mapping": {"hipe": {}, "atollon": {}},
    },
    "contacts": {
        "source": "onlineerp",
        "entity": "person",
        "targets": list(TARGETS),
        "mapping": {"hipe": {}, "atollon": {}},
    },
}
#: ERP contact field -> (HIPE contact field); the text fields an edit changes or clears
TEXT = {
    "Prenom": "firstName",
    "Nom": "lastName",
    "Courriel": "email",
    "Telephone": "phoneNumber",
    "Cellulaire": "mobilePhone",
    "Titre": "job",
}
CLEARABLE = ("Prenom", "Courriel", "Telephone", "Cellulaire", "Titre")


def text(value: Any) -> str | None:
    """An ERP text as the targets hold it: stripped, blank is no value."""
    return value.strip() or None if isinstance(value, str) else None


class Erp:
    """The ERP's customers and people as the test wrote them (deleted people kept apart,
    as they last were)."""

    def __init__(self, p: Pipeline, rng: random.Random) -> None:
        self.p = p
        self.rng = rng
        self.http = p.erp()
        self.people: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.ever_inactive: set[str] = set()
        self.coverage: dict[str, int] = {}

    def note(self, what: str) -> None:
        self.coverage[what] = self.coverage.get(what, 0) + 1

    def create_customer(self, key: str) -> None:
        body = {"NoClient": key, "NomClient": f"Client {key}", "EstActif": True}
        self.http.post("/Entity/Customer", json=body).raise_for_status()
        for n in range(self.rng.randint(1, 4)):
            self.add_person(key, n)

    def add_person(self, customer: str, n: int) -> None:
        key = f"{customer}-P{n}"
        record = {
            "NoContact": key,
            "NoClient": customer,
            "Prenom": self.rng.choice(["Marie", "Luc", "Émilie", "Zoë"]),
            "Nom": self.rng.choice(["Tremblay", "Côté", "O'Brien", "Nguyễn"]),
            "Courriel": f"{key.lower()}@exemple.qc.ca",
            "Telephone": f"+1 514 555 {self.rng.randrange(10000):04d}",
            "Cellulaire": self.rng.choice([None, f"+1 438 555 {self.rng.randrange(10000):04d}"]),
            "Titre": self.rng.choice(["Comptable", "Acheteuse", None]),
            "EstActif": True,
        }
        self.people[key] = record
        self.http.post("/Entity/Contact", json=record).raise_for_status()

    def put(self, key: str) -> None:
        self.http.put(f"/Entity/Contact/{key}", json=self.people[key]).raise_for_status()

    def edit(self, key: str) -> None:
        """One edit: a field changed, or cleared (null, empty or blank)."""
        record = self.people[key]
        if self.rng.random() < 0.5:
            name = self.rng.choice(CLEARABLE)
            record[name] = self.rng.choice([None, "", "  "])
            self.note("clear")
        else:
            name = self.rng.choice(list(TEXT))
            record[name] = f"{text(record[name]) or 'x'} bis"
            self.note("change")
        self.put(key)

    def delete(self, key: str) -> None:
        self.deleted[key] = self.people.pop(key)
        self.http.delete(f"/Entity/Contact/{key}").raise_for_status()
        self.note("deleted")

    def set_active(self, key: str, active: bool) -> None:
        self.people[key]["EstActif"] = active
        if not active:
            self.ever_inactive.add(key)
        self.note("reactivated" if active else "deactivated")
        self.put(key)


# -- the oracle ----------------------------------------------------------------------------


def hipe_expected(record: dict[str, Any], company: Any, *, gone: bool) -> dict[str, Any]:
    fields = {hipe: text(record[erp]) for erp, hipe in TEXT.items()}
    archived = gone or not record["EstActif"]
    return {**fields, "collaborationIds": [company], "archived": archived}


def hipe_observed(contact: dict[str, Any]) -> dict[str, Any]:
    fields = {hipe: contact[hipe] for hipe in TEXT.values()}
    return {
        **fields,
        "collaborationIds": contact["collaborationIds"],
        "archived": contact["archived"],
    }


def atollon_expected(record: dict[str, Any], grouped: bool) -> dict[str, Any]:
    def listed(name: str) -> list[str]:
        value = text(record[name])
        return [value] if value else []

    return {
        "firstName": text(record["Prenom"]),
        "lastName": text(record["Nom"]),
        "employers": [[record["NoClient"]]],
        "position": [text(record["Titre"])],
        "email": listed("Courriel"),
        "phone": listed("Telephone"),
        "mobile": listed("Cellulaire"),
        "groups": ["Inactive"] if grouped else [],
    }


def atollon_observed(contact: dict[str, Any]) -> dict[str, Any]:
    relations = contact["person"]["companyPersonRelation"]
    channels = contact["contacts"]
    return {
        "firstName": contact["person"]["firstName"],
        "lastName": contact["person"]["lastName"],
        "employers": [[e["id"] for e in r["companyExternalId"]] for r in relations],
        "position": [r["positionDesc"] for r in relations],
        "email": [e["contact"] for e in channels["email"]],
        "phone": [e["contact"] for e in channels["phone"]],
        "mobile": [e["contact"] for e in channels["mobile"]],
        "groups": [g["name"] for g in contact["contactGroup"]],
    }


def person_key(contact: dict[str, Any]) -> str | None:
    ids = [e["id"] for e in contact.get("externalId") or [] if e["system"] == PERSON_SYSTEM]
    return ids[0] if ids else None


def check(p: Pipeline, erp: Erp, grouped: bool) -> None:
    """Every person, current or deleted, equals the oracle in each target; no dead letter."""
    companies = {c["externalId"]: c["id"] for c in p.records("hipe", "companies")}
    hipe = {c["externalId"]: c for c in p.records("hipe", "contacts")}
    atollon = {
        key: c for c in p.records("atollon", "contacts") if (key := person_key(c)) is not None
    }
    wrong: dict[str, Any] = {}
    for gone, records in ((False, erp.people), (True, erp.deleted)):
        for key, record in records.items():
            expected = hipe_expected(record, companies.get(record["NoClient"]), gone=gone)
            seen = hipe_observed(hipe[key]) if key in hipe else None
            if seen != expected:
                wrong[f"hipe {key}"] = {"erp": expected, "hipe": seen}
            expected = atollon_expected(record, grouped and key in erp.ever_inactive)
            seen = atollon_observed(atollon[key]) if key in atollon else None
            if seen != expected:
                wrong[f"atollon {key}"] = {"erp": expected, "atollon": seen}
    assert wrong == {}, dict(list(wrong.items())[:4])
    assert len(hipe) == len(erp.people) + len(erp.deleted), "one contact a person"
    assert len(atollon) == len(erp.people) + len(erp.deleted), "one person contact a person"
    dead = [
        f"{e.target} {e.key}: {e.message}" for e in DeadLetterStore(p.redis, p.keys).iter_entries()
    ]
    assert dead == [], dead[:5]


def poll_and_check(p: Pipeline, erp: Erp, grouped: bool) -> None:
    started = time.monotonic()
    polled = {r.stream: r.events for r in p.produce()}
    p.wait_converged(timeout_s=300, targets=TARGETS)
    print(f"{polled}: converged in {time.monotonic() - started:.1f} s")
    check(p, erp, grouped)


# -- the test ----------------------------------------------------------------------------


def edit_delete_add_and_deactivate(erp: Erp, customers: list[str]) -> list[str]:
    """A third of the people edited, a tenth deleted, people added to a tenth of the
    customers, a tenth deactivated; returns the deactivated."""
    rng = erp.rng
    keys = sorted(erp.people)
    inactive = rng.sample(keys, len(keys) // 10)
    rest = [k for k in keys if k not in inactive]
    edited = rng.sample(rest, len(rest) // 3)
    for key in edited:
        erp.edit(key)
    untouched = [k for k in rest if k not in edited]  # a deletion writes nothing before it
    for key in rng.sample(untouched, len(rest) // 10):
        erp.delete(key)
    for customer in rng.sample(customers, len(customers) // 10):
        erp.add_person(customer, 9)
        erp.note("added")
    for key in inactive:
        erp.set_active(key, False)
    return inactive


@pytest.mark.parametrize(
    ("hipe_ids", "deactivation"), [("int", "none"), ("uuid", "group")], ids=["int", "uuid-group"]
)
def test_people_arrive_linked_to_their_company_and_follow_every_change(
    make_pipeline: Callable[..., Pipeline], hipe_ids: str, deactivation: str
) -> None:
    started = time.monotonic()
    # the first load's companies go through HIPE's CSV import, the people one by one
    hipe = {"bulk_threshold": 20, "import_poll_interval_s": 0.2}
    systems = {"hipe": hipe, "atollon": {"deactivation": deactivation}}
    p = make_pipeline(flows=FLOWS, systems=systems, hipe_ids=hipe_ids)
    p.start_worker()
    p.wait_workers(1)
    erp = Erp(p, random.Random(f"people-{hipe_ids}"))
    grouped = deactivation == "group"
    customers = [f"C{n:04d}" for n in range(CUSTOMERS)]
    for key in customers:
        erp.create_customer(key)
    poll_and_check(p, erp, grouped)
    per_customer = [sum(1 for r in erp.people.values() if r["NoClient"] == c) for c in customers]
    assert (min(per_customer), max(per_customer)) == (1, 4)
    assert len(p.records("hipe", "imports")) == 1, "the companies came through an import"

    inactive = edit_delete_add_and_deactivate(erp, customers)
    poll_and_check(p, erp, grouped)

    for key in inactive:  # edits made while inactive, then reactivation
        erp.edit(key)
    poll_and_check(p, erp, grouped)
    for key in inactive:
        erp.set_active(key, True)
    for key in erp.rng.sample(sorted(erp.people), len(erp.people) // 4):
        erp.edit(key)
    poll_and_check(p, erp, grouped)
    for what in ("change", "clear", "added", "deleted", "deactivated"):
        assert erp.coverage.get(what, 0) > 0, erp.coverage
    assert erp.coverage["reactivated"] == len(inactive)

    erp.http.close()
    for flow, checked in (("contacts", len(erp.people)), ("customers", len(customers))):
        status, report = reconcile(p, flow)
        assert drift(report) == {}, (flow, drift(report))
        for target in TARGETS:
            assert report["targets"][target]["checked"] == checked, report["targets"][target]
        assert status == 0
    if hipe_ids == "uuid":
        ids = [c["id"] for c in p.records("hipe", "contacts")]
        assert all(isinstance(i, str) and len(i) == 36 for i in ids), ids[:3]
    print(f"{CUSTOMERS} customers, {len(erp.people)} people: {time.monotonic() - started:.1f} s")
