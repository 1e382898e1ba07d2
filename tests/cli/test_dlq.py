"""``erpsync dlq …`` and ``erpsync target …`` as an operator types them, on a real Redis.

Each test has a key prefix of its own (on the suite's Redis, embedded unless
``ERPSYNC_TEST_REDIS_URL`` names one); dead letters are written as the engine writes them.
No worker runs here: replays are checked on the target's queue (the Redis list), and the
end-to-end replay lives in tests/integration/operations.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import tomli_w
from typer.testing import CliRunner, Result

from cli.app import app
from erpsync.errors import PermanentError
from erpsync.events import Delivery
from state.broker import queue_keys
from state.dlq import DeadLetter, DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import State
from tests.support import customer_event


@dataclass
class Installation:
    """A config file and the Redis state behind it."""

    config: Path
    keys: Keys
    redis: redis.Redis
    store: DeadLetterStore
    state: State

    def cli(self, *args: str, input_text: str | None = None) -> Result:
        return CliRunner().invoke(app, ["--config", str(self.config), *args], input=input_text)

    def dead_letter(
        self, key: str, *, code: str = "40005", target: str = "propeller", version: int = 1
    ) -> DeadLetter:
        event = customer_event(key, f"Company {key}", version, active=True)
        delivery = Delivery(event=event, target=target, attempt=1)
        self.state.mark_produced(target, delivery.delivery_id, flow="customers")
        self.state.set_latest("onlineerp", "customer", {key: version})
        error = PermanentError(
            "several companies match",
            system=target,
            operation="create company",
            vendor_code=code,
            status_code=400,
            hint="remove the duplicate, then replay",
        )
        entry = self.store.get(self.store.add(delivery, error))
        self.state.record_outcome(
            target, delivery.delivery_id, "dead_lettered", also=("customers.dead_lettered",)
        )
        assert entry is not None
        return entry


def make_installation(directory: Path, client: redis.Redis, url: str) -> Installation:
    prefix = f"cli{uuid.uuid4().hex[:10]}"
    local = "http://127.0.0.1:9"
    config = directory / f"{prefix}.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "redis_url": url,
                "key_prefix": prefix,
                "systems": {
                    "onlineerp": {"base_url": local, "licence_code": "L", "secret": "s3cr3t-x"},
                    "propeller": {"base_url": local, "client_id": "c", "client_secret": "s"},
                    "hipe": {"base_url": local, "access_token": "t"},
                },
                "flows": {
                    "customers": {
                        "source": "onlineerp",
                        "entity": "customer",
                        "targets": ["propeller", "hipe"],
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    keys = Keys(prefix)
    return Installation(config, keys, client, DeadLetterStore(client, keys), State(client, keys))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def installations(
    tmp_path: Path, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Installation]]:
    for name in list(os.environ):
        if name.startswith("ERPSYNC_") and not name.startswith("ERPSYNC_TEST_"):
            monkeypatch.delenv(name)
    made: list[Installation] = []
    yield made
    for inst in made:
        for key in client.scan_iter(match=f"{inst.keys.prefix}:*", count=1000):
            client.delete(key)


@pytest.fixture
def inst(
    tmp_path: Path, client: redis.Redis, redis_url: str, installations: list[Installation]
) -> Installation:
    made = make_installation(tmp_path, client, redis_url)
    installations.append(made)
    return made


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_filters_and_prints_a_table_or_json(inst: Installation) -> None:
    a = inst.dead_letter("C1", code="40005")
    b = inst.dead_letter("C2", code="10007")
    c = inst.dead_letter("C3", code="http-400", target="hipe")

    rows = as_json(inst.cli("dlq", "list", "--json"))
    assert {r["id"] for r in rows} == {a.id, b.id, c.id}
    assert {r["id"] for r in as_json(inst.cli("dlq", "list", "--code", "40005", "--json"))} == {
        a.id
    }
    assert {
        r["id"] for r in as_json(inst.cli("dlq", "list", "--target", "propeller", "--json"))
    } == {a.id, b.id}
    assert {r["id"] for r in as_json(inst.cli("dlq", "list", "--key", "C[23]", "--json"))} == {
        b.id,
        c.id,
    }
    assert as_json(inst.cli("dlq", "list", "--older-than", "1h", "--json")) == []
    assert len(as_json(inst.cli("dlq", "list", "--older-than", "0s", "--json"))) == 3
    row = rows[0]
    assert row["hint"] == "remove the duplicate, then replay"
    assert row["delivery"]["event"]["key"] == row["key"]

    table = inst.cli("dlq", "list", "--flow", "customers", "--entity", "customer")
    assert table.exit_code == 0
    assert "dead letters: 3" in table.stdout
    assert a.id in table.stdout

    bad = inst.cli("dlq", "list", "--older-than", "3 days")
    assert bad.exit_code == 2
    assert "invalid duration '3 days'" in bad.output
    assert "30s, 15m, 2h, 3d" in bad.output


def test_show_prints_everything_and_says_when_an_id_is_unknown(inst: Installation) -> None:
    entry = inst.dead_letter("C1")
    data = as_json(inst.cli("dlq", "show", entry.id, "--json"))
    assert data["id"] == entry.id
    assert data["code"] == "40005"
    assert data["delivery"]["event"]["payload"]["name"] == "Company C1"
    human = inst.cli("dlq", "show", entry.id)
    assert human.exit_code == 0
    assert "remove the duplicate, then replay" in human.stdout
    assert "Company C1" in human.stdout
    missing = inst.cli("dlq", "show", "feedbeef0000")
    assert missing.exit_code == 1
    assert "feedbeef0000: not found" in missing.output


def test_edit_with_set_validates_before_storing(inst: Installation) -> None:
    entry = inst.dead_letter("C1")
    refused = inst.cli("dlq", "edit", entry.id, "--set", "name=", "--set", "colour=blue")
    assert refused.exit_code == 1
    assert "nothing stored" in refused.output
    assert "name: String should have at least 1 character" in refused.output
    assert "colour: Extra inputs are not permitted" in refused.output
    assert inst.store.get(entry.id) == entry

    stored = as_json(
        inst.cli(
            "dlq",
            "edit",
            entry.id,
            "--set",
            "name=Fixed Inc",
            "--set",
            "address.city=Laval",
            "--actor",
            "ops-bot",
            "--json",
        )
    )
    assert stored["changed"] == ["address", "name"]
    event = inst.store.get(entry.id).delivery.event  # type: ignore[union-attr]
    assert event.payload["name"] == "Fixed Inc"
    assert event.payload["address"]["city"] == "Laval"
    assert event.source_version == entry.delivery.event.source_version
    assert event.event_id != entry.delivery.event.event_id
    audit = as_json(inst.cli("dlq", "audit", "--json"))
    assert (audit[0]["who"], audit[0]["action"], audit[0]["count"]) == ("ops-bot", "edit", 1)


def test_edit_opens_the_editor_on_the_payload(
    inst: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = inst.dead_letter("C1")
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "path = sys.argv[1]\n"
        "data = json.load(open(path, encoding='utf-8'))\n"
        "data['name'] = 'Edited in an editor'\n"
        "json.dump(data, open(path, 'w', encoding='utf-8'))\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("EDITOR", f'"{sys.executable}" "{editor}"')
    monkeypatch.delenv("VISUAL", raising=False)
    result = inst.cli("dlq", "edit", entry.id)
    assert result.exit_code == 0, result.output
    assert f"replay it with: erpsync dlq replay {entry.id}" in result.stdout
    payload = inst.store.get(entry.id).delivery.event.payload  # type: ignore[union-attr]
    assert payload["name"] == "Edited in an editor"

    editor.write_text(
        'import sys\nopen(sys.argv[1], \'w\').write(\'{"key": "C1", "name": ""}\')\n',
        encoding="utf-8",
    )
    refused = inst.cli("dlq", "edit", entry.id)
    assert refused.exit_code == 1
    assert "name: String should have at least 1 character" in refused.output
    unchanged = inst.store.get(entry.id).delivery.event.payload  # type: ignore[union-attr]
    assert unchanged["name"] == "Edited in an editor"


def test_replay_dry_run_replay_and_a_second_replay(inst: Installation) -> None:
    fresh = inst.dead_letter("C1")
    old = inst.dead_letter("C2", version=2)
    other = inst.dead_letter("C3", code="10007")
    inst.state.set_latest("onlineerp", "customer", {"C2": 9})
    queue = queue_keys(inst.keys, "propeller")[0]

    none = inst.cli("dlq", "replay")
    assert none.exit_code == 2
    assert "IDs, a filter" in none.output

    dry = as_json(inst.cli("dlq", "replay", "--code", "40005", "--dry-run", "--json"))
    verdicts = {e["id"]: e["verdict"] for e in dry["entries"]}
    assert verdicts == {fresh.id: "replay", old.id: "superseded"}
    assert inst.redis.llen(queue) == 0, "a dry run publishes nothing"
    human_dry = inst.cli("dlq", "replay", "--code", "40005", "--dry-run")
    assert "would replay 1, skip 1 superseded" in human_dry.stdout

    done = inst.cli("dlq", "replay", "--code", "40005", "--actor", "alice")
    assert done.exit_code == 0, done.output
    assert "replayed 1" in done.stdout
    assert f"skipped 1 superseded by a newer change of the same record: {old.id}" in done.stdout
    assert inst.redis.llen(queue) == 1, "one message on the target's queue"
    assert inst.store.get(old.id) is None
    assert inst.store.get(other.id) is not None, "not selected"

    again = inst.cli("dlq", "replay", old.id, "--json")
    assert again.exit_code == 1
    (missing,) = json.loads(again.stdout)["missing"]
    assert missing["reason"].startswith("already resolved (skipped: superseded) by alice")
    assert inst.redis.llen(queue) == 1, "nothing more published"

    audit = as_json(inst.cli("dlq", "audit", "--json"))
    replay_row = next(r for r in audit if r["action"] == "replay")
    assert (replay_row["who"], replay_row["count"]) == ("alice", 1)
    assert replay_row["details"]["criteria"] == {"codes": ["40005"]}


def test_drop_by_id_and_by_filter(inst: Installation) -> None:
    a = inst.dead_letter("C1")
    inst.dead_letter("C2", code="10007")
    inst.dead_letter("C3", code="10007")
    assert as_json(inst.cli("dlq", "drop", a.id, "--json"))["dropped"] == 1
    aborted = inst.cli("dlq", "drop", "--code", "10007", input_text="n\n")
    assert aborted.exit_code != 0
    assert inst.store.count() == 2, "nothing dropped without confirmation"
    result = inst.cli("dlq", "drop", "--code", "10007", "--yes")
    assert result.exit_code == 0
    assert "dropped 2" in result.stdout
    assert inst.store.count() == 0
    gone = inst.cli("dlq", "drop", a.id)
    assert gone.exit_code == 1
    assert "dropped by" in gone.stdout


def test_export_then_import_elsewhere_and_a_bad_file_imports_nothing(
    inst: Installation,
    tmp_path: Path,
    client: redis.Redis,
    redis_url: str,
    installations: list[Installation],
) -> None:
    entries = [inst.dead_letter(f"C{i}") for i in range(3)]
    exported = inst.cli("dlq", "export")
    assert exported.exit_code == 0
    lines = exported.stdout.splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(e.id for e in entries)
    path = tmp_path / "dlq.jsonl"
    assert inst.cli("dlq", "export", "--output", str(path), "--code", "40005").exit_code == 0
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3

    elsewhere = make_installation(tmp_path, client, redis_url)
    installations.append(elsewhere)
    bad = tmp_path / "bad.jsonl"
    broken = json.loads(lines[1])
    broken["attempts"] = "many"
    bad.write_text("\n".join([lines[0], json.dumps(broken), "{oops"]) + "\n", encoding="utf-8")
    refused = elsewhere.cli("dlq", "import", str(bad))
    assert refused.exit_code == 1
    assert "2 invalid line(s): 2, 3; nothing imported" in refused.output
    assert "line 2: attempts" in refused.output
    assert elsewhere.store.count() == 0

    imported = as_json(elsewhere.cli("dlq", "import", str(path), "--json"))
    assert imported == {"imported": 3, "added": 3, "replaced": 0}
    assert sorted(e.id for e in elsewhere.store.iter_entries()) == sorted(e.id for e in entries)
    actions = [r["action"] for r in as_json(elsewhere.cli("dlq", "audit", "--json"))]
    assert actions == ["import"]
    assert "export" in [r["action"] for r in as_json(inst.cli("dlq", "audit", "--json"))]


def test_target_pause_resume_and_list(inst: Installation) -> None:
    paused = inst.cli("target", "pause", "hipe", "--actor", "carol")
    assert paused.exit_code == 0, paused.output
    circuit = Circuit(inst.redis, inst.keys)
    assert circuit.status("hipe").state == "paused"
    rows = {r["name"]: r for r in as_json(inst.cli("target", "list", "--json"))}
    assert rows["hipe"]["state"] == "paused"
    assert rows["hipe"]["reason"] == "paused by carol"
    assert rows["propeller"]["state"] == "closed"
    assert "paused" in inst.cli("target", "list").stdout

    assert inst.cli("target", "resume", "hipe", "--actor", "carol").exit_code == 0
    assert circuit.status("hipe").state == "closed"
    audit = as_json(inst.cli("dlq", "audit", "--json"))
    assert [(r["who"], r["action"], r["details"]) for r in audit[:2]] == [
        ("carol", "target.resume", {"target": "hipe"}),
        ("carol", "target.pause", {"target": "hipe"}),
    ]
    unknown = inst.cli("target", "pause", "nosuch")
    assert unknown.exit_code == 2
    assert "unknown target 'nosuch'" in unknown.output
