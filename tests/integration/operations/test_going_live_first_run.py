"""Issue 19, must hold: ``erpsync plan`` predicts what the first run then does, per kind and
target, in the two cases the going-live test leaves out (tests/integration/operations/
test_going_live.py):

* **inactive customers the targets lack**: the first run creates them (HIPE: archived;
  Propeller: marked inactive; Atollon: a contact like any other), or adopts the hand-made
  company one of them matches: the plan counts them as create or adopt, never unchanged;
* **Atollon without match rules of the flow**: Atollon matches company contacts by name
  on its side (case and blanks ignored) among those without our id, the oldest first: the
  plan says so and predicts it (nothing held for review; a customer takes the oldest free
  contact of its name; of two customers with one name and one such contact, one adopts it
  and the other is created).

Real workers, Redis and the sandbox over HTTP; 60 customers (a few seconds of the CI's time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bench.stack import TARGETS, Pipeline
from simulators import seed as seed_data
from simulators.handmade import Handmade, HandmadeRequest, generate
from state.adoption import REVIEW_CODE
from state.dlq import DeadLetterStore
from tests.integration.operations.test_going_live import our_keys, run_cli

pytestmark = pytest.mark.integration

CUSTOMERS = 60
RULES = ["tax_number", "email", "name"]
FLOWS = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(TARGETS),
        "match": {"propeller": RULES, "hipe": RULES},  # none for Atollon
    }
}
REQUEST = HandmadeRequest(customers=CUSTOMERS, matches=9, ambiguous=2)


def seed(p: Pipeline, made: list[Handmade]) -> dict[str, str]:
    """The ERP's customers, a few deactivated; the hand-made companies in every target, and
    in Atollon a few contacts named like customers. Returns the roles of the customers."""
    customers = seed_data.generate(CUSTOMERS, 0, 0, REQUEST.random_seed).customers
    parents = {c["NoClientParent"] for c in customers}
    matched = {k for m in made for k in m.keys}
    free = [c for c in customers if c["NoClient"] not in parents | matched]
    tax_match = next(m.keys[0] for m in made if m.kind == "tax_number")
    roles = {
        "inactive_created": free[0]["NoClient"], "inactive_created_2": free[1]["NoClient"],
        "inactive_adopted": tax_match, "atollon_once": free[2]["NoClient"],
        "atollon_twice": free[3]["NoClient"], "namesake": free[4]["NoClient"],
    }  # fmt: skip
    with p.control("onlineerp") as control:
        control.post("/_sandbox/seed", json={"customers": CUSTOMERS}).raise_for_status()
    by_key = {c["NoClient"]: c for c in customers}
    with p.erp() as erp:
        for role in ("inactive_created", "inactive_created_2", "inactive_adopted"):
            record = erp.get(f"/Entity/Customer/{roles[role]}").json()
            erp.put(f"/Entity/Customer/{roles[role]}", json={**record, "EstActif": False})
        twin = {"NoClient": "Z-TWIN", "NomClient": by_key[roles["namesake"]]["NomClient"]}
        erp.post("/Entity/Customer", json={**twin, "EstActif": True}).raise_for_status()
    for target in TARGETS:
        with p.control(target) as control:
            control.post("/_sandbox/handmade", json=REQUEST.model_dump()).raise_for_status()
    contacts = [(roles["atollon_once"], "L1"), (roles["atollon_twice"], "L2"),
                (roles["atollon_twice"], "L3"), (roles["namesake"], "L4")]  # fmt: skip
    with p.control("atollon") as control:
        for key, legacy in contacts:  # typed by hand: another case, blanks doubled
            name = "  ".join(by_key[key]["NomClient"].upper().split())
            body = {"company": {"companyName": name},
                    "externalId": [{"system": "legacy", "id": legacy}]}  # fmt: skip
            control.post("/_sandbox/load/contacts", json=[body]).raise_for_status()
    return roles


def legacy_ids(p: Pipeline) -> dict[str, str]:
    """The Atollon contacts typed by hand in :func:`seed`: legacy id -> contact id."""
    return {e["id"]: str(c["contactId"]) for c in p.records("atollon", "contacts")
            for e in c["externalId"] if e["system"] == "legacy"}  # fmt: skip


def adopted(plan: dict[str, Any]) -> dict[str, str]:
    return {e["key"]: e["target_id"] for e in plan["examples"]["adopt"]}


def check_plan(
    plan: dict[str, Any], made: list[Handmade], roles: dict[str, str], legacy: dict[str, str]
) -> None:
    """Propeller and HIPE: the hand-made matches as in the going-live test, the inactive
    customers among create and adopt. Atollon: its own matching."""
    kinds = Counter(m.kind for m in made)
    adopt = kinds["tax_number"] + kinds["email"] + kinds["name"]
    held = kinds["two_targets"] // 2 + 2 * kinds["two_sources"]
    for target in ("propeller", "hipe"):
        assert plan[target]["counts"] == {
            "create": CUSTOMERS + 1 - adopt - held, "update": 0, "unchanged": 0,
            "adopt": adopt, "ambiguous": held,
        }, target  # fmt: skip
        created = {e["key"] for e in plan[target]["examples"]["create"]}
        assert {roles["inactive_created"], roles["inactive_created_2"]} <= created, target
        assert roles["inactive_adopted"] in adopted(plan[target]), target
    atollon = plan["atollon"]
    assert atollon["rules"] == ["atollon_name"]
    assert any("nothing is held for review" in n for n in atollon["notes"])
    counts = atollon["counts"]
    assert (counts["update"], counts["unchanged"], counts["ambiguous"]) == (0, 0, 0)
    assert counts["create"] + counts["adopt"] == CUSTOMERS + 1
    found = adopted(atollon)
    assert found[roles["atollon_once"]] == legacy["L1"]
    assert found[roles["atollon_twice"]] == legacy["L2"]  # the oldest of the two
    twins = [k for k in (roles["namesake"], "Z-TWIN") if k in found]
    assert len(twins) == 1
    assert found[twins[0]] == legacy["L4"]


def check_first_run(
    p: Pipeline,
    plan: dict[str, Any],
    roles: dict[str, str],
    before: dict[str, dict[str, list[str]]],
) -> None:
    """What the first run did, per target, against what the plan said."""
    held = DeadLetterStore(p.redis, p.keys).counts_by_target_code()
    for target in ("propeller", "hipe"):
        want = plan[target]["counts"]
        c = p.flow_counters("customers", target)
        made_new = c.get("action_created", 0) + c.get("action_archived", 0)
        assert made_new == want["create"], (target, c)
        assert c.get("adopted", 0) == want["adopt"], (target, c)
        assert held.get(target, {}) == {REVIEW_CODE: want["ambiguous"]}, (target, held)
        carried = our_keys(p, target)
        assert len(carried) == len(before[target]) + want["create"], target
        ours = {keys[0]: i for i, keys in carried.items() if keys}
        for key, target_id in adopted(plan[target]).items():
            assert ours[key] == target_id, (target, key)
    archived = {c["externalId"]: c["archived"] for c in p.records("hipe", "companies")}
    assert archived[roles["inactive_created"]] is True
    assert archived[roles["inactive_adopted"]] is True

    want = plan["atollon"]["counts"]
    assert "atollon" not in held
    carried = our_keys(p, "atollon")
    assert len(carried) == len(before["atollon"]) + want["create"]
    taken = {keys[0]: i for i, keys in carried.items() if keys and i in before["atollon"]}
    predicted = adopted(plan["atollon"])
    twins = {roles["namesake"], "Z-TWIN"}
    assert {k: v for k, v in taken.items() if k not in twins} == {
        k: v for k, v in predicted.items() if k not in twins
    }
    assert len(twins & taken.keys()) == 1  # one of the two, whichever arrived first


def test_plan_predicts_inactive_creates_and_atollons_own_matching(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    made = generate(REQUEST)
    roles = seed(p, made)
    legacy = legacy_ids(p)
    before = {t: our_keys(p, t) for t in TARGETS}
    for system in (*TARGETS, "onlineerp"):
        with p.control(system) as control:
            control.delete("/_sandbox/stats").raise_for_status()

    status, plan = run_cli(p, "plan", "customers", "--limit", "0")
    assert status == 0
    assert plan["source_records"] == CUSTOMERS + 1
    for target in (*TARGETS, "onlineerp"):
        assert p.stats(target)["writes"] == 0, (target, p.stats(target))
    check_plan(plan["targets"], made, roles, legacy)

    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=180)
    check_first_run(p, plan["targets"], roles, before)
