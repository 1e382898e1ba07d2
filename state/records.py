"""The records a delivery run works on, in Redis, beyond :class:`~state.store.State`'s
single-record calls.

A batch's in-flight marks, record locks and ledgers cost one round trip each, whatever its
size (hundreds of commands cost a worker more CPU than the rest of its bookkeeping); and
the ledger fields a run clears or advances around a write (the fingerprint it no longer
vouches for, a newer source version, a sink's checkpoint). The delivery pipeline's
:mod:`delivery.pipeline.records` decides when; this module owns how they are stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from state.scripts import lua
from state.store import LedgerEntry, State, _holder, _ttl_ms

#: (entity, key) of a record of one target
Record = tuple[str, str]

_TAKE_ALL = lua("records_take_all")
_GIVE_ALL = lua("records_give_all")
_READ_LEDGERS = lua("records_read_ledgers")


class Records:
    """A target's records in Redis: their locks, in-flight marks and ledger fields."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.keys = state.keys
        client = state.redis
        self._take_all = client.register_script(_TAKE_ALL)
        self._give_all = client.register_script(_GIVE_ALL)
        #: every ledger named as a key, each as HGETALL returns it (one command; a pipeline
        #: of one HGETALL a record cost more CPU to pack and parse than the records' mapping)
        self._read_ledgers = client.register_script(_READ_LEDGERS)

    # -- a batch's records ------------------------------------------------------------
    def start_many(self, target: str, delivery_ids: Sequence[str], *, now: float) -> str | None:
        """Mark deliveries of ``target`` in flight and read its circuit's ``state`` field,
        in one round trip."""
        with self.state.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys.inflight(target), mapping=dict.fromkeys(delivery_ids, f"{now:.3f}"))
            pipe.hget(self.keys.circuit(target), "state")
            _, circuit_state = pipe.execute()
        return circuit_state  # type: ignore[no-any-return]

    def end_many(self, target: str, delivery_ids: Iterable[str]) -> None:
        """Clear the in-flight marks of deliveries of ``target``."""
        self.state.redis.hdel(self.keys.inflight(target), *delivery_ids)

    def lock_many(self, lock_keys: Sequence[str], ttl_s: float) -> list[str | None]:
        """Take these locks in one round trip under one token naming this process, as
        :meth:`State.acquire` names it; per lock its token when taken, else None.

        A lock held by a dead process of this host is taken over as :meth:`State.acquire`
        does (one more round trip each, rare).
        """
        if not lock_keys:
            return []
        token = _holder()
        answers: list[str] = self._take_all(keys=list(lock_keys), args=[_ttl_ms(ttl_s), token])
        taken: list[str | None] = []
        for lock_key, answer in zip(lock_keys, answers, strict=True):
            if answer == "+":
                taken.append(token)
            else:  # held: taken over only from a dead process of this host
                taken.append(self.state.take_over(lock_key, answer[1:] or None, ttl_s))
        return taken

    def give_back(self, held: Sequence[tuple[str, str]]) -> None:
        """Give (lock key, token) pairs back in one round trip, each only if still held."""
        if held:
            self._give_all(keys=[k for k, _ in held], args=[t for _, t in held])

    def extend(self, lock_keys: Iterable[str], ttl_s: float) -> None:
        """Extend these locks to ``ttl_s`` from now, in one round trip."""
        ttl_ms = int(ttl_s * 1000)
        with self.state.redis.pipeline(transaction=False) as pipe:
            for lock_key in lock_keys:
                pipe.pexpire(lock_key, ttl_ms)
            pipe.execute()

    def any_locked(self, target: str, records: Sequence[Record]) -> bool:
        """Whether any of these records of ``target`` is locked now (one round trip)."""
        with self.state.redis.pipeline(transaction=False) as pipe:
            for entity, key in records:
                pipe.exists(self.keys.record_lock(target, entity, key))
            return any(pipe.execute())

    def ledgers(self, target: str, records: Sequence[Record]) -> dict[Record, LedgerEntry]:
        """The ledgers of these records of ``target`` that have one, in one round trip."""
        if not records:
            return {}
        keys = [self.keys.ledger(target, entity, key) for entity, key in records]
        raw: list[list[str]] = self._read_ledgers(keys=keys)
        return {
            record: LedgerEntry.from_mapping(dict(zip(flat[::2], flat[1::2], strict=True)))
            for record, flat in zip(records, raw, strict=True)
            if flat
        }

    # -- ledger fields around a write (the caller holds the records' locks) ------------
    def advance_version(self, target: str, entity: str, key: str, version: int) -> None:
        """Raise the ledger's source version to ``version`` when it has an older one."""
        ledger_key = self.keys.ledger(target, entity, key)
        current = self.state.redis.hget(ledger_key, "source_version")
        if current is not None and int(current) < version:
            self.state.redis.hset(ledger_key, "source_version", str(version))

    def forget_fingerprint(self, target: str, entity: str, key: str, *, unless: str) -> None:
        """Blank the ledger's fingerprint (version and target id kept) unless it is
        ``unless`` or there is no ledger."""
        ledger_key = self.keys.ledger(target, entity, key)
        current = self.state.redis.hget(ledger_key, "fingerprint")
        if current is not None and current != unless:
            self.state.redis.hset(ledger_key, "fingerprint", "")

    def forget_fingerprints(self, records: Iterable[tuple[str, str, str]]) -> None:
        """Blank the fingerprint of each (target, entity, key)'s ledger (version and target
        id kept), in one round trip; the caller names ledgers that exist."""
        with self.state.redis.pipeline(transaction=False) as pipe:
            for target, entity, key in records:
                pipe.hset(self.keys.ledger(target, entity, key), "fingerprint", "")
            pipe.execute()

    def forget_fingerprints_if_any(self, records: Iterable[tuple[str, str, str]]) -> None:
        """:meth:`forget_fingerprints` of those (target, entity, key) that have a ledger
        (two round trips: which exist, then the writes)."""
        keys = [self.keys.ledger(target, entity, key) for target, entity, key in records]
        with self.state.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            present = pipe.execute()
        with self.state.redis.pipeline(transaction=False) as pipe:
            for key, exists in zip(keys, present, strict=True):
                if exists:
                    pipe.hset(key, "fingerprint", "")
            pipe.execute()

    def checkpoint(self, target: str, entity: str, key: str, extra: str) -> None:
        """Write a sink's progress (JSON) as the ledger's ``extra``."""
        self.state.redis.hset(self.keys.ledger(target, entity, key), "extra", extra)
