"""Issue #9, must hold: large loads reach Propeller in bulk calls and HIPE in CSV imports."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.stack import Pipeline
from bench.verify import (
    compare_hipe,
    compare_propeller,
    contact_patches,
    erp_customers,
)
from state.dlq import DeadLetterStore
from tests.integration.bulk.loads import (
    BATCH_SIZE,
    BULK_TARGETS,
    FLOWS,
    assert_accounted,
    assert_equal_to_source,
    put_in_recycle_bin,
    requests,
    seed,
)

pytestmark = pytest.mark.integration

BULK_ROUTE = "/v2/companies/bulk/{lookupKey}"


def levels(customers: dict[str, dict[str, object]]) -> int:
    def depth(key: str) -> int:
        parent = customers[key]["NoClientParent"]
        return 1 if parent is None else 1 + depth(str(parent))

    return max(depth(k) for k in customers)


def test_2000_customers_arrive_through_bulk_calls_and_csv_imports(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed(p, 2000)
    assert levels(erp_customers(p)) == 3, "the seed has a 3-level hierarchy"
    p.start_worker()
    p.wait_workers(1)

    (result,) = p.produce()
    assert (result.events, result.deliveries) == (2000, 4000)
    p.wait_converged(timeout_s=300, targets=BULK_TARGETS)

    assert_equal_to_source(p)  # parents linked; one HIPE company per external id
    source = erp_customers(p)
    phones = {c["externalId"]: c["phone"] for c in p.records("hipe", "companies")}
    wrong = [k for k, c in source.items() if phones[k] != c["Telephone"]]
    assert not wrong, f"HIPE phones altered (a CSV formula guard?): {wrong[:5]}"
    propeller, hipe = p.stats("propeller"), p.stats("hipe")
    bulk_calls = requests(propeller, "POST", BULK_ROUTE)
    assert 2000 // BATCH_SIZE <= bulk_calls <= 2000 // BATCH_SIZE + 6, propeller["requests"]
    assert requests(propeller, "POST", "/v2/companies") == 0, "no single creates"
    # E-mail and phone ride in the bulk items (bulk_contact_fields "auto" against a
    # Propeller that takes them: the sandbox's default), so no single write follows.
    assert propeller["by_method"].get("PATCH", 0) == 0, propeller["requests"]
    assert contact_patches(source) > 1900, "the seed gives nearly every customer an e-mail"
    # A child's parent in an earlier batch (an earlier flush of the poll) was still being
    # applied by another worker thread: the child's batch waited for it in the worker.
    counters = p.counters("propeller")
    assert counters.get("dependency_waits", 0) == 0, (counters, p.worker_logs())
    imports = requests(hipe, "POST", "/api/imports")
    assert 2 <= imports <= 6, hipe["requests"]
    assert requests(hipe, "POST", "/api/companies") == 0, "no single creates"
    for target in BULK_TARGETS:
        counters = p.flow_counters("customers", target)
        assert (counters["produced"], counters["applied"]) == (2000, 2000), (target, counters)
        assert counters.get("dead_lettered", 0) == 0
    assert_accounted(p)

    # The ledger learned HIPE's ids: a later edit PATCHes by id, with no lookup.
    hipe_ids = {c["externalId"]: c["id"] for c in p.records("hipe", "companies")}
    ledger = p.redis.hget(p.keys.ledger("hipe", "customer", "C000042"), "target_id")
    assert ledger == str(hipe_ids["C000042"])


def test_a_record_propeller_refuses_dead_letters_alone_while_its_batch_is_applied(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed(p, 600)
    customers = erp_customers(p)
    parents = {c["NoClientParent"] for c in customers.values()}
    bad = next(k for k in sorted(customers)[300:] if k not in parents)
    put_in_recycle_bin(p, bad)  # Propeller refuses that item (40008) and applies the rest
    # And the first two bulk calls are rate-limited: the batch is retried as a batch.
    p.faults(
        "propeller",
        [{"path": "/v2/companies/bulk/*", "statuses": [429], "retry_after_s": 0.3, "count": 2}],
    )
    with p.control("propeller") as control:
        control.delete("/_sandbox/stats").raise_for_status()
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=240, targets=BULK_TARGETS)

    source = erp_customers(p)
    propeller = compare_propeller(p, source)
    assert propeller.missing == [bad], propeller
    assert (propeller.duplicates, propeller.wrong_name, propeller.wrong_parent) == ([], [], [])
    assert compare_hipe(p, source).equal
    (entry,) = DeadLetterStore(p.redis, p.keys).iter_entries()
    assert (entry.target, entry.key, entry.code) == ("propeller", bad, "40008")
    counters = p.flow_counters("customers", "propeller")
    assert (counters["applied"], counters["dead_lettered"]) == (599, 1)
    assert p.counters("propeller")["retries"] >= 1, "the 429s were met and retried"
    stats = p.stats("propeller")
    assert requests(stats, "POST", "/v2/companies") == 0, "retried in bulk, not one by one"
    assert stats["by_method"].get("PATCH", 0) == 0, "e-mail and phone rode in the items"
    assert_accounted(p)
