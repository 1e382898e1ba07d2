"""Issue 15, point 5, across processes: a flow from Propeller beside the ERP's flow into it.

The ERP's customers go to Propeller and HIPE; Propeller's own companies go to HIPE. A
Propeller company and an ERP customer with the same id stay two records everywhere (ledger,
locks, HIPE external ids), what erpsync wrote into Propeller never comes back as a change
of Propeller, nor does an operator's edit of such a company (the ERP stays its truth), and a
shop company under an ERP company lands under that ERP company in HIPE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters import make_client
from adapters.propeller import PropellerClient, PropellerCompanyInput
from adapters.propeller.models import PropellerCompanyRef
from bench.stack import Pipeline
from producers.base import PollResult

pytestmark = pytest.mark.integration

TARGETS = ("propeller", "hipe")
FLOWS = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(TARGETS),
        "mapping": {"propeller": {}, "hipe": {}},
    },
    "shop": {"source": "propeller", "entity": "customer", "targets": ["hipe"]},
}


def propeller_as(p: Pipeline, source: str) -> Iterator[PropellerClient]:
    """A Propeller client writing under ``source`` (a shop's own integration, or erpsync's)."""
    settings = p.settings.systems.propeller
    assert settings is not None
    settings = settings.model_copy(update={"source": source})
    with make_client(settings) as http:
        yield PropellerClient(http, settings)


def poll(p: Pipeline) -> dict[str, PollResult]:
    return {result.stream: result for result in p.produce()}


def hipe_companies(p: Pipeline) -> dict[str, dict[str, Any]]:
    companies = p.records("hipe", "companies")
    by_key = {str(c["externalId"]): c for c in companies}
    assert len(by_key) == len(companies), "one HIPE company per external id"
    return by_key


def seed_one_id_in_both(p: Pipeline) -> str:
    """A shop company in Propeller, and ERP customers C-2 and one under the shop company's
    Propeller id; returns that id."""
    for shop in propeller_as(p, "SHOP"):
        native = shop.create_company(
            PropellerCompanyInput(source_id="S1", language="EN", name="Shop One", email="a@s.test")
        )
    same_id = str(native.id)
    with p.erp() as erp:
        for key, name in ((same_id, "ERP Same Id"), ("C-2", "ERP Two")):
            erp.post(
                "/Entity/Customer", json={"NoClient": key, "NomClient": name, "EstActif": True}
            ).raise_for_status()
    return same_id


def assert_separate_records(p: Pipeline, same_id: str, hipe: dict[str, dict[str, Any]]) -> None:
    """The ERP's and the shop's records with one id are two records: two ledgers, two HIPE
    companies, and only the ERP's written to Propeller."""
    erp_ledger = p.redis.hgetall(p.keys.ledger("hipe", "customer", same_id))
    shop_ledger = p.redis.hgetall(p.keys.ledger("hipe", "customer", f"propeller:{same_id}"))
    assert erp_ledger["target_id"] == str(hipe[same_id]["id"])
    assert shop_ledger["target_id"] == str(hipe[f"propeller:{same_id}"]["id"])
    assert erp_ledger["target_id"] != shop_ledger["target_id"]
    written = {
        s["sourceId"]: c["name"]
        for c in p.records("propeller", "companies")
        for s in c.get("sources") or []
        if s.get("source") == "ERPSYNC"
    }
    assert written == {same_id: "ERP Same Id", "C-2": "ERP Two"}, (
        "the ERP's customers are in Propeller"
    )


def assert_a_shop_branch_goes_under_the_erps_company(p: Pipeline) -> None:
    """A shop company created under the ERP's C-2 in Propeller is under C-2 in HIPE."""
    for shop in propeller_as(p, "SHOP"):
        child = shop.create_company(
            PropellerCompanyInput(
                source_id="S2",
                language="EN",
                name="Shop branch",
                parent=PropellerCompanyRef(source_id="C-2", source="ERPSYNC"),
            )
        )
    fourth = poll(p)
    assert fourth["propeller.customer"].events == 1
    p.wait_converged(targets=TARGETS)
    hipe = hipe_companies(p)
    assert hipe[f"propeller:{child.id}"]["name"] == "Shop branch"
    assert hipe[f"propeller:{child.id}"]["parentId"] == hipe["C-2"]["id"]
    counters = p.flow_counters("shop", "hipe")
    assert (counters["produced"], counters["applied"], counters.get("dead_lettered", 0)) == (
        3,
        3,
        0,
    )


def test_propeller_and_erp_keys_never_meet_and_erpsyncs_writes_are_not_changes(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    same_id = seed_one_id_in_both(p)
    p.start_worker()
    p.wait_workers(1)

    first = poll(p)
    assert first["onlineerp.customer"].events == 2
    assert first["propeller.customer"].events == 1, "the shop's own company"
    p.wait_converged(targets=TARGETS)

    hipe = hipe_companies(p)
    assert {k: c["name"] for k, c in hipe.items()} == {
        same_id: "ERP Same Id",
        "C-2": "ERP Two",
        f"propeller:{same_id}": "Shop One",
    }
    assert_separate_records(p, same_id, hipe)

    again = poll(p)
    # The lookback reads the shop's company again (unchanged); erpsync's two are left out.
    assert again["propeller.customer"].records == 1, "what erpsync wrote is not a record here"
    assert again["propeller.customer"].events == 0

    # An operator renames, in Propeller, a company erpsync wrote: not a change of Propeller.
    for ours in propeller_as(p, "ERPSYNC"):
        ours.update_company("C-2", PropellerCompanyInput(source_id="C-2", name="Renamed by hand"))
    # The shop renames its own company: a change of Propeller, under Propeller's key.
    for shop in propeller_as(p, "SHOP"):
        shop.update_company("S1", PropellerCompanyInput(source_id="S1", name="Shop One Ltd"))
    third = poll(p)
    assert third["propeller.customer"].events == 1
    assert third["onlineerp.customer"].events == 0
    p.wait_converged(targets=TARGETS)
    assert {k: c["name"] for k, c in hipe_companies(p).items()} == {
        same_id: "ERP Same Id",
        "C-2": "ERP Two",
        f"propeller:{same_id}": "Shop One Ltd",
    }

    # The shop puts a company of its own under the ERP's C-2: in HIPE, under the ERP's C-2.
    assert_a_shop_branch_goes_under_the_erps_company(p)
