"""``erpsync plan``: what a flow's first run would do at each target, read without writing.

A plan is a reconcile (:mod:`producers.reconcile`: the source and every target read page
by page into SQLite spills, merged in key order, so memory holds a page) plus, per target,
a second read of the records that carry *no* external id of ours (:mod:`delivery.sinks.
adoption`), spilled the same way, against which the source records the target lacks are
matched by the flow's rules (:mod:`erpsync.matching`), in SQLite too. Per target, each
source record is one of:

* ``create``: the target lacks it and nothing matches (an inactive record too: the first
  run creates it archived or inactive, where a reconcile calls it in sync);
* ``adopt``: exactly one target record without our id matches it, and no other source
  record matches that one: the first run links them (our id written onto it) and updates
  it (``fields``: what would change);
* ``ambiguous``: several target records match it, or its match is matched by another
  source record too: adopted by nobody, created by nobody; the first run holds it for an
  operator (``erpsync adopt review``);
* ``update``: the target holds it under our id and differs (``fields``);
* ``unchanged``: the target holds it under our id, equal.

Atollon matches company contacts by name on its side already ("Check whether company is
existing (company name matches some record in DB)"): its rules always end with that one
(``atollon_name``: the name with case and blanks folded, the sandbox's reading), which
Atollon applies whatever erpsync does. Without match rules of the flow for Atollon, nothing
is held there: the plan predicts Atollon's own matching (:meth:`Planner._match_like_atollon`).

:meth:`Plan.save` stores the decisions as the flows' adoption tables (Redis only; the
producer does it before a flow's first run), which the sinks consult.
"""

from __future__ import annotations

import pickle
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from delivery.sinks.adoption import Adopter, adopter_for
from delivery.sinks.view import Observed, ViewableSink
from erpsync.matching import NORMALISERS, atollon_name_key
from producers.reconcile import Reconciliation, differences
from state.adoption import AdoptionTable, Candidate, Entry

if TYPE_CHECKING:
    from producers.runner import ProducerService

log = structlog.get_logger("erpsync.plan")

#: what a plan counts per target, in the order it reports them
PLAN_KINDS = ("create", "update", "unchanged", "adopt", "ambiguous")
#: the rule Atollon applies on its side, after any of the flow's
ATOLLON_NAME = "atollon_name"
_CHUNK = 1000
_PICKLE = pickle.HIGHEST_PROTOCOL


def _normaliser(rule: str) -> Any:
    return atollon_name_key if rule == ATOLLON_NAME else NORMALISERS[rule]


def _field(rule: str) -> str:
    """The view (and canonical) field a rule compares."""
    return "name" if rule == ATOLLON_NAME else rule


def plan_rules(target: str, rules: tuple[str, ...]) -> tuple[str, ...]:
    """The rules a plan applies at a target: the flow's, then Atollon's own."""
    return (*rules, ATOLLON_NAME) if target == "atollon" else rules


@dataclass
class TargetPlan:
    """What the first run would do at one target."""

    target: str
    rules: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLAN_KINDS, 0))
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {kind: [] for kind in PLAN_KINDS}
    )
    #: reconcile's other findings (orphaned, duplicates, invalid_source), counted
    other: dict[str, int] = field(default_factory=dict)
    #: why the target was not read (circuit open, read failed)
    not_checked: str | None = None
    #: said about the target (Atollon's own name matching)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rules": list(self.rules),
            "counts": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items()},
            "other": dict(self.other),
            "notes": list(self.notes),
        }
        if self.not_checked is not None:
            out["not_checked"] = self.not_checked
        return out


class _Unlinked:
    """One target's records without our id, in SQLite: their views, and an index of the
    normal forms of each rule (rule, value) -> target id."""

    def __init__(self, path: Path, rules: tuple[str, ...]) -> None:
        self.rules, self.count = rules, 0
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE unlinked (id TEXT PRIMARY KEY, name TEXT, view BLOB)")
        self.db.execute("CREATE TABLE keys (rule TEXT, value TEXT, id TEXT)")
        self.db.execute(
            "CREATE TABLE src (key TEXT, ord INTEGER, rule TEXT, value TEXT, payload BLOB)"
        )

    def read(self, records: Iterator[Observed], progress: Any, name: str) -> None:
        rows: list[tuple[str, str | None, bytes]] = []
        keys: list[tuple[str, str, str]] = []
        for record in records:
            rows.append((record.target_id, record.fields.get("name"),
                         pickle.dumps(record.fields, _PICKLE)))  # fmt: skip
            for rule in self.rules:
                value = _normaliser(rule)(record.fields.get(_field(rule)))
                if value is not None:
                    keys.append((rule, value, record.target_id))
            if len(rows) >= _CHUNK:
                self._write(rows, keys, progress, name)
                rows, keys = [], []
        self._write(rows, keys, progress, name)
        self.db.execute("CREATE INDEX keys_at ON keys (rule, value)")

    def _write(self, rows: list[Any], keys: list[Any], progress: Any, name: str) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO unlinked VALUES (?, ?, ?)", rows)
            self.db.executemany("INSERT INTO keys VALUES (?, ?, ?)", keys)
        self.count += len(rows)
        progress("read", f"{name} (without our id)", self.count)

    def record(self, target_id: str) -> tuple[str | None, dict[str, Any]]:
        name, body = self.db.execute(
            "SELECT name, view FROM unlinked WHERE id = ?", (target_id,)
        ).fetchone()
        return name, pickle.loads(body)  # noqa: S301 (our own spill)

    def shared_atollon_name(self, target_id: str) -> bool:
        """True when another unlinked record has this one's name as Atollon compares it."""
        row = self.db.execute(
            "SELECT count(*) FROM keys a JOIN keys b ON a.rule = b.rule "
            "AND a.value = b.value WHERE a.rule = ? AND a.id = ? AND b.id != ?",
            (ATOLLON_NAME, target_id, target_id),
        ).fetchone()
        return bool(row[0])


