"""The edits ``erpsync demo`` makes once the first sync converged, and how it sees them arrive.

In the ERP: a rename, a deactivation, a new child company, a payment and a cancellation of an
invoice; in Atollon: a new billable activity. Each edit carries one check per target that
reads the sandbox's records.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from simulators import seed as seed_data
from simulators.server import CREDENTIALS

if TYPE_CHECKING:
    from cli.demo import Demo


@dataclass
class Edit:
    """One change the demo makes, and how to see that it arrived."""

    description: str
    checks: dict[str, Callable[[], bool]]
    arrived: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class _ErpEdits:
    """The customers the demo edits in the ERP, and the new names it gives."""

    first_key: str
    renamed_key: str
    renamed: str
    leaf: str
    root: str
    new_key: str
    new_name: str


class DemoEdits:
    """The edits of one demo run (``run``: its sandbox, settings and record reader)."""

    def __init__(self, run: Demo) -> None:
        self.run = run

    def make(self) -> list[Edit]:
        """Edit the ERP (rename, deactivate, add a child) and Atollon; how to see each arrive."""
        erp = self._edit_erp()
        activity_id = self._add_billable_activity(erp.first_key)
        paid, cancelled = self._settle_invoices()
        named = self._named
        return [
            Edit(
                f"rename {erp.renamed_key} to {erp.renamed!r}",
                {
                    "propeller": named("propeller", "companies", erp.renamed_key, erp.renamed),
                    "hipe": named("hipe", "companies", erp.renamed_key, erp.renamed),
                    "atollon": named("atollon", "contacts", erp.renamed_key, erp.renamed),
                },
            ),
            Edit(
                f"deactivate {erp.leaf}",
                {"propeller": self._marked_inactive(erp.leaf), "hipe": self._archived(erp.leaf)},
            ),
            Edit(
                f"new child company {erp.new_key} under {erp.root}",
                {
                    "propeller": named("propeller", "companies", erp.new_key, erp.new_name),
                    "hipe": named("hipe", "companies", erp.new_key, erp.new_name),
                    "atollon": named("atollon", "contacts", erp.new_key, erp.new_name),
                },
            ),
            Edit(
                f"new billable activity {activity_id} in Atollon",
                {"onlineerp": self._invoiced(activity_id), "atollon": self._recorded(activity_id)},
            ),
            *(
                Edit(f"invoice {n} paid in the ERP", {"atollon": self._invoice_state(n, "Paid")})
                for n in paid
            ),
            *(
                Edit(
                    f"invoice {n} cancelled in the ERP",
                    {"atollon": self._invoice_state(n, "Cancelled")},
                )
                for n in cancelled
            ),
        ]

    def _edit_erp(self) -> _ErpEdits:
        """Rename a customer, deactivate a leaf, add a child under a root, in the ERP."""
        customers = {c["NoClient"]: c for c in self.run.records_of("onlineerp", "Customer")}
        parents = {c["NoClientParent"] for c in customers.values() if c["NoClientParent"]}
        keys = sorted(customers)
        renamed_key = keys[len(keys) // 3]
        edits = _ErpEdits(
            first_key=keys[0],
            renamed_key=renamed_key,
            renamed=f"{customers[renamed_key]['NomClient']} (renamed)",
            leaf=next(k for k in reversed(keys) if k not in parents and customers[k]["EstActif"]),
            root=next(k for k in keys if customers[k]["NoClientParent"] is None),
            new_key=f"C9{random.randrange(10**5):05d}",
            new_name="Demo — Nouvelle Filiale & Cie",
        )
        erp = CREDENTIALS["onlineerp"]
        with httpx.Client(
            base_url=self.run.sandbox.endpoints["onlineerp"].api_url,
            auth=(erp["licence_code"], erp["secret"]),
            headers={"COMPANY_ID": erp["company_id"]},
            timeout=30,
        ) as client:
            client.put(
                f"/Entity/Customer/{renamed_key}", json={"NomClient": edits.renamed}
            ).raise_for_status()
            client.put(
                f"/Entity/Customer/{edits.leaf}", json={"EstActif": False}
            ).raise_for_status()
            client.post(
                "/Entity/Customer",
                json={
                    "NoClient": edits.new_key, "NomClient": edits.new_name,
                    "NoClientParent": edits.root, "Courriel": "demo@exemple.qc.ca",
                    "EstActif": True,
                },
            ).raise_for_status()  # fmt: skip
        return edits

    def _settle_invoices(self) -> tuple[list[str], list[str]]:
        """An ERP user records a payment of the first invoice and cancels the last one."""
        numbers = sorted(
            i["NoFacture"] for i in self.run.records_of("onlineerp", "CustomerInvoice")
        )
        paid = numbers[:1]
        cancelled = numbers[-1:] if len(numbers) > 1 else []
        with self.run.control("onlineerp") as control:
            for number in paid:
                control.post(f"/_sandbox/invoices/{number}/payment").raise_for_status()
            for number in cancelled:
                control.post(f"/_sandbox/invoices/{number}/cancel").raise_for_status()
        return paid, cancelled

    # -- what shows that an edit arrived ------------------------------------------------
    def _invoice_state(self, number: str, state: str) -> Callable[[], bool]:
        return lambda: any(
            str(i.get("invoiceNumber")) == number and i.get("stateName") == state
            for i in self.run.records_of("atollon", "invoices")
        )

    def _named(self, system: str, entity: str, key: str, name: str) -> Callable[[], bool]:
        return lambda: any(
            self._key_of(system, r) == key and self._name_of(system, r) == name
            for r in self.run.records_of(system, entity)
        )

    def _archived(self, key: str) -> Callable[[], bool]:
        def archived() -> bool:
            hipe = [
                r for r in self.run.records_of("hipe", "companies") if r.get("externalId") == key
            ]
            return bool(hipe) and all(r.get("archived") for r in hipe)

        return archived

    def _marked_inactive(self, key: str) -> Callable[[], bool]:
        propeller = self.run.settings.systems.propeller
        marker = propeller.inactive_attribute if propeller is not None else "ERPSYNC_INACTIVE"
        return lambda: any(
            self._key_of("propeller", c) == key
            and {"name": marker, "value": "Y"} in (c.get("attributes") or [])
            for c in self.run.records_of("propeller", "companies")
        )

    def _invoiced(self, activity_id: str) -> Callable[[], bool]:
        return lambda: any(
            activity_id in str(i.get("Facture", {}).get("Référence", ""))
            for i in self.run.records_of("onlineerp", "CustomerInvoice")
        )

    def _recorded(self, activity_id: str) -> Callable[[], bool]:
        return lambda: any(
            activity_id in str(i.get("externalReferenceNumber", ""))
            for i in self.run.records_of("atollon", "invoices")
        )

    def _add_billable_activity(self, customer_key: str) -> str:
        data = seed_data.generate(self.run.records, max(10, self.run.records // 5), 0)
        rng = random.Random()
        index = 9000 + rng.randrange(1000)
        activity = seed_data._activity(rng, index, data)
        atollon = self.run.sandbox.simulators["atollon"]
        with atollon.lock:
            atollon.work.load_activity(activity, str(7_000_000 + index))  # type: ignore[attr-defined]
        return str(activity["activity"]["id"])

    @staticmethod
    def _key_of(system: str, record: dict[str, Any]) -> str | None:
        if system == "propeller":
            return next((str(s["sourceId"]) for s in record.get("sources") or []), None)
        if system == "hipe":
            return record.get("externalId")
        return next(
            (
                str(e["id"])
                for e in record.get("externalId") or []
                if e.get("system") == "onlineerp"
            ),
            None,
        )

    @staticmethod
    def _name_of(system: str, record: dict[str, Any]) -> str | None:
        if system == "atollon":
            return (record.get("company") or {}).get("companyName")
        return record.get("name")
