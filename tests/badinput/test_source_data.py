"""Issue #8, item 3: source data a sync must survive, end to end with real workers.

* ERP customers missing a required field: each is dead-lettered as invalid source data,
  once per target, while every other customer arrives;
* names with quotes, ``&``, ``%``, emoji and right-to-left text reach every target intact;
* CSV cells that a spreadsheet would run as formulas (``=``, ``+``, ``-``, ``@``, tab,
  carriage return) are neutralised in HIPE CSV imports, checked where HIPE stores them.

The ERP simulator refuses to store a customer without a name (its API validates like the
real one), but an ERP holds what older tools and direct database edits left in it; the
broken records are therefore put straight into the simulator's store, and read by the
pipeline over HTTP like every other record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from adapters.hipe import HipeClient, HipeCompanyImportRow
from bench.stack import TARGETS, Pipeline
from bench.verify import (
    compare_atollon,
    compare_hipe,
    compare_propeller,
    erp_customers,
)
from erpsync.settings import HipeSettings
from simulators.onlineerp import OnlineErpSimulator
from simulators.server import CREDENTIALS, RunningSandbox
from state.dlq import DeadLetterStore
from tests.integration.checks import assert_targets_match_source
from tests.integration.conftest import make_pipeline  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

INVALID = "invalid-source-data"


def seed(p: Pipeline, customers: int) -> None:
    with p.control("onlineerp") as client:
        client.post("/_sandbox/seed", json={"customers": customers}).raise_for_status()


def leaves(customers: dict[str, dict[str, Any]]) -> list[str]:
    """Customers nobody names as parent (breaking one holds no child back)."""
    parents = {c["NoClientParent"] for c in customers.values()}
    return [k for k in sorted(customers) if k not in parents]


def store_raw(p: Pipeline, record: dict[str, Any], entity: str = "Customer") -> None:
    """Put a record into the ERP simulator as it is, bypassing its API's validation."""
    erp = p.sandbox.simulators["onlineerp"]
    assert isinstance(erp, OnlineErpSimulator)
    with erp.lock:
        erp._stores[entity].put(record)


def dead_letters(p: Pipeline) -> list[dict[str, Any]]:
    return [
        {"target": e.target, "key": e.key, "code": e.code, "excerpt": e.response_excerpt}
        for e in DeadLetterStore(p.redis, p.keys).iter_entries()
    ]


def test_customers_missing_required_fields_are_dead_lettered_and_the_rest_flows(
    make_pipeline: Callable[..., Pipeline],  # noqa: F811
) -> None:
    p = make_pipeline()
    seed(p, 60)
    customers = erp_customers(p)
    no_name, blank_name, wrong_type = leaves(customers)[:3]
    without = {k: v for k, v in customers[no_name].items() if k != "NomClient"}
    store_raw(p, without)
    store_raw(p, {**customers[blank_name], "NomClient": "   "})
    store_raw(p, {**customers[wrong_type], "NomClient": {"fr": "Nom", "en": "Name"}})
    broken = {no_name, blank_name, wrong_type}
    products = {r["NoProduit"]: r for r in p.records("onlineerp", "Product")}
    bad_product = sorted(products)[0]
    store_raw(
        p,
        {k: v for k, v in products[bad_product].items() if k != "Description"},
        "Product",
    )

    p.start_worker()
    p.wait_workers(1)
    (result,) = [r for r in p.produce() if r.stream == "onlineerp.customer"]
    assert result.records == 60, "one broken record does not stop the page"
    assert result.events == 60
    p.wait_converged()

    letters = dead_letters(p)
    (product_letter,) = [d for d in letters if d["key"] == bad_product]
    assert (product_letter["target"], product_letter["code"]) == ("atollon", INVALID)
    assert p.flow_counters("products", "atollon")["applied"] == len(products) - 1
    letters = [d for d in letters if d["key"] != bad_product]
    for target in TARGETS:
        mine = [d for d in letters if d["target"] == target]
        assert sorted(d["key"] for d in mine) == sorted(broken), (target, mine)
        assert {d["code"] for d in mine} == {INVALID}
        assert all("name" in (d["excerpt"] or "") for d in mine), mine
        counters = p.flow_counters("customers", target)
        assert counters["produced"] == 60
        assert counters["applied"] == 57
        assert counters["dead_lettered"] == 3
    source = {k: v for k, v in erp_customers(p).items() if k not in broken}
    for comparison in (
        compare_propeller(p, source),
        compare_hipe(p, source),
        compare_atollon(p, source),
    ):
        assert comparison.equal, str(comparison)

    # Fixed in the ERP, the records flow on at the next poll; their dead letters stay
    # until an operator replays them (the replay is then skipped as superseded).
    with p.erp() as erp:
        for key in sorted(broken):
            erp.put(
                f"/Entity/Customer/{key}", json={"NomClient": f"Fixed {key}"}
            ).raise_for_status()
    (again,) = [r for r in p.produce() if r.stream == "onlineerp.customer"]
    assert again.events == 3
    p.wait_converged()
    assert_targets_match_source(p)


