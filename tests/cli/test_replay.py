"""Dead-letter operations (cli.services.replay) on fakeredis: selection, replay, edit, import."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import fakeredis
import pytest

from cli.services.replay import (
    DeadLetterFilter,
    DlqOperator,
    DurationError,
    EditError,
    ImportFileError,
    parse_duration,
    parse_import,
)
from delivery.engine import ApplyContext, ApplyResult, Engine, Sink
from delivery.policy import RetryPolicy
from erpsync.errors import PermanentError
from erpsync.events import ChangeEvent, Delivery
from state.dlq import DeadLetter, DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.store import State

NOW = 2_000_000_000.0


@dataclass
class Published:
    """A publisher that keeps what it was given (the queue, for these tests)."""

    deliveries: list[Delivery] = field(default_factory=list)
    fail: bool = False

    def __call__(self, deliveries: Sequence[Delivery]) -> int:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.deliveries.extend(d.model_copy(deep=True) for d in deliveries)
        return len(deliveries)


@dataclass
class MemorySink:
    """Applies customers to an in-memory target."""

    target: str = "propeller"
    applied: list[tuple[str, str]] = field(default_factory=list)

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        self.applied.append((event.key, event.fingerprint))
        return ApplyResult("created", target_id=f"id-{event.key}")


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def keys() -> Keys:
    return Keys("t")


@pytest.fixture
def store(client: fakeredis.FakeRedis, keys: Keys) -> DeadLetterStore:
    return DeadLetterStore(client, keys)


@pytest.fixture
def state(client: fakeredis.FakeRedis, keys: Keys) -> State:
    return State(client, keys)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def operator(store: DeadLetterStore, state: State, published: Published) -> DlqOperator:
    return DlqOperator(store, state, actor="alice", publish=published, clock=lambda: NOW)


def company(key: str, name: str = "Acme", **extra: object) -> dict[str, object]:
    return {
        "key": key,
        "name": name,
        "parent_key": None,
        "email": None,
        "phone": None,
        "tax_number": None,
        "language": "FR",
        "active": True,
        "address": {
            "line1": "1 rue A",
            "city": "Laval",
            "region": "QC",
            "postal_code": None,
            "country": "CA",
        },
        "custom": {},
        **extra,
    }


def dead_letter(
    store: DeadLetterStore,
    state: State,
    key: str,
    *,
    target: str = "propeller",
    code: str = "40005",
    flow: str = "customers",
    entity: str = "customer",
    version: int = 1,
    age_s: float = 60.0,
    payload: dict[str, object] | None = None,
    operation: str = "upsert",
) -> DeadLetter:
    """Dead-letter a delivery as the engine does (produced, then counted dead-lettered)."""
    event = ChangeEvent.create(
        flow=flow,
        source="onlineerp",
        entity=entity,
        key=key,
        operation=operation,  # type: ignore[arg-type]
        payload=payload if payload is not None else company(key),
        source_version=version,
    )
    delivery = Delivery(event=event, target=target, attempt=1)
    state.mark_produced(target, delivery.delivery_id, flow=flow)
    state.set_latest("onlineerp", entity, {key: version})
    error = PermanentError(
        "Propeller said: several companies match",
        system=target,
        operation="create company",
        vendor_code=code,
        status_code=400,
        hint="remove the duplicate, then replay",
    )
    entry_id = store.add(delivery, error, now=NOW - age_s)
    state.record_outcome(
        target, delivery.delivery_id, "dead_lettered", also=(f"{flow}.dead_lettered",)
    )
    entry = store.get(entry_id)
    assert entry is not None
    return entry


def balanced(state: State, target: str = "propeller", flow: str = "customers") -> bool:
    """produced = applied + skipped + dead_lettered, for the target and for the flow in it."""
    c = state.counters(target)
    return all(
        c.get(f"{p}produced", 0)
        == sum(c.get(f"{p}{o}", 0) for o in ("applied", "skipped", "dead_lettered"))
        for p in ("", f"{flow}.")
    )


# -- durations ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("3d", 259200),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 2H ", 7200),
        ("0s", 0),
    ],
)
def test_durations_are_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "5x", "-5m", "h", "2h and", "m30", "1h 2"])
def test_a_bad_duration_is_a_clear_error(text: str) -> None:
    with pytest.raises(DurationError, match=r"invalid duration .*e\.g\. 30s, 15m, 2h, 3d"):
        parse_duration(text)


# -- filters ------------------------------------------------------------------------------
def test_filters_select_by_target_code_flow_entity_key_and_age(
    operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    a = dead_letter(store, state, "C1", code="40005", age_s=3 * 3600)
    b = dead_letter(store, state, "C2", code="10007", age_s=60)
    c = dead_letter(store, state, "C3", target="hipe", code="http-400", age_s=2 * 86400)
    d = dead_letter(
        store,
        state,
        "P1",
        flow="products",
        entity="product",
        target="atollon",
        code="FAIL",
        payload={"key": "P1", "name": "Box"},
    )

    def ids(**kwargs: object) -> set[str]:
        return {e.id for e in operator.select(DeadLetterFilter(**kwargs))}  # type: ignore[arg-type]

    assert ids() == {a.id, b.id, c.id, d.id}
    assert ids(targets=("propeller",)) == {a.id, b.id}
    assert ids(codes=("40005", "FAIL")) == {a.id, d.id}
    assert ids(flows=("products",)) == {d.id}
    assert ids(entities=("customer",)) == {a.id, b.id, c.id}
    assert ids(keys=("C*",)) == {a.id, b.id, c.id}
    assert ids(keys=("C2",)) == {b.id}
    assert ids(older_than_s=parse_duration("2h")) == {a.id, c.id}
    assert ids(older_than_s=parse_duration("1d"), targets=("propeller",)) == set()
    assert ids(targets=("propeller",), codes=("10007",)) == {b.id}
    assert DeadLetterFilter().empty
    assert DeadLetterFilter(codes=("40005",)).as_dict() == {"codes": ["40005"]}


# -- replay -------------------------------------------------------------------------------
def test_replay_publishes_with_replay_of_and_skips_superseded_entries(
    operator: DlqOperator, store: DeadLetterStore, state: State, published: Published
) -> None:
    fresh = dead_letter(store, state, "C1")
    old = dead_letter(store, state, "C2", version=3)
    state.set_latest("onlineerp", "customer", {"C2": 7})  # a newer change of C2 was produced

    plan = operator.plan(operator.select(DeadLetterFilter(codes=("40005",))))
    assert [p.entry.id for p in plan.to_replay] == [fresh.id]
    (superseded,) = plan.superseded
    assert (superseded.entry.id, superseded.latest_version) == (old.id, 7)
    assert published.deliveries == [], "planning changes nothing"
    assert store.count() == 2

    report = operator.replay(plan, criteria={"codes": ["40005"]})
    assert [e.id for e in report.replayed] == [fresh.id]
    assert [p.entry.id for p in report.superseded] == [old.id]
    (sent,) = published.deliveries
    assert sent.replay_of == fresh.id
    assert sent.attempt == 0, "a replay gets a fresh retry budget"
    assert sent.event == fresh.delivery.event
    assert store.get(old.id) is None, "a superseded entry is resolved, not replayed"
    assert store.get(fresh.id) is not None, "the replayed entry stays until its outcome"
    assert store.get(fresh.id).replays == 1  # type: ignore[union-attr]
    counters = state.counters("propeller")
    assert counters["skipped"] == 1
    assert counters["skipped_superseded"] == 1
    assert counters["customers.skipped_superseded"] == 1
    assert counters["dead_lettered"] == 0, "the replayed one is in flight again, uncounted"
    assert counters["customers.dead_lettered"] == 0
    assert counters["produced"] == counters["skipped"] + 1, "one is out for its outcome"
    (row, *_) = store.audit_log()
    assert (row["who"], row["action"], row["count"]) == ("alice", "replay", 1)
    assert row["details"]["superseded_ids"] == [old.id]
    assert row["details"]["criteria"] == {"codes": ["40005"]}
    assert "superseded" in operator.explain_missing(old.id)


def engine_for(store: DeadLetterStore, state: State, sink: MemorySink) -> Engine:
    sinks: Mapping[str, Sink] = {"propeller": sink}
    return Engine(
        state=state,
        circuit=Circuit(state.redis, state.keys),
        dlq=store,
        sinks=lambda: sinks,
        policy=RetryPolicy(),
        rng=random.Random(1),
    )


def test_replaying_one_entry_twice_applies_it_once_and_keeps_the_accounting(
    operator: DlqOperator, store: DeadLetterStore, state: State, published: Published
) -> None:
    entry = dead_letter(store, state, "C1")
    sink = MemorySink()
    engine = engine_for(store, state, sink)

    # Two replays before any worker ran: two messages for one entry.
    operator.replay(operator.plan([entry]))
    operator.replay(operator.plan([store.get(entry.id)]))  # type: ignore[list-item]
    assert len(published.deliveries) == 2
    results = [engine.process(d) for d in published.deliveries]

    assert results == ["applied", "skipped"]
    assert sink.applied == [("C1", entry.delivery.event.fingerprint)], "applied once"
    assert store.get(entry.id) is None
    counters = state.counters("propeller")
    assert (counters["produced"], counters["applied"], counters.get("dead_lettered")) == (1, 1, 0)
    assert balanced(state)

    # A third replay finds nothing and says why.
    found, missing = operator.get_many([entry.id])
    assert found == []
    assert missing[0].reason.startswith("already resolved (applied)")
    outcomes = operator.outcomes([entry])
    assert outcomes.applied == [entry.id]


def test_a_failed_publish_leaves_the_dead_letter_counted(
    store: DeadLetterStore, state: State
) -> None:
    entry = dead_letter(store, state, "C1")
    failing = DlqOperator(store, state, actor="bob", publish=Published(fail=True))
    with pytest.raises(ConnectionError):
        failing.replay(failing.plan([entry]))
    assert store.get(entry.id) is not None
    assert state.counters("propeller")["dead_lettered"] == 1
    assert balanced(state)


def test_an_entry_that_fails_again_is_reported_so(
    operator: DlqOperator, store: DeadLetterStore, state: State, published: Published
) -> None:
    entry = dead_letter(store, state, "C1")
    report = operator.replay(operator.plan([entry]))
    assert operator.outcomes(report.replayed).pending == [entry.id]
    (delivery,) = published.deliveries
    store.add(
        delivery,
        PermanentError("again", system="propeller", operation="create", vendor_code="40005"),
        now=NOW,
    )
    assert operator.outcomes(report.replayed).failed_again == [entry.id]


# -- edit ---------------------------------------------------------------------------------
def test_edit_with_sets_validates_recomputes_the_event_and_moves_the_outcome(
    operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    entry = dead_letter(store, state, "C1", version=4)
    old_event = entry.delivery.event
    result = operator.edit(
        entry.id,
        sets=["name=Acme & Fils", "address.city=Montréal", "phone=5145550000", "active=false"],
    )
    assert result is not None
    assert result.changed == ["active", "address.city", "name", "phone"]
    stored = store.get(entry.id)
    assert stored is not None
    event = stored.delivery.event
    assert event.payload["name"] == "Acme & Fils"
    assert event.payload["address"]["city"] == "Montréal"
    assert event.payload["phone"] == "5145550000", "a number where text is wanted stays text"
    assert event.payload["active"] is False
    assert event.source_version == 4, "the source version is kept"
    assert event.fingerprint != old_event.fingerprint
    assert event.event_id != old_event.event_id
    expected = ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key="C1",
        operation="upsert",
        payload=event.payload,
        source_version=4,
    )
    assert (event.event_id, event.fingerprint) == (expected.event_id, expected.fingerprint)
    assert balanced(state), "the dead-lettered outcome moved to the new delivery id"
    row = store.audit_log()[0]
    assert (row["action"], row["who"], row["details"]["fields"]) == (
        "edit",
        "alice",
        ["active", "address.city", "name", "phone"],
    )


def test_an_invalid_edit_is_refused_with_reasons_and_changes_nothing(
    operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    entry = dead_letter(store, state, "C1")
    before = store.get(entry.id)
    with pytest.raises(EditError) as refused:
        operator.edit(entry.id, sets=["name=", "colour=blue", "address.country=12"])
    reasons = " | ".join(refused.value.reasons)
    assert "name: String should have at least 1 character" in reasons
    assert "colour: Extra inputs are not permitted" in reasons
    assert store.get(entry.id) == before
    with pytest.raises(EditError) as moved:
        operator.edit(entry.id, payload=company("C9"))
    assert "cannot move to another record" in moved.value.reasons[0]
    with pytest.raises(EditError) as malformed:
        operator.edit(entry.id, sets=["name"])
    assert "expected field=value" in malformed.value.reasons[0]
    assert store.get(entry.id) == before
    assert [r["action"] for r in store.audit_log()] == [], "a refused edit is not an action"


def test_a_whole_payload_edit_and_a_no_op_edit(
    operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    entry = dead_letter(store, state, "C1")
    same = json.loads(json.dumps(entry.delivery.event.payload))
    assert operator.edit(entry.id, payload=same) is None
    result = operator.edit(entry.id, payload=company("C1", "Other", parent_key="C0"))
    assert result is not None
    assert result.entry.delivery.event.parent_key == "C0", "the event follows the payload"
    product = dead_letter(
        store,
        state,
        "P1",
        entity="product",
        flow="products",
        target="atollon",
        payload={"key": "P1", "name": "Box", "price": "1.50"},
    )
    with pytest.raises(EditError) as refused:
        operator.edit(product.id, sets=["price=cheap"])
    assert any(r.startswith("price:") for r in refused.value.reasons)
    deletion = dead_letter(store, state, "C5", operation="delete", payload={"key": "C5"})
    with pytest.raises(EditError, match="no payload to edit"):
        operator.edit(deletion.id, sets=["name=x"])


def test_an_edited_entry_replays_the_edited_event_and_is_resolved_once_applied(
    operator: DlqOperator, store: DeadLetterStore, state: State, published: Published
) -> None:
    entry = dead_letter(store, state, "C1")
    operator.edit(entry.id, sets=["name=Fixed"])
    sink = MemorySink()
    operator.replay(operator.plan([store.get(entry.id)]))  # type: ignore[list-item]
    (delivery,) = published.deliveries
    assert delivery.event.payload["name"] == "Fixed"
    assert engine_for(store, state, sink).process(delivery) == "applied"
    assert store.count() == 0
    assert balanced(state)


# -- drop, export, import -----------------------------------------------------------------
def test_drop_removes_and_is_audited(
    operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    a = dead_letter(store, state, "C1")
    dead_letter(store, state, "C2")
    assert operator.drop([a], {"ids": [a.id]}) == 1
    assert store.get(a.id) is None
    assert store.count() == 1
    assert operator.outcomes([a]).skipped == [(a.id, "dropped by alice")], "not 'applied'"
    assert operator.explain_missing(a.id).startswith("dropped by alice")
    assert store.audit_log()[0]["details"]["ids"] == [a.id]


def test_export_import_round_trip(
    client: fakeredis.FakeRedis, operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    entries = [dead_letter(store, state, f"C{i}", code=c) for i, c in enumerate(["40005", "10007"])]
    lines = list(operator.export_lines(operator.select(), {}))
    assert len(lines) == 2
    assert store.audit_log()[0]["action"] == "export"

    other_keys = Keys("elsewhere")
    other = DlqOperator(DeadLetterStore(client, other_keys), State(client, other_keys), actor="c")
    parsed = parse_import(["", *lines, "  "])
    assert other.import_entries(parsed, source="dlq.jsonl") == (2, 0)
    assert sorted(e.model_dump_json() for e in other.select()) == sorted(
        e.model_dump_json() for e in entries
    )
    assert balanced(other.state), "imported entries are counted produced and dead-lettered"
    assert other.import_entries(parsed) == (0, 2), "a second import replaces"
    assert other.state.counters("propeller")["dead_lettered"] == 2


def test_an_import_with_bad_lines_names_them_and_imports_nothing(
    operator: DlqOperator, store: DeadLetterStore, state: State
) -> None:
    entry = dead_letter(store, state, "C1")
    good = entry.model_dump_json()
    wrong_target = json.loads(good)
    wrong_target["target"] = "hipe"
    missing_field = json.loads(good)
    del missing_field["delivery"]
    lines = [good, "{not json", json.dumps(wrong_target), "", json.dumps(missing_field), good]
    with pytest.raises(ImportFileError) as refused:
        parse_import(lines)
    numbers = [n for n, _ in refused.value.problems]
    assert numbers == [2, 3, 5, 6]
    assert str(refused.value).startswith("4 invalid line(s): 2, 3, 5, 6")
    problems = dict(refused.value.problems)
    assert "target" in problems[3]
    assert "delivery" in problems[5]
    assert "already on line 1" in problems[6]