class Planner:
    """One plan of a flow (a context manager through its reconcile)."""

    def __init__(
        self,
        reconciliation: Reconciliation,
        rules: Mapping[str, tuple[str, ...]],
        *,
        limit: int | None = 10,
    ) -> None:
        self.reconciliation = reconciliation
        reconciliation.first_run = True  # an inactive record the target lacks is created
        self.flow = reconciliation.flow
        self.entity = reconciliation.stream.entity
        self.limit = limit
        self.targets: dict[str, TargetPlan] = {}
        self.decisions: dict[str, list[tuple[str, Entry]]] = {}
        self._rules = dict(rules)
        self._unlinked: dict[str, _Unlinked] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Planner:
        return self

    def __exit__(self, *exc: object) -> None:
        for unlinked in self._unlinked.values():
            unlinked.db.close()
        self.reconciliation.close()

    def run(self) -> dict[str, TargetPlan]:
        """Read everything (the targets' unlinked records beside the reconcile), decide."""
        sinks = self.reconciliation.sinks
        adopters = {t: a for t, s in sinks.items() if (a := _adopter(s)) is not None}
        path = self.reconciliation.path
        unlinked = {
            t: _Unlinked(path / f"plan-{i}.sqlite", plan_rules(t, self._rules.get(t, ())))
            for i, t in enumerate(adopters)
        }
        self._unlinked = unlinked
        progress = self.reconciliation.progress

        def locked(what: str, name: str, count: int) -> None:
            with self._lock:
                progress(what, name, count)

        reads: dict[str, Future[None]] = {}
        with ThreadPoolExecutor(max(1, len(adopters)), thread_name_prefix="plan") as pool:
            for target, adopter in adopters.items():
                if unlinked[target].rules:
                    reads[target] = pool.submit(
                        self._read, unlinked[target], adopter, target, locked
                    )
            report = self.reconciliation.run()
        for target, found in report.targets.items():
            plan = self.targets[target] = TargetPlan(
                target, plan_rules(target, self._rules.get(target, ()))
            )
            failed = reads[target].exception() if target in reads else None
            plan.not_checked = found.not_checked or (
                f"reading its records without our id failed: {failed}" if failed else None
            )
            if plan.not_checked is not None:
                continue
            self._count(plan, found)
            self._match(plan, sinks[target], unlinked.get(target))
        return self.targets

    def _read(self, into: _Unlinked, adopter: Adopter, target: str, progress: Any) -> None:
        into.read(adopter.unlinked(self.entity), progress, target)

    def _count(self, plan: TargetPlan, found: Any) -> None:
        """What the reconcile found, in the plan's words."""
        plan.counts["unchanged"] = found.counts["in_sync"]
        plan.counts["update"] = found.counts["different"]
        plan.examples["update"] = list(found.examples["different"])
        plan.other = {
            k: found.counts[k] for k in ("orphaned", "duplicates", "invalid_source")
            if found.counts[k]
        }  # fmt: skip
        if plan.target == "atollon" and self._rules.get(plan.target):
            plan.notes.append(
                "Atollon matches company contacts by name on its side (case and blanks "
                "ignored) among contacts without our id: those are counted as adopt "
                f"(rule {ATOLLON_NAME})"
            )
        elif plan.target == "atollon":
            plan.notes.append(
                "Atollon matches company contacts by name on its side (case and blanks "
                "ignored) among contacts without our id: with no match rules of the flow "
                "for Atollon, nothing is held for review; a customer takes the oldest such "
                "contact of its name still free (counted as adopt, rule "
                f"{ATOLLON_NAME}), the others are created. Which of several customers of one "
                "name takes which contact depends on the order they arrive"
            )

    def _match(self, plan: TargetPlan, sink: ViewableSink, unlinked: _Unlinked | None) -> None:
        """Decide every source record the target lacks: create, adopt or ambiguous."""
        findings = self.reconciliation.findings
        missing = (
            (key, payload)
            for kind, key, payload in findings.to_repair(plan.target)
            if kind == "missing" and payload is not None
        )
        if unlinked is None or not unlinked.rules:
            for key, _ in missing:
                self._decide(plan, key, Entry("create"))
            return
        _spill_source(unlinked, missing)
        if plan.target == "atollon" and not self._rules.get(plan.target):
            self._match_like_atollon(plan, sink, unlinked)
            return
        chosen = _chosen(unlinked)
        claimed = _claimed(chosen)
        rows = unlinked.db.execute("SELECT DISTINCT key, payload FROM src ORDER BY key")
        for key, payload in rows:
            candidates = chosen.get(key)
            if not candidates:
                self._decide(plan, key, Entry("create"))
                continue
            entry = _entry(key, candidates, claimed, unlinked)
            if entry.decision == "adopt" and entry.target_id is not None:
                self._adopt_example(plan, sink, key, entry, pickle.loads(payload), unlinked)  # noqa: S301
            self._decide(plan, key, entry)

    def _match_like_atollon(
        self, plan: TargetPlan, sink: ViewableSink, unlinked: _Unlinked
    ) -> None:
        """No match rules of ours for Atollon: the first run sends every record, and
        Atollon's own name matching attaches each to the oldest contact of its name that
        has no id of ours yet, or creates one. Nothing is held: per name, as many records
        as there are such contacts are adopted (in key order here; in arrival order then),
        the rest created."""
        taken: dict[str, int] = {}  # per name: its contacts already taken, oldest first
        rows = unlinked.db.execute("SELECT key, value, payload FROM src ORDER BY key")
        for key, value, payload in rows:
            found = None
            if value is not None:
                found = unlinked.db.execute(
                    "SELECT k.id, u.name FROM keys k JOIN unlinked u ON u.id = k.id "
                    "WHERE k.rule = ? AND k.value = ? ORDER BY u.rowid LIMIT 1 OFFSET ?",
                    (ATOLLON_NAME, value, taken.get(value, 0)),
                ).fetchone()
            if found is None:
                self._decide(plan, key, Entry("create"))
                continue
            taken[value] = taken.get(value, 0) + 1
            entry = Entry("adopt", target_id=found[0], name=found[1], rule=ATOLLON_NAME)
            self._adopt_example(plan, sink, key, entry, pickle.loads(payload), unlinked)  # noqa: S301
            self._decide(plan, key, entry)

    def _adopt_example(self, plan: TargetPlan, sink: ViewableSink, key: str, entry: Entry,
                       payload: dict[str, Any], unlinked: _Unlinked) -> None:  # fmt: skip
        if not self._room(plan.examples["adopt"]):
            return
        assert entry.target_id is not None  # noqa: S101 (an adopt entry names its record)
        _, fields = unlinked.record(entry.target_id)
        try:
            expected = sink.expected(self.entity, payload)
        except ValidationError:
            return
        changes = differences(expected, fields, sink.known_limits(self.entity))
        plan.examples["adopt"].append(
            {
                "key": key,
                "target_id": entry.target_id,
                "name": entry.name,
                "rule": entry.rule,
                "fields": changes,
            }
        )

    def _room(self, examples: list[Any]) -> bool:
        """Whether another example fits (``limit`` None: all of them)."""
        return self.limit is None or len(examples) < self.limit

    def _decide(self, plan: TargetPlan, key: str, entry: Entry) -> None:
        kind = {"create": "create", "adopt": "adopt", "review": "ambiguous"}[entry.decision]
        plan.counts[kind] += 1
        if kind == "create" and self._room(plan.examples[kind]):
            plan.examples[kind].append({"key": key})
        if kind == "ambiguous" and self._room(plan.examples[kind]):
            plan.examples[kind].append(
                {
                    "key": key,
                    "reason": entry.reason,
                    "candidates": [c.__dict__ for c in entry.candidates],
                }
            )
        if entry.decision != "create":
            self.decisions.setdefault(plan.target, []).append((key, entry))

    def save(self, table: AdoptionTable, targets: list[str]) -> dict[str, int]:
        """Store the decisions of ``targets`` as their adoption tables (marks them prepared)."""
        stored = {}
        for target in targets:
            plan = self.targets.get(target)
            if plan is None or plan.not_checked is not None:
                continue  # not read: the table stays unprepared, the sinks wait
            stored[target] = table.store(self.flow, target, self.decisions.get(target, []))
        log.info("plan.adoption_stored", flow=self.flow, stored=stored)
        return stored