TRICKY_NAMES = [
    'O\'Brien & "Fils" 100% Ltd',
    "50%20off & co; DROP TABLE customers;--",
    "Café Zürich 🚀🏭 «Ünïcode»",
    "شركة الاختبار للتجارة",
    "חברה בע״מ & Co",
    "Mixed עברית and English (RTL ‮override)",
    "Back\\slash {braces} [brackets] $contL",
    "<b>Tags</b> &amp; entities",
]


def test_names_with_quotes_ampersands_percents_emoji_and_rtl_text_arrive_intact(
    make_pipeline: Callable[..., Pipeline],  # noqa: F811
) -> None:
    p = make_pipeline()
    seed(p, 30)
    customers = erp_customers(p)
    renamed = dict(zip(leaves(customers), TRICKY_NAMES, strict=False))
    assert len(renamed) == len(TRICKY_NAMES)
    with p.erp() as erp:
        for key, name in renamed.items():
            erp.put(f"/Entity/Customer/{key}", json={"NomClient": name}).raise_for_status()
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged()

    assert_targets_match_source(p)  # names compared exactly, in every target
    hipe = {c["externalId"]: c["name"] for c in p.records("hipe", "companies")}
    atollon = {
        ext["id"]: c["company"]["companyName"]
        for c in p.records("atollon", "contacts")
        for ext in c.get("externalId") or []
    }
    propeller = {
        s["sourceId"]: c["name"]
        for c in p.records("propeller", "companies")
        for s in c.get("sources") or []
    }
    for key, name in renamed.items():
        assert (hipe[key], atollon[key], propeller[key]) == (name, name, name), key
    for target in TARGETS:
        assert p.flow_counters("customers", target).get("dead_lettered", 0) == 0


FORMULAS = {
    "EQ": '=HYPERLINK("http://evil.example","click")',
    "PLUS": "+1+cmd|' /C calc'!A0",
    "MINUS": "-2+3",
    "AT": "@SUM(1+1)*cmd|' /C calc'!A0",
    "TAB": "\t=1+1",
    "CR": "\r=1+1",
}


@pytest.fixture
def hipe(sandbox: RunningSandbox) -> Any:
    settings = HipeSettings(
        base_url=sandbox.endpoints["hipe"].api_url,
        access_token=SecretStr(CREDENTIALS["hipe"]["access_token"]),
    )
    with make_client(settings) as http:
        yield HipeClient(http, settings, sleep=lambda s: None)


def test_formula_cells_are_stored_inert_by_hipe_csv_imports(
    hipe: HipeClient, sandbox: RunningSandbox
) -> None:
    run = uuid.uuid4().hex[:8]
    rows = [
        HipeCompanyImportRow(
            external_id=f"CSV-{run}-{tag}",
            name=f"{value}",
            email=f"{value}@x.test" if tag == "AT" else None,
            phone="+1 514 555 0100" if tag == "PLUS" else None,
            custom_fields={"erpNote": value},
        )
        for tag, value in FORMULAS.items()
    ]
    rows.append(HipeCompanyImportRow(external_id=f"CSV-{run}-PLAIN", name="Plain & Simple"))
    result = hipe.import_companies(rows)
    assert result.errors == []
    assert result.created == len(rows)

    with httpx.Client(base_url=sandbox.endpoints["hipe"].url, timeout=30) as control:
        stored = {
            c["externalId"]: c
            for c in control.get("/_sandbox/records/companies").json()
            if str(c.get("externalId", "")).startswith(f"CSV-{run}-")
        }
    triggers = ("=", "+", "-", "@", "\t", "\r")
    for tag, value in FORMULAS.items():
        company = stored[f"CSV-{run}-{tag}"]
        for field in ("name", "email", "phone"):
            text = company.get(field)
            if text:
                assert not text.startswith(triggers), (tag, field, text)
        assert company["name"] == "'" + value, "the value is kept, made text"
        note = (company.get("customFields") or {}).get("erpNote")
        assert note == "'" + value, (tag, note)
    assert stored[f"CSV-{run}-PLAIN"]["name"] == "Plain & Simple", "plain text is unchanged"
