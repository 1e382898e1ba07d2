"""Issue 19: ``erpsync adopt link KEY TARGET_ID`` takes any target record without an external
id of ours, not only the record's candidates, and refuses, with a clear error and nothing
changed, an id the target does not have or one that carries another record's id of ours.

Real worker, Redis and the sandbox over HTTP: 20 customers, one customer matching two
hand-made records (K), one hand-made record matching two customers (A and B), in Propeller,
HIPE and Atollon. After the first run holds K, A and B, the operator links A to one of K's
records (no candidate of A's), K to its other one, and lets B be created.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from bench.stack import TARGETS, Pipeline
from cli.app import app
from simulators.handmade import HandmadeRequest, generate
from state.adoption import REVIEW_CODE, AdoptionTable
from state.dlq import DeadLetterStore
from tests.integration.operations.test_going_live import decide, our_keys

pytestmark = pytest.mark.integration

REQUEST = HandmadeRequest(customers=20, matches=0, ambiguous=2)
FLOWS = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": list(TARGETS),
        "match": ["tax_number", "email", "name"],
    }
}


def refused(p: Pipeline, *args: str) -> str:
    """``erpsync adopt link ARGS`` refused: exit status 2; its message on one line."""
    env = {"ERPSYNC_CONFIG": str(p.config_path)}
    done = CliRunner().invoke(app, ["adopt", "link", *args, "--actor", "it-operator"], env=env)
    assert done.exit_code == 2, done.output
    return " ".join(done.output.split())


def test_link_takes_any_record_without_our_id_and_refuses_the_others(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline(flows=FLOWS)
    made = generate(REQUEST)
    [k1, k2] = [m for m in made if m.kind == "two_targets"]
    [shared] = [m for m in made if m.kind == "two_sources"]
    key_k, (key_a, key_b) = k1.keys[0], shared.keys
    with p.control("onlineerp") as erp:
        erp.post("/_sandbox/seed", json={"customers": REQUEST.customers}).raise_for_status()
    ids: dict[str, list[str]] = {}
    for target in TARGETS:
        with p.control(target) as control:
            control.post("/_sandbox/handmade", json=REQUEST.model_dump()).raise_for_status()
        ids[target] = list(our_keys(p, target))
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(timeout_s=120)
    held = DeadLetterStore(p.redis, p.keys).counts_by_target_code()
    assert held == {t: {REVIEW_CODE: 3} for t in TARGETS}

    table = AdoptionTable(p.redis, p.keys)
    for target in TARGETS:
        before = table.get("customers", target, key_a)
        made_by_us = {keys[0]: i for i, keys in our_keys(p, target).items() if keys}
        other = next(k for k in made_by_us if k not in (key_k, key_a, key_b))
        message = refused(p, key_a, "987654321", "--target", target)
        assert f"erpsync adopt: {target} has no record 987654321" in message
        message = refused(p, key_a, made_by_us[other], "--target", target)
        assert (f"erpsync adopt: {target} record {made_by_us[other]} belongs to {other} "
                "already (it carries that external id of ours)") in message  # fmt: skip
        assert table.get("customers", target, key_a) == before, "a refusal changes nothing"

        done = decide(p, "link", key_a, ids[target][k1.index], "--target", target)
        assert (done["decision"], done["rule"], done["replayed"]) == ("adopt", "operator", 1)
        decide(p, "link", key_k, ids[target][k2.index], "--target", target)
        decide(p, "create", key_b, "--target", target)
    p.wait_converged(timeout_s=120)

    assert DeadLetterStore(p.redis, p.keys).counts_by_target_code() == {}
    for target in TARGETS:
        carried = our_keys(p, target)
        assert carried[ids[target][k1.index]] == [key_a], target
        assert carried[ids[target][k2.index]] == [key_k], target
        assert carried[ids[target][shared.index]] == [], target  # adopted by nobody
        every = [k for keys in carried.values() for k in keys]
        assert sorted(every) == sorted(set(every)), f"a duplicate in {target}"
        assert key_b in every, target