def _spill_source(unlinked: _Unlinked, missing: Iterator[tuple[str, dict[str, Any]]]) -> None:
    """The source records the target lacks, with their normal form under each rule."""
    rules, db = unlinked.rules, unlinked.db
    rows: list[tuple[str, int, str | None, str | None, bytes]] = []
    for key, payload in missing:
        body = pickle.dumps(payload, _PICKLE)
        values = [(o, r, _normaliser(r)(payload.get(_field(r)))) for o, r in enumerate(rules)]
        present: list[tuple[int, str | None, str | None]] = [
            (o, r, v) for o, r, v in values if v is not None
        ]
        # a record with no value under any rule is still listed (to be created)
        for o, r, v in present or [(len(rules), None, None)]:
            rows.append((key, o, r, v, body))
        if len(rows) >= _CHUNK:
            with db:
                db.executemany("INSERT INTO src VALUES (?, ?, ?, ?, ?)", rows)
            rows = []
    with db:
        db.executemany("INSERT INTO src VALUES (?, ?, ?, ?, ?)", rows)


def _chosen(unlinked: _Unlinked) -> dict[str, list[Candidate]]:
    """Per source key that finds any, the candidates of its first rule that does."""
    rows = unlinked.db.execute(
        "SELECT s.key, s.ord, s.rule, k.id FROM src s JOIN keys k "
        "ON k.rule = s.rule AND k.value = s.value ORDER BY s.key, s.ord, k.id"
    )
    chosen: dict[str, list[Candidate]] = {}
    first: dict[str, int] = {}
    for key, order, rule, target_id in rows.fetchall():
        if first.setdefault(key, order) != order:
            continue
        found = chosen.setdefault(key, [])
        if all(c.target_id != target_id for c in found):
            found.append(Candidate(target_id, unlinked.record(target_id)[0], rule))
    return chosen


