"""Issue 15: ERP products equal Atollon products field by field, through every change.

Real Redis, a real ``erpsync worker`` process, the producer and the sandbox over HTTP. ERP
products are created, renamed (a name erased to spaces is refused by the ERP, so a name is
only ever changed), repriced (0 and fractions of a cent included), deactivated and
reactivated twice, deleted and created again, in rounds with a poll after each; then every
Atollon product equals what the oracle (tests/integration/equality/oracle.py, from the
crawler doc) says of its ERP product, and no dead letter is left.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bench.stack import Pipeline
from state.dlq import DeadLetterStore
from tests.integration.equality.oracle import (
    SourceState,
    compare,
    expected_atollon_product,
    observed_atollon_products,
)
from tests.integration.equality.reconcile import drift, reconcile

pytestmark = pytest.mark.integration

TARGET = ("atollon",)
FLOWS: dict[str, Any] = {
    "products": {"source": "onlineerp", "entity": "product", "targets": ["atollon"]}
}
PRODUCTS = 40


@dataclass
class Products:
    """The ERP's products as the test makes and changes them, and what each poll found."""

    p: Pipeline
    rng: random.Random
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    polled: dict[str, SourceState] = field(default_factory=dict)
    #: how many changes of each kind the polls saw (a field's name, recreated, deleted)
    changes: dict[str, int] = field(default_factory=dict)

    def price(self) -> float:
        rng = self.rng
        return rng.choice((0.0, 0.01, 9.99, 12.5, 1234.56, round(rng.uniform(1, 500), 2)))

    def poll(self) -> None:
        """Produce, and count what changed in the source since the last poll."""
        self.p.produce()
        polled, changes = self.polled, self.changes
        source = {r["NoProduit"]: r for r in self.p.records("onlineerp", "Product")}
        assert sorted(source) == sorted(self.products)
        for key, record in source.items():
            before = polled.get(key)
            if before is not None and before.exists:
                for name in ("Description", "PrixVente", "EstActif"):
                    if before.record.get(name) != record.get(name):
                        changes[name] = changes.get(name, 0) + 1
            elif before is not None:
                changes["recreated"] = changes.get("recreated", 0) + 1
            polled[key] = SourceState(key, record)
        for key, state in list(polled.items()):
            if key not in source and state.exists:
                polled[key] = SourceState(key, state.record, exists=False)
                changes["deleted"] = changes.get("deleted", 0) + 1

    def create(self, erp: httpx.Client, key: str) -> None:
        body = {
            "NoProduit": key,
            "Description": f"  Boîte {self.rng.randint(1, 999)} « kraft »  ",
            "PrixVente": self.price(),
            "EstActif": True,
        }
        self.products[key] = body
        erp.post("/Entity/Product", json=body).raise_for_status()

    def put(self, erp: httpx.Client, key: str, **changed: Any) -> None:
        self.products[key].update(changed)
        erp.put(f"/Entity/Product/{key}", json=self.products[key]).raise_for_status()

    def delete(self, erp: httpx.Client, key: str) -> None:
        del self.products[key]
        erp.delete(f"/Entity/Product/{key}").raise_for_status()


def change_in_rounds(source: Products, erp: httpx.Client) -> list[str]:
    """Create the products, then five rounds of renames, reprices, deactivations and
    reactivations, deletions and re-creations, a poll after each; the re-created keys."""
    rng = source.rng
    for n in range(PRODUCTS):
        source.create(erp, f"P{n:03d}")
    source.poll()
    keys = sorted(source.products)
    cycling, reborn = keys[:8], keys[8:14]
    for round_no in range(1, 6):
        for key in rng.sample(keys[14:], 10):
            source.put(erp, key, Description=f"Caisse {rng.randint(1, 999)}")
        for key in rng.sample(keys[14:], 10):
            source.put(erp, key, PrixVente=source.price())
        for key in cycling:
            source.put(erp, key, EstActif=round_no % 2 == 0)  # off in rounds 1, 3, 5; on in 2, 4
        if round_no == 3:
            source.put(erp, cycling[0], Description="Renamed while inactive", PrixVente=77.7)
        if round_no in (1, 3):
            for key in reborn:
                source.delete(erp, key)
        if round_no in (2, 4):
            for key in reborn:
                source.create(erp, key)
        if round_no == 5:
            for key in reborn[:3]:
                source.delete(erp, key)
        source.poll()
    return reborn


def test_product_names_prices_and_status_reach_atollon_through_every_change(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    source = Products(p, random.Random(1515))
    p.start_worker()
    p.wait_workers(1)
    with p.erp() as erp:
        reborn = change_in_rounds(source, erp)
    p.wait_converged(targets=TARGET)

    changes, polled, products = source.changes, source.polled, source.products
    assert changes["Description"] >= 10
    assert changes["PrixVente"] >= 10
    assert changes["EstActif"] >= 8 * 4, "deactivated and reactivated twice"
    assert changes["recreated"] == 2 * len(reborn)
    report = compare(
        "atollon products",
        {k: expected_atollon_product(s) for k, s in polled.items()},
        observed_atollon_products(p.records("atollon", "products")),
    )
    dead = [(e.key, e.code, e.message) for e in DeadLetterStore(p.redis, p.keys).iter_entries()]
    status, reconciled = reconcile(p, "products")
    assert report.equal, f"{report}\ndead letters: {dead[:5]}\nreconcile: {drift(reconciled)}"
    assert dead == []
    assert drift(reconciled) == {}
    assert reconciled["targets"]["atollon"]["checked"] == len(products)
    assert status == 0
