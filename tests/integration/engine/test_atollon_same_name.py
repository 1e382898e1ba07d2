"""Issue 18, point 5: two ERP customers with one name, against an Atollon that matches a
company by its name (the crawler page's words read alone: ``--atollon-match name``).

Real workers, Redis and the sandbox over HTTP. Atollon answers the second customer with the
first one's contact (and has written the second's values into it: no documented read lets
erpsync look before it writes): erpsync dead-letters that delivery with its hint (never a
silent merge) and nothing else is affected: the first customer's ledger, the other
customers, and the same customers in HIPE.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.stack import Pipeline
from state.dlq import DeadLetterStore

pytestmark = pytest.mark.integration

FLOWS = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": ["hipe", "atollon"],
        "mapping": {"hipe": {}, "atollon": {}},
    }
}
CUSTOMERS = [
    ("C-1", "Boulangerie Roy", "roy@example.test"),
    ("C-2", "BOULANGERIE  ROY", "roy.laval@example.test"),
    ("C-3", "Fromagerie Côté", "cote@example.test"),
    ("C-4", "Épicerie Nord", None),
]


def test_two_customers_with_one_name_are_caught_not_merged(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS, atollon_match="name")
    with p.erp() as erp:
        for key, name, email in CUSTOMERS[:1]:
            body = {"NoClient": key, "NomClient": name, "Courriel": email, "EstActif": True}
            erp.post("/Entity/Customer", json=body).raise_for_status()
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(targets=("hipe", "atollon"))
    with p.erp() as erp:  # the namesake arrives later, with the others
        for key, name, email in CUSTOMERS[1:]:
            body = {"NoClient": key, "NomClient": name, "Courriel": email, "EstActif": True}
            erp.post("/Entity/Customer", json=body).raise_for_status()
    p.produce()
    p.wait_converged(targets=("hipe", "atollon"))

    [letter] = DeadLetterStore(p.redis, p.keys).iter_entries()
    assert (letter.target, letter.key, letter.code) == ("atollon", "C-2", "merged-contact")
    assert letter.error_class == "permanent"
    assert letter.hint is not None
    assert "C-1" in letter.hint
    assert "distinct names" in letter.hint
    counters = p.flow_counters("customers", "atollon")
    assert (counters["produced"], counters["applied"], counters["dead_lettered"]) == (4, 3, 1)

    contacts = p.records("atollon", "contacts")
    assert len(contacts) == 3, "no contact of its own for C-2"
    ledger = p.redis.hgetall(p.keys.ledger("atollon", "customer", "C-1"))
    [roy] = [c for c in contacts if c["contactId"] == ledger["target_id"]]
    # what Atollon did before erpsync could see it: the contact holds both ids (and C-2's
    # values, which is why the hint asks to check C-1's contact); erpsync recorded nothing
    assert roy["externalId"] == [
        {"system": "onlineerp", "id": "C-1"},
        {"system": "onlineerp", "id": "C-2"},
    ]
    assert p.redis.exists(p.keys.ledger("atollon", "customer", "C-2")) == 0
    by_name = {c["name"]: c for c in contacts}
    for key, name, email in CUSTOMERS[2:]:
        contact = by_name[name]
        assert contact["externalId"] == [{"system": "onlineerp", "id": key}]
        assert [e["contact"] for e in contact["contacts"]["email"]] == ([email] if email else [])

    hipe = {c["externalId"]: c for c in p.records("hipe", "companies")}
    assert {k: (c["name"], c["email"]) for k, c in hipe.items()} == {
        key: (name, email) for key, name, email in CUSTOMERS
    }, "HIPE has every customer: nothing else is affected"
    assert p.flow_counters("customers", "hipe").get("dead_lettered", 0) == 0