def _adopter(sink: Any) -> Adopter | None:
    wrapped = getattr(sink, "adopter", None)
    return wrapped if wrapped is not None else adopter_for(sink)


def _claimed(chosen: Mapping[str, list[Candidate]]) -> dict[str, int]:
    """How many source records match each target record (under their deciding rule)."""
    claimed: dict[str, int] = {}
    for candidates in chosen.values():
        for candidate in candidates:
            claimed[candidate.target_id] = claimed.get(candidate.target_id, 0) + 1
    return claimed


def _entry(
    key: str, candidates: list[Candidate], claimed: Mapping[str, int], unlinked: _Unlinked
) -> Entry:
    """Adopt the one candidate, or hold the record for review (and say why)."""
    if len(candidates) > 1:
        reason = f"{len(candidates)} target records match by {candidates[0].rule}"
        return Entry("review", candidates=candidates, reason=reason)
    only = candidates[0]
    if claimed.get(only.target_id, 0) > 1:
        reason = f"target record {only.target_id} matches {claimed[only.target_id]} source records"
        return Entry("review", candidates=candidates, reason=reason)
    if unlinked.rules[-1] == ATOLLON_NAME and unlinked.shared_atollon_name(only.target_id):
        reason = f"Atollon cannot tell contact {only.target_id} from another of the same name"
        return Entry("review", candidates=candidates, reason=reason)
    return Entry("adopt", target_id=only.target_id, name=only.name, rule=only.rule)


class PlanError(Exception):
    """A plan could not be made (unknown flow, a target could not be read)."""


def make_plan(
    service: ProducerService,
    flow: str,
    targets: list[str] | None = None,
    *,
    limit: int | None = 10,
    progress: Any = None,
) -> Planner:
    """A plan of ``flow`` at its targets (or ``targets``), ready to run (a context manager).

    Raises ReconcileError for a flow that is unknown, disabled or a work queue.
    """
    reconciliation = service.reconciliation(flow, targets, limit=limit, progress=progress)
    rules = service.settings.flows[flow].match_rules()
    return Planner(reconciliation, rules, limit=limit)


def prepare_adoption(service: ProducerService, flow: str) -> dict[str, int]:
    """Before a flow's first run: plan the targets it has match rules for whose adoption
    table is not prepared yet, and store their tables. Returns the entries stored per
    target (empty: nothing to do). Raises PlanError when a target could not be read."""
    config = service.settings.flows.get(flow)
    rules = config.match_rules() if config is not None and config.enabled else {}
    table = AdoptionTable(service.producer.redis, service.producer.keys)
    todo = [target for target in rules if not table.prepared(flow, target)]
    if not todo:
        return {}
    with make_plan(service, flow, todo, limit=0) as planner:
        planner.run()
        stored = planner.save(table, todo)
        unread = {t: p.not_checked for t, p in planner.targets.items() if p.not_checked}
    if unread:
        raise PlanError(
            "the adoption table could not be prepared: "
            + "; ".join(f"{t}: {why}" for t, why in unread.items())
        )
    return stored
