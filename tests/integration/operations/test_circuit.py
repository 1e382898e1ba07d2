"""Issue #5, must hold: a wrong Propeller secret opens its circuit instead of flooding the DLQ."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import tomli_w

from bench.stack import Pipeline
from bench.verify import compare_propeller, erp_customers
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit

pytestmark = pytest.mark.integration

CUSTOMERS = 120


def token_requests(p: Pipeline) -> int:
    stats = p.stats("propeller")
    return sum(r["count"] for r in stats["requests"] if r["route"] == "/oauth2/token")


def test_wrong_secret_opens_the_circuit_others_sync_and_the_fix_delivers_without_replay(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(systems={"propeller": {"client_secret": "wrong-secret-123"}})
    with p.control("onlineerp") as client:
        client.post("/_sandbox/seed", json={"customers": CUSTOMERS}).raise_for_status()
    worker = p.start_worker()
    p.wait_workers(1)
    p.produce()

    # The others keep syncing while Propeller's deliveries wait behind its circuit.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and any(
        p.flow_counters("customers", t).get("applied", 0) < CUSTOMERS for t in ("hipe", "atollon")
    ):
        time.sleep(0.5)
    for target in ("hipe", "atollon"):
        assert p.flow_counters("customers", target)["applied"] == CUSTOMERS

    circuit = Circuit(p.redis, Keys(p.prefix))
    assert circuit.status("propeller").state in {"open", "half_open"}
    dead = [
        e
        for e in DeadLetterStore(p.redis, Keys(p.prefix)).iter_entries()
        if e.target == "propeller"
    ]
    assert len(dead) < 5, f"{len(dead)} dead letters: the circuit should hold the queue"
    attempts = token_requests(p)
    time.sleep(3)
    assert token_requests(p) - attempts <= 3, "while open, only the probe knocks"
    assert p.flow_counters("customers", "propeller").get("applied", 0) == 0

    # The operator fixes the secret and restarts the worker: everything arrives, no replay.
    p.config["systems"]["propeller"]["client_secret"] = "sandbox-secret"
    p.config_path.write_text(tomli_w.dumps(p.config), encoding="utf-8")
    p.kill_worker(worker, sig=15)
    p.start_worker()
    p.wait_workers(1)
    p.wait_converged(timeout_s=180)
    assert compare_propeller(p, erp_customers(p)).equal
    assert circuit.status("propeller").state == "closed"
    counters = p.flow_counters("customers", "propeller")
    assert counters.get("applied", 0) + counters.get("dead_lettered", 0) == CUSTOMERS
    assert counters.get("dead_lettered", 0) < 5
