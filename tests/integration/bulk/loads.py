"""What the bulk-path integration tests share: the flow, seeding, counting requests."""

from __future__ import annotations

import time
from typing import Any

import httpx

from adapters.propeller import PropellerClient, PropellerCompanyInput
from bench.stack import Pipeline
from bench.verify import compare_hipe, compare_propeller, erp_customers

#: the bulk-capable targets (Atollon has no bulk endpoint; issue 4's tests cover it)
BULK_TARGETS = ("propeller", "hipe")
FLOWS: dict[str, Any] = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(BULK_TARGETS),
        "mapping": {"propeller": {}, "hipe": {}},
    }
}
BATCH_SIZE = 200  # PropellerSettings.bulk_batch_size's default


def seed(p: Pipeline, customers: int) -> None:
    with p.control("onlineerp") as client:
        client.post("/_sandbox/seed", json={"customers": customers}).raise_for_status()


def put_in_recycle_bin(p: Pipeline, key: str) -> None:
    """Propeller holds a company with this sourceId in its recycle bin: a bulk call refuses
    that item alone (40008, permanent) and applies the rest."""
    settings = p.settings.systems.propeller
    assert settings is not None
    with httpx.Client(base_url=settings.base_url, timeout=30) as http:
        client = PropellerClient(http, settings)
        client.create_company(
            PropellerCompanyInput.model_validate(
                {"source_id": key, "source": settings.source, "language": settings.language,
                 "name": "Old"}
            )
        )  # fmt: skip
        client.delete_company(key)


def clear_stats(p: Pipeline) -> None:
    for system in BULK_TARGETS:
        with p.control(system) as client:
            client.delete("/_sandbox/stats").raise_for_status()


def requests(stats: dict[str, Any], method: str, route: str) -> int:
    """Successful requests to exactly this route template."""
    return sum(
        row["count"]
        for row in stats["requests"]
        if row["method"] == method
        and row["route"] == route
        and str(row["status"]).isdigit()
        and int(row["status"]) < 400
    )


def assert_accounted(p: Pipeline, flow: str = "customers") -> None:
    """applied + skipped + dead-lettered = produced, per target and per flow at each target."""
    for target in BULK_TARGETS:
        for counters in (p.counters(target), p.flow_counters(flow, target)):
            outcomes = (
                counters.get("applied", 0)
                + counters.get("skipped", 0)
                + counters.get("dead_lettered", 0)
            )
            assert outcomes == counters["produced"], (target, counters)


def assert_equal_to_source(p: Pipeline) -> None:
    source = erp_customers(p)
    comparisons = [compare_propeller(p, source), compare_hipe(p, source)]
    assert all(c.equal for c in comparisons), "\n".join(str(c) for c in comparisons)


def wait_idle(p: Pipeline, timeout_s: float = 60.0) -> None:
    """Until the target queues, kombu's unacked messages and the delayed set are empty."""
    keys = [f"{p.prefix}:sync.{t}" for t in BULK_TARGETS]
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        busy = (
            sum(int(p.redis.llen(k)) for k in keys)
            + int(p.redis.hlen(f"{p.prefix}:unacked"))
            + int(p.redis.zcard(p.keys.delayed()))
            + int(p.redis.zcard(p.keys.delayed_claimed()))
        )
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the workers did not go idle in {timeout_s} s\n{p.worker_logs()}")
