"""The records a run works on, in Redis: in flight, locked, their ledgers read.

The pipeline's steps are the same for one delivery and for a batch; what differs is how
many round trips their bookkeeping costs. :class:`OneRecord` does a single delivery's in
one (:meth:`state.store.State.start`: mark it in flight, read the circuit, take the lock,
read the ledger) and gives it all back with the outcome in one more; :class:`ManyRecords`
takes a batch's hundreds of locks, and reads their ledgers and their parents', one script
call each (hundreds of commands cost the worker more CPU than the rest of its bookkeeping;
the calls are :class:`state.records.Records`').
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from erpsync.events import Delivery
from state.records import Record, Records
from state.store import LedgerEntry, State

#: how often the record locks of a long bulk call (an import) are extended, seconds
KEEPALIVE_EVERY_S = 1.0


class OneRecord:
    """A single delivery's record."""

    def __init__(self, state: State, delivery: Delivery, lock_ttl_s: float) -> None:
        self.state = state
        self.delivery = delivery
        self.lock_ttl_s = lock_ttl_s
        event = delivery.event
        self.lock_key = state.keys.record_lock(delivery.target, event.entity, event.key)
        #: lock key -> token of the lock held (the leases renew what it holds)
        self.held: dict[str, str] = {}
        self.circuit_state: str | None = None
        self._holder: str | None = None
        self._ledger: LedgerEntry | None = None
        self.ended = False

    def open(self, now: float) -> None:
        """Mark the delivery in flight, read the circuit, try the lock and read the ledger,
        in one round trip."""
        event = self.delivery.event
        started = self.state.start(
            self.delivery.target,
            event.entity,
            event.key,
            self.delivery.delivery_id,
            now=now,
            lock_ttl_s=self.lock_ttl_s,
        )
        self.circuit_state = started.circuit_state
        self._holder, self._ledger = started.holder, started.ledger
        if started.token is not None:
            self.held[self.lock_key] = started.token

    def lock(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Whether the record is locked now (taken over from a dead holder if need be)."""
        if self.lock_key not in self.held:
            token = self.state.take_over(self.lock_key, self._holder, self.lock_ttl_s)
            if token is None:
                return [False]
            self.held[self.lock_key] = token
            event = self.delivery.event
            self._ledger = self.state.ledger_get(self.delivery.target, event.entity, event.key)
        return [True]

    def read(self, records: Sequence[Record]) -> None:
        """Nothing to read ahead: the record's ledger came with its lock, a parent's is
        read when asked for."""

    def ledger(self, entity: str, key: str) -> LedgerEntry | None:
        """The ledger of the record, or of another record of the target (read now)."""
        event = self.delivery.event
        if (entity, key) == (event.entity, event.key):
            return self._ledger
        return self.state.ledger_get(self.delivery.target, entity, key)

    def release(self, records: Sequence[Delivery]) -> None:
        """The lock goes back with the rest (:meth:`close`)."""

    def end_on(self, pipe: Any) -> None:
        """Queue the release of the lock and the in-flight mark on ``pipe`` (with the
        outcome)."""
        self.state.end(
            self.delivery.target,
            self.delivery.delivery_id,
            self.lock_key,
            self.held.get(self.lock_key),
            client=pipe,
        )
        self.ended = True

    def keepalive(self) -> None:
        """Nothing: a single call holds its lock for its TTL, or the leases renew it."""

    def close(self) -> None:
        """Give the lock back and clear the in-flight mark, unless done with the outcome."""
        if not self.ended:
            self.state.end(
                self.delivery.target,
                self.delivery.delivery_id,
                self.lock_key,
                self.held.get(self.lock_key),
            )
            self.ended = True


@dataclass
class ManyRecords:
    """A batch's records (one target), locked and given back together.

    Their locks are taken and given back by one script call each, under one token naming
    this process, as :meth:`State.acquire` names it: a lock left by a worker that died is
    taken over the same way.
    """

    state: State
    target: str
    deliveries: Sequence[Delivery]
    lock_ttl_s: float
    #: True: the leases renew the locks (:meth:`keepalive` only checks them)
    leased: bool = False
    held: dict[str, str] = field(default_factory=dict)  # lock key -> token
    circuit_state: str | None = None
    ledgers: dict[Record, LedgerEntry] = field(default_factory=dict)
    last_extended: float = 0.0
    store: Records = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = Records(self.state)

    def open(self, now: float) -> None:
        """Mark the batch's deliveries in flight and read the circuit, in one round trip."""
        ids = [d.delivery_id for d in self.deliveries]
        self.circuit_state = self.store.start_many(self.target, ids, now=now)

    def lock_key(self, delivery: Delivery) -> str:
        event = delivery.event
        return self.state.keys.record_lock(self.target, event.entity, event.key)

    def lock(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Take these records' locks in one round trip; True where taken."""
        lock_keys = [self.lock_key(d) for d in deliveries]
        tokens = self.store.lock_many(lock_keys, self.lock_ttl_s)
        for lock_key, token in zip(lock_keys, tokens, strict=True):
            if token is not None:
                self.held[lock_key] = token
        return [token is not None for token in tokens]

    def read(self, records: Sequence[Record]) -> None:
        """Read these records' ledgers (the batch's and their parents') in one round trip."""
        self.ledgers.update(self.store.ledgers(self.target, records))

    def ledger(self, entity: str, key: str) -> LedgerEntry | None:
        """A record's ledger as last read (:meth:`read`)."""
        return self.ledgers.get((entity, key))

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give these records' locks back in one round trip."""
        lock_keys = [self.lock_key(d) for d in deliveries]
        pairs = [(k, t) for k in lock_keys if (t := self.held.pop(k, None)) is not None]
        self.store.give_back(pairs)

    def keepalive(self) -> None:
        """Extend every held lock (a long import must not outlive its locks); with leases,
        they are renewed already (the caller checks they still are held)."""
        if self.leased:
            return
        now = time.monotonic()
        if now - self.last_extended < KEEPALIVE_EVERY_S or not self.held:
            return
        self.last_extended = now
        self.store.extend(self.held, self.lock_ttl_s)

    def close(self) -> None:
        """Give every lock back and clear the in-flight marks."""
        pairs = list(self.held.items())
        self.held.clear()
        self.store.give_back(pairs)
        self.store.end_many(self.target, (d.delivery_id for d in self.deliveries))
