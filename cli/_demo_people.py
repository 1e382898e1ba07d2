"""People in ``erpsync demo``: the ERP's contacts reach HIPE and Atollon, and two edits.

One customer in four gets one to four people (ERP ``Contact``, as the sandbox's seed makes
them) before the first sync (every customer would double the demo's time); the
``contacts`` flow sends them to HIPE (contacts linked to their company) and Atollon (person
contacts bound to their employer). Once the first sync converged, one person's job title
changes and another person is deactivated (HIPE archives it; Atollon, by default, shows no
deactivation). The summary counts the people each target holds beside the ERP's.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli._demo_addresses import _erp
from simulators.seed import make_contact

if TYPE_CHECKING:
    from cli._demo_edits import Edit
    from cli.demo import Demo

#: the external id system of the persons erpsync writes to Atollon (the ERP's + "-contact")
ATOLLON_PERSON_SYSTEM = "onlineerp-contact"
NEW_TITLE = "Directrice générale"


def _hipe_people(run: Demo) -> dict[str, dict[str, Any]]:
    return {c["externalId"]: c for c in run.records_of("hipe", "contacts") if c["externalId"]}


def _atollon_people(run: Demo) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for contact in run.records_of("atollon", "contacts"):
        for external in contact.get("externalId") or []:
            if external.get("system") == ATOLLON_PERSON_SYSTEM:
                found[str(external["id"])] = contact
    return found


def give_people(run: Demo) -> int:
    """One to four people for one customer in four; the ERP's people in all."""
    customers = sorted(c["NoClient"] for c in run.records_of("onlineerp", "Customer"))
    rng = random.Random("demo-people")
    total = 0
    with _erp(run) as client:
        for customer in customers[::4]:
            for n in range(rng.randint(1, 4)):
                body = make_contact(rng, customer, n)
                client.post("/Entity/Contact", json=body).raise_for_status()
                total += 1
    return total


def people_edits(run: Demo) -> list[Edit]:
    """A job title changed, a person deactivated; how to see each arrive."""
    from cli._demo_edits import Edit

    active = {c["NoClient"] for c in run.records_of("onlineerp", "Customer") if c["EstActif"]}
    people = sorted(
        (p for p in run.records_of("onlineerp", "Contact") if p["NoClient"] in active),
        key=lambda p: p["NoContact"],
    )
    titled, leaving = people[0]["NoContact"], people[-1]["NoContact"]
    with _erp(run) as client:
        client.put(f"/Entity/Contact/{titled}", json={"Titre": NEW_TITLE}).raise_for_status()
        client.put(f"/Entity/Contact/{leaving}", json={"EstActif": False}).raise_for_status()
    return [
        Edit(
            f"job title of person {titled} changed",
            {"hipe": _hipe_job(run, titled), "atollon": _atollon_position(run, titled)},
        ),
        Edit(f"person {leaving} deactivated", {"hipe": _hipe_archived(run, leaving)}),
    ]


def _hipe_job(run: Demo, key: str) -> Callable[[], bool]:
    return lambda: _hipe_people(run).get(key, {}).get("job") == NEW_TITLE


def _hipe_archived(run: Demo, key: str) -> Callable[[], bool]:
    return lambda: _hipe_people(run).get(key, {}).get("archived") is True


def _atollon_position(run: Demo, key: str) -> Callable[[], bool]:
    def check() -> bool:
        person = (_atollon_people(run).get(key) or {}).get("person") or {}
        relations = person.get("companyPersonRelation") or []
        return [r.get("positionDesc") for r in relations] == [NEW_TITLE]

    return check


def people_counts(run: Demo) -> dict[str, int]:
    """The people the ERP holds, and those of erpsync's each target holds (the summary)."""
    return {
        "onlineerp": len(run.records_of("onlineerp", "Contact")),
        "hipe": len(_hipe_people(run)),
        "atollon": len(_atollon_people(run)),
    }
