"""A seeded random editor of ERP customers, through the ERP simulator's API.

It keeps the ERP's customers in memory as it writes them (``records``), remembers each one
as the producer last saw it (``polled``, for the oracle; a deleted customer keeps its last
state) and counts what the polls actually carried (``coverage``): per field how often a
value was set, changed and cleared, parents attached, moved and detached, deactivations,
reactivations, deletions and re-creations. Coalesced edits (several before one poll) count
once, as the targets see them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.equality.oracle import ERP_ADDRESS, SourceState, text

#: the customer's text fields and ERP's custom fields ``Secteur`` and ``Note`` (mapped by the
#: flow's ``source_fields``), with how a value is made
SEGMENTS = ("retail", "wholesale", "industry")  # the sandbox HIPE ``segment`` select's options
CITIES = ("Montréal", "Québec", "Laval", "Gatineau", "Sherbrooke", "Toronto")
REGIONS = ("QC", "ON", "NB", "BC")
COUNTRIES = ("CA", "US", "FR")
SHARED_NAMES = ("Dupont & Fils", "Emballages du Nord")


def _values(rng: random.Random, n: int) -> dict[str, Callable[[], str]]:
    return {
        # one name in ten is shared by several customers (Atollon matches companies by
        # name when no external id matches: ours always do, so none may merge)
        "NomClient": lambda: (
            rng.choice(SHARED_NAMES)
            if rng.random() < 0.1
            else rng.choice(("Acme", "Boréal", "Café O'Neil & Fils", "Zénith")) + f" {n}"
        ),
        "Courriel": lambda: f"compta.{n}@exemple.ca",
        # "+..." is what HIPE's CSV import would neutralise ('+1 ...): the bulk path's follow-up
        "Telephone": lambda: rng.choice((f"+1 514 555 {n:04d}", f"418-555-{n:04d}")),
        "NoTPS": lambda: f"{n:09d} RT0001",
        "Langue": lambda: rng.choice(("FR", "EN")),
        "Secteur": lambda: rng.choice(SEGMENTS),
        # a leading "-" is formula-like for a spreadsheet: the CSV import cannot carry it
        "Note": lambda: rng.choice((f"Note {n}", f"-{n % 50} % remise", f"  padded {n}  ")),
        "Ligne1": lambda: f"{n} rue Principale",
        "Ville": lambda: rng.choice(CITIES),
        "Province": lambda: rng.choice(REGIONS),
        "CodePostal": lambda: f"H{n % 10}X {n % 10}Y{n % 7}",
        "Pays": lambda: rng.choice(COUNTRIES),
    }


#: fields that can be set, changed and cleared (the name can only be changed)
CLEARABLE = (
    "Courriel",
    "Telephone",
    "NoTPS",
    "Langue",
    "Secteur",
    "Note",
    *ERP_ADDRESS,
)
EDITABLE = ("NomClient", *CLEARABLE)


@dataclass
class ErpEditor:
    """Creates, edits, deactivates, deletes and re-creates ERP customers at random."""

    erp: httpx.Client
    rng: random.Random
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    polled: dict[str, SourceState] = field(default_factory=dict)
    coverage: Counter[str] = field(default_factory=Counter)
    #: per key: how many times a poll carried its deactivation, reactivation, deletion,
    #: re-creation
    lifecycle: dict[str, Counter[str]] = field(default_factory=dict)
    #: per key: the state each poll carried (None: deleted), for failure messages
    history: dict[str, list[tuple[int, dict[str, Any] | None]]] = field(default_factory=dict)
    polls: int = 0
    writes: int = 0
    _serial: int = 0

    # -- values -------------------------------------------------------------------------
    def new_value(self, name: str) -> str:
        self._serial += 1
        return _values(self.rng, self._serial)[name]()

    def _get(self, record: dict[str, Any], name: str) -> Any:
        if name in ERP_ADDRESS:
            return (record.get("Adresse") or {}).get(name)
        return record.get(name)

    def _set(self, record: dict[str, Any], name: str, value: Any) -> None:
        if name in ERP_ADDRESS:
            record["Adresse"] = {**(record.get("Adresse") or {}), name: value}
        else:
            record[name] = value

    def blank(self) -> str | None:
        """A cleared value: null, or text erased to spaces."""
        return self.rng.choice((None, None, "", "   "))

    # -- writes -------------------------------------------------------------------------
    def _put(self, key: str) -> None:
        self.erp.put(f"/Entity/Customer/{key}", json=self.records[key]).raise_for_status()
        self.writes += 1

    def create(self, key: str, parent: str | None = None, fill: float = 0.7) -> None:
        record: dict[str, Any] = {
            "NoClient": key,
            "NomClient": self.new_value("NomClient"),
            "NoClientParent": parent,
            "EstActif": True,
            "Adresse": {},
        }
        for name in CLEARABLE:
            self._set(record, name, self.new_value(name) if self.rng.random() < fill else None)
        self.records[key] = record
        self.erp.post("/Entity/Customer", json=record).raise_for_status()
        self.writes += 1

    def edit(self, key: str, name: str | None = None) -> None:
        """Set, change or clear one field (the name is only ever changed); always a change."""
        record = self.records[key]
        name = name or self.rng.choice(EDITABLE)
        current = text(self._get(record, name))
        if name == "NomClient" or current is None or self.rng.random() < 0.5:
            value: str | None = self.new_value(name)
            while text(value) == current:  # a pick among a few choices may repeat it
                value = self.new_value(name)
        else:
            value = self.blank()
        self._set(record, name, value)
        self._put(key)

    def set_parent(self, key: str, parent: str | None) -> None:
        self.records[key]["NoClientParent"] = parent
        self._put(key)

    def set_active(self, key: str, active: bool) -> None:
        self.records[key]["EstActif"] = active
        self._put(key)

    def delete(self, key: str) -> None:
        assert not self.children(key), f"{key} has children: deleting it would orphan them"
        del self.records[key]
        self.erp.delete(f"/Entity/Customer/{key}").raise_for_status()
        self.writes += 1

    # -- the hierarchy ------------------------------------------------------------------
    def children(self, key: str) -> list[str]:
        return [k for k, r in self.records.items() if r.get("NoClientParent") == key]

    def ancestors(self, key: str) -> list[str]:
        found: list[str] = []
        parent = self.records[key].get("NoClientParent")
        while parent is not None and parent not in found:
            found.append(parent)
            parent = self.records[parent].get("NoClientParent")
        return found

    def depth_below(self, key: str) -> int:
        below = [self.depth_below(c) for c in self.children(key)]
        return 1 + max(below, default=0)

    def parent_candidates(self, key: str, excluded: set[str], max_depth: int = 4) -> list[str]:
        """Customers ``key`` may move under: no cycle, no deeper than ``max_depth`` levels."""
        height = self.depth_below(key)
        return [
            k
            for k in self.records
            if k != key
            and k not in excluded
            and key not in self.ancestors(k)
            and len(self.ancestors(k)) + 1 + height <= max_depth
        ]

    # -- polls --------------------------------------------------------------------------
    def observe_poll(self, source: dict[str, dict[str, Any]], path: str) -> None:
        """Record what a poll just carried: ``source`` is what the ERP held at the poll;
        ``path`` names how it went (``bulk`` or ``single``), counted per field change."""
        assert sorted(source) == sorted(self.records), "the ERP holds what was written"
        self.polls += 1
        for key, record in source.items():
            before = self.polled.get(key)
            after = SourceState(key, record)
            if before is None or before.record != record or not before.exists:
                self.history.setdefault(key, []).append((self.polls, record))
            life = self.lifecycle.setdefault(key, Counter())
            if before is None or not before.exists:
                if before is not None:
                    life["recreated"] += 1
                    self.coverage["recreated"] += 1
                self.polled[key] = after
                continue
            self._count(before, after, path)
            if before.active and not after.active:
                life["deactivated"] += 1
                self.coverage["deactivated"] += 1
            if not before.active and after.active:
                life["reactivated"] += 1
                self.coverage["reactivated"] += 1
            self.polled[key] = after
        for key, state in list(self.polled.items()):
            if key not in self.records and state.exists:
                self.polled[key] = SourceState(key, state.record, exists=False)
                self.history[key].append((self.polls, None))
                self.lifecycle[key]["deleted"] += 1
                self.coverage["deleted"] += 1

    def _count(self, before: SourceState, after: SourceState, path: str) -> None:
        for name in EDITABLE:
            old = text(self._get(dict(before.record), name))
            new = text(self._get(dict(after.record), name))
            if old == new:
                continue
            kind = "set" if old is None else "cleared" if new is None else "changed"
            self.coverage[f"{path}:{name}.{kind}"] += 1
        old_parent = before.value("NoClientParent")
        new_parent = after.value("NoClientParent")
        if old_parent != new_parent:
            kind = (
                "attached" if old_parent is None else "detached" if new_parent is None else "moved"
            )
            self.coverage[f"{path}:parent.{kind}"] += 1
