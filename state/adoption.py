"""The adoption table: per flow and target, what the first run does with each source record
that the target does not hold under our external id yet (Redis).

The planner (:mod:`producers.plan`) fills it before a flow's first run; the sinks consult it
before a create (:mod:`delivery.sinks.adopting`); ``erpsync adopt`` shows and changes it. Only
records with a decision are stored (a record absent from the table is created):

* ``adopt``: link the target record ``target_id`` (write our external id onto it), then
  update it like any other;
* ``review``: adopt nothing, create nothing: the record waits for an operator (its
  candidates and why listed; the sink dead-letters it with code ``adoption-review``);
* ``create``: an operator's decision: create it even though target records matched.

A table exists once prepared (:meth:`AdoptionTable.prepared`): a sink whose flow has match
rules for its target waits (a dependency) until then rather than create duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import redis

from state.keys import Keys

Decision = Literal["adopt", "review", "create"]
#: the dead-letter code of a record waiting for an operator's decision
REVIEW_CODE = "adoption-review"


@dataclass(frozen=True)
class Candidate:
    """A target record a source record matched (its id, its name there, the rule)."""

    target_id: str
    name: str | None
    rule: str


@dataclass
class Entry:
    """What the first run does with one source record at one target."""

    decision: Decision
    #: ``adopt``: the target record to link
    target_id: str | None = None
    #: ``adopt``: its name in the target (Atollon links by name), the rule that matched
    name: str | None = None
    rule: str | None = None
    #: ``review``: every target record the record matched, and why nothing was adopted
    candidates: list[Candidate] = field(default_factory=list)
    reason: str | None = None
    #: who decided (``plan`` for the planner, else the operator) and when
    decided_by: str = "plan"
    decided_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data: dict[str, Any] = json.loads(text)
        data["candidates"] = [Candidate(**c) for c in data.get("candidates", [])]
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _table(keys: Keys, flow: str, target: str) -> str:
    return keys.adoption(flow, target)


def _prepared(keys: Keys, flow: str, target: str) -> str:
    return keys.adoption_prepared(flow, target)


class AdoptionTable:
    """The adoption table of every flow and target, in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        #: (flow, target) known prepared: it never goes back (cached per process)
        self._ready: set[tuple[str, str]] = set()

    def prepared(self, flow: str, target: str) -> bool:
        """True once the planner stored this flow's table for this target."""
        if (flow, target) in self._ready:
            return True
        if self.redis.exists(_prepared(self.keys, flow, target)):
            self._ready.add((flow, target))
            return True
        return False

    def store(self, flow: str, target: str, entries: Iterable[tuple[str, Entry]]) -> int:
        """Replace the table of (flow, target) with ``entries``; mark it prepared."""
        name = _table(self.keys, flow, target)
        count = 0
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(name)
        now = time.time()
        for key, entry in entries:
            entry.decided_at = entry.decided_at or now
            pipe.hset(name, key, entry.to_json())
            count += 1
            if count % 1000 == 0:
                pipe.execute()
        pipe.set(_prepared(self.keys, flow, target), f"{now:.3f}")
        pipe.execute()
        return count

    def get(self, flow: str, target: str, key: str) -> Entry | None:
        raw = self.redis.hget(_table(self.keys, flow, target), key)
        return None if raw is None else Entry.from_json(str(raw))

    def set(self, flow: str, target: str, key: str, entry: Entry) -> None:
        entry.decided_at = time.time()
        self.redis.hset(_table(self.keys, flow, target), key, entry.to_json())

    def entries(self, flow: str, target: str) -> Iterator[tuple[str, Entry]]:
        """Every stored decision of (flow, target), in key order."""
        name = _table(self.keys, flow, target)
        found = {str(k): str(v) for k, v in self.redis.hscan_iter(name, count=1000)}
        for key in sorted(found):
            yield key, Entry.from_json(found[key])

    def reviews(self, flow: str, targets: Iterable[str]) -> list[tuple[str, str, Entry]]:
        """(target, key, entry) of every record waiting for an operator, in key order."""
        return [
            (target, key, entry)
            for target in targets
            for key, entry in self.entries(flow, target)
            if entry.decision == "review"
        ]
