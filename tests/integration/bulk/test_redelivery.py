"""Issue #9, must hold: batch messages delivered twice, or cut short by a killed worker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench.stack import Pipeline
from bench.verify import contact_patches, erp_customers
from tests.integration.bulk.loads import (
    BULK_TARGETS,
    FLOWS,
    assert_accounted,
    assert_equal_to_source,
    clear_stats,
    requests,
    seed,
    wait_idle,
)

pytestmark = pytest.mark.integration


def queue_key(p: Pipeline, target: str) -> str:
    """kombu's list of a target's queue (the broker keys share the installation's prefix)."""
    return f"{p.prefix}:sync.{target}"


def test_a_batch_message_delivered_twice_changes_nothing(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed(p, 700)
    (result,) = p.produce()  # no worker yet: the messages wait on their queues
    assert result.batches >= 2
    messages = {t: p.redis.lrange(queue_key(p, t), 0, -1) for t in BULK_TARGETS}
    assert all(messages.values()), "the load was queued in batch messages"
    for target, raw in messages.items():  # every batch message is in the queue twice
        p.redis.lpush(queue_key(p, target), *raw)
    p.start_worker()
    p.wait_workers(1)
    p.wait_converged(timeout_s=240, targets=BULK_TARGETS)
    wait_idle(p)

    assert_equal_to_source(p)  # one record per key
    for target in BULK_TARGETS:
        counters = p.flow_counters("customers", target)
        assert (counters["produced"], counters["applied"]) == (700, 700), (target, counters)
    propeller, hipe = p.stats("propeller"), p.stats("hipe")
    assert requests(propeller, "POST", "/v2/companies") == 0, "no record went single"
    # E-mail and phone ride in the bulk items (the default against the default sandbox).
    assert propeller["by_method"].get("PATCH", 0) == 0, "no single write"
    assert contact_patches(erp_customers(p)) > 600, "though nearly every customer has one"
    assert requests(hipe, "POST", "/api/companies") == 0
    assert_accounted(p)

    # Delivered again once everything is applied: no write at all.
    before = {t: p.counters(t) for t in BULK_TARGETS}
    clear_stats(p)
    for target, raw in messages.items():
        p.redis.lpush(queue_key(p, target), *raw)
    wait_idle(p)
    for target in BULK_TARGETS:
        assert p.stats(target)["writes"] == 0, f"a duplicate batch wrote to {target}"
        assert p.counters(target) == before[target]
    assert_accounted(p)


def test_a_worker_killed_during_a_bulk_load_loses_and_duplicates_nothing(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    seed(p, 1500)
    first = p.start_worker()
    p.start_worker()
    p.wait_workers(2)
    p.produce()

    def applied() -> int:  # the whole load's: Propeller alone may finish in a few bulk calls
        return sum(p.counters(t).get("applied", 0) for t in BULK_TARGETS)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and applied() < 200:
        time.sleep(0.05)
    assert applied() < 1500 * len(BULK_TARGETS), "killed before the end of the load"
    p.kill_worker(first)  # SIGKILL, with batches (and maybe an import) in hand
    p.start_worker()
    p.wait_workers(1)

    p.wait_converged(timeout_s=300, targets=BULK_TARGETS)
    assert_equal_to_source(p)  # nothing lost, one record per key in each target
    for target in BULK_TARGETS:
        counters = p.flow_counters("customers", target)
        assert (counters["produced"], counters["applied"]) == (1500, 1500), (target, counters)
    assert_accounted(p)
