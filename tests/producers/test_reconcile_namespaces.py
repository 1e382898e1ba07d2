"""Reconcile of one flow leaves a target's records of another source's namespace alone.

HIPE fed by the ERP's customers and by Propeller's own companies holds ``42`` and
``propeller:42``: reconciling either flow must neither count the other's records nor call
them orphaned (a repair would then archive them).
"""

from __future__ import annotations

from typing import Any

from tests.producers.test_reconcile import FakeSink, ListStream, company, reconcile, shown


def test_the_erp_flow_ignores_propellers_records_and_propellers_flow_the_erps() -> None:
    hipe = FakeSink(
        "hipe",
        [shown("42"), shown("C-2"), shown("propeller:42"), shown("propeller:43", name="Shop")],
    )
    erp = ListStream("customers", "onlineerp", "customer", ["hipe"],
                     source_pages=[[company("42"), company("C-2")]])  # fmt: skip
    erp_report: dict[str, Any] = reconcile(erp, {"hipe": hipe})["targets"]["hipe"]
    assert (erp_report["checked"], erp_report["in_sync"]) == (2, 2)
    assert erp_report["orphaned"] == []
    assert erp_report["missing"] == []

    shop = ListStream("customers", "propeller", "customer", ["hipe"],
                      source_pages=[[company("propeller:42")]])  # fmt: skip
    shop_report: dict[str, Any] = reconcile(shop, {"hipe": hipe})["targets"]["hipe"]
    assert (shop_report["checked"], shop_report["in_sync"]) == (1, 1)
    assert [o["key"] for o in shop_report["orphaned"]] == ["propeller:43"], (
        "a company of Propeller's own gone from the source is orphaned; the ERP's are not"
    )
