"""``erpsync trace KEY``: an operator's replay, edit and drop in the record's story."""

from __future__ import annotations

import json

from state.trace import TraceStore
from tests.cli.test_dlq import Installation

pytest_plugins = ["tests.cli.test_dlq"]  # its fixtures: inst, installations, client


def test_trace_tells_replays_and_drops_by_actor_per_target(inst: Installation) -> None:
    fresh = inst.dead_letter("C1")
    old = inst.dead_letter("C1", target="hipe", version=1)
    inst.state.set_latest("onlineerp", "customer", {"C1": 1})
    TraceStore(inst.redis, inst.keys).write(
        [("customers", "C1", {"at": 1.0, "what": "sent", "target": "propeller", "path": "single"})]
    )
    assert inst.cli("dlq", "replay", fresh.id, "--actor", "alice").exit_code == 0
    assert inst.cli("dlq", "drop", old.id, "--yes", "--actor", "bob").exit_code == 0

    found = inst.cli("trace", "C1", "--json")
    assert found.exit_code == 0, found.output
    events = json.loads(found.stdout)
    assert [(e["what"], e.get("target"), e.get("actor")) for e in events] == [
        ("sent", "propeller", None),
        ("replayed", "propeller", "alice"),
        ("dropped", "hipe", "bob"),
    ]
    assert events[1]["dlq_id"] == fresh.id
    assert events[1]["flow"] == "customers"
    assert events[1]["text"] == f"replayed by alice (entry {fresh.id})"

    human = inst.cli("trace", "C1", "--flow", "customers")
    assert human.exit_code == 0, human.output
    assert "C1 → hipe" in human.stdout
    assert "C1 → propeller" in human.stdout
    assert human.stdout.index("delivery sent") < human.stdout.index("replayed by alice")

    unknown = inst.cli("trace", "C1", "--flow", "nope")
    assert unknown.exit_code == 2
    assert "no flow 'nope'" in unknown.output
    nothing = inst.cli("trace", "C999")
    assert nothing.exit_code == 1
    assert "no trace of 'C999'" in nothing.output
