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
from typing import Any

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


def test_product_names_prices_and_status_reach_atollon_through_every_change(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    rng = random.Random(1515)
    p.start_worker()
    p.wait_workers(1)
    products: dict[str, dict[str, Any]] = {}
    polled: dict[str, SourceState] = {}
    changes: dict[str, int] = {}

    def price() -> float:
        return rng.choice((0.0, 0.01, 9.99, 12.5, 1234.56, round(rng.uniform(1, 500), 2)))

    def poll() -> None:
        p.produce()
        source = {r["NoProduit"]: r for r in p.records("onlineerp", "Product")}
        assert sorted(source) == sorted(products)
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

    with p.erp() as erp:

        def create(key: str) -> None:
            body = {
                "NoProduit": key,
                "Description": f"  Boîte {rng.randint(1, 999)} « kraft »  ",
                "PrixVente": price(),
                "EstActif": True,
            }
            products[key] = body
            erp.post("/Entity/Product", json=body).raise_for_status()

        def put(key: str, **changed: Any) -> None:
            products[key].update(changed)
            erp.put(f"/Entity/Product/{key}", json=products[key]).raise_for_status()

        for n in range(PRODUCTS):
            create(f"P{n:03d}")
        poll()
        keys = sorted(products)
        cycling, reborn = keys[:8], keys[8:14]
        for round_no in range(1, 6):
            for key in rng.sample(keys[14:], 10):
                put(key, Description=f"Caisse {rng.randint(1, 999)}")
            for key in rng.sample(keys[14:], 10):
                put(key, PrixVente=price())
            for key in cycling:
                put(key, EstActif=round_no % 2 == 0)  # off in rounds 1, 3, 5; on in 2, 4
            if round_no == 3:
                put(cycling[0], Description="Renamed while inactive", PrixVente=77.7)
            if round_no in (1, 3):
                for key in reborn:
                    del products[key]
                    erp.delete(f"/Entity/Product/{key}").raise_for_status()
            if round_no in (2, 4):
                for key in reborn:
                    create(key)
            if round_no == 5:
                for key in reborn[:3]:
                    del products[key]
                    erp.delete(f"/Entity/Product/{key}").raise_for_status()
            poll()
    p.wait_converged(targets=TARGET)

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
