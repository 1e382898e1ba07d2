"""Addresses in ``erpsync demo``: delivery addresses given to the seeded ERP customers, an
address edit, and the addresses each target holds for the summary.

Two customers in three get one or two delivery addresses (``AdressesLivraison``) besides
their invoice address before the first sync; once it converged, one customer loses a
delivery address and another gains one. The summary counts the addresses of erpsync's in
Propeller and HIPE beside those the ERP holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from simulators.server import CREDENTIALS

if TYPE_CHECKING:
    from cli._demo_edits import Edit
    from cli.demo import Demo

#: the targets that hold a customer's addresses apart (Atollon keeps one on the contact)
TARGETS = ("propeller", "hipe")


def _erp(run: Demo) -> httpx.Client:
    erp = CREDENTIALS["onlineerp"]
    return httpx.Client(
        base_url=run.sandbox.endpoints["onlineerp"].api_url,
        auth=(erp["licence_code"], erp["secret"]),
        headers={"COMPANY_ID": erp["company_id"]},
        timeout=30,
    )


def _delivery(customer: dict[str, Any], code: str, street: str) -> dict[str, Any]:
    invoice = customer.get("Adresse") or {}
    return {**invoice, "CodeAdresse": code, "Ligne1": street}


def give_delivery_addresses(run: Demo) -> int:
    """Delivery addresses for two customers in three; the ERP's addresses in all."""
    customers = sorted(run.records_of("onlineerp", "Customer"), key=lambda c: c["NoClient"])
    total = 0
    with _erp(run) as client:
        for index, customer in enumerate(customers):
            count = index % 3  # none, one or two delivery addresses
            if count:
                deliveries = [
                    _delivery(customer, f"L{n}", f"{100 + n} rue du Quai") for n in range(count)
                ]
                client.put(
                    f"/Entity/Customer/{customer['NoClient']}",
                    json={"AdressesLivraison": deliveries},
                ).raise_for_status()
            total += 1 + count
    return total


def address_edits(run: Demo) -> list[Edit]:
    """Remove a delivery address of one customer, add one to another; how to see each."""
    from cli._demo_edits import Edit

    customers = sorted(run.records_of("onlineerp", "Customer"), key=lambda c: c["NoClient"])
    two = next(c for c in customers if len(c.get("AdressesLivraison") or []) == 2)
    none = next(c for c in customers if not c.get("AdressesLivraison") and c["EstActif"])
    with _erp(run) as client:
        client.put(
            f"/Entity/Customer/{two['NoClient']}",
            json={"AdressesLivraison": two["AdressesLivraison"][:1]},
        ).raise_for_status()
        client.put(
            f"/Entity/Customer/{none['NoClient']}",
            json={"AdressesLivraison": [_delivery(none, "QUAI", "1 quai des Éclusiers")]},
        ).raise_for_status()
    return [
        Edit(
            f"delivery address L1 of {two['NoClient']} removed",
            {t: _codes_are(run, t, two["NoClient"], {"invoice", "delivery:L0"}) for t in TARGETS},
        ),
        Edit(
            f"delivery address QUAI added to {none['NoClient']}",
            {
                t: _codes_are(run, t, none["NoClient"], {"invoice", "delivery:QUAI"})
                for t in TARGETS
            },
        ),
    ]


def _addresses_by_key(run: Demo, target: str) -> dict[str, set[str]]:
    """The codes of erpsync's addresses each company holds, by the customer's key."""
    if target == "propeller":
        companies = {
            c["id"]: s["sourceId"]
            for c in run.records_of("propeller", "companies")
            for s in c.get("sources") or []
        }
        code = "code"
    else:
        companies = {c["id"]: c["externalId"] for c in run.records_of("hipe", "companies")}
        code = "name"
    found: dict[str, set[str]] = {}
    for address in run.records_of(target, "addresses"):
        value = address.get(code) or ""
        if value == "invoice" or value.startswith("delivery:"):
            found.setdefault(str(companies.get(address["companyId"])), set()).add(value)
    return found


def _codes_are(run: Demo, target: str, key: str, codes: set[str]) -> Callable[[], bool]:
    return lambda: _addresses_by_key(run, target).get(key) == codes


def address_counts(run: Demo) -> dict[str, int]:
    """The addresses of erpsync's each target holds, and the ERP's (for the summary)."""
    erp = 0
    for customer in run.records_of("onlineerp", "Customer"):
        invoice = customer.get("Adresse") or {}
        erp += 1 if any(invoice.values()) else 0
        erp += len(customer.get("AdressesLivraison") or [])
    counts = {"onlineerp": erp}
    for target in TARGETS:
        counts[target] = sum(len(codes) for codes in _addresses_by_key(run, target).values())
    return counts
