"""Redis-backed state shared by every worker: ledger, locks, delayed set, accounting.

* **Ledger** (one hash per target, entity and key): the fingerprint and source version last
  applied, and the target's own id. It makes application effectively-once on top of
  at-least-once delivery, and stops a stale event from overwriting a newer one.
* **Record locks**: one event of a record is applied to a target at a time (the HIPE
  duplicate-create race). A lock names its holder (host and pid) so that a lock left by a
  SIGKILLed worker on this host is taken over at once instead of after its TTL.
* **Delayed set**: retries and waits longer than a moment are parked here, scored by due
  time, never in Celery countdowns (with the Redis broker a countdown longer than the
  visibility timeout is delivered again and again). Moving a due entry back to its queue
  goes through a *claimed* set, so a crash between taking and re-publishing loses nothing.
* **Pending deliveries**: every delivery from the moment it is sent until it reaches its
  outcome, with the time it was last seen moving (sent, started, parked until). The broker
  can lose a message (kombu's Redis transport pops it before recording it as
  unacknowledged, so a worker killed in between, or a Redis restart then, loses it); the
  pump sends again, from here, a delivery that made no progress for a lease and is no
  longer in its queue (:meth:`State.claim_overdue`). The ledger makes the copy harmless.
* **Accounting**: each delivery's outcome (applied, skipped, dead-lettered) is counted once
  per target, even when the broker delivers the message twice; tests and ``erpsync status``
  read ``produced = applied + skipped + dead_lettered``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.commands.core import Script

from state.keys import Keys
from state.scripts import lua

Outcome = Literal["applied", "skipped", "dead_lettered"]
HOST = socket.gethostname()

_RELEASE = lua("store_release")

# Take up to ARGV[2] due members (score <= ARGV[1]) from the delayed set into the claimed
# set (scored by claim time ARGV[3]) atomically, so two pumps never take the same member.
_CLAIM = lua("store_claim")

# Forget claimed members (ARGV[2..]) still claimed at ARGV[1]: a member claimed again since
# (parked again with the same content, then taken by another pump) stays claimed.
_DONE = lua("store_done")

# Pending deliveries last seen moving at or before ARGV[1] (up to ARGV[2]) are taken to be
# sent again: each is marked seen now (ARGV[3]), so that no other pump takes it for another
# lease, and its stored delivery returned. A member without one is forgotten.
_OVERDUE = lua("store_overdue")

# Claimed members older than ARGV[1] (a pump died before re-publishing) go back, due now.
_RECOVER = lua("store_recover")

# Record an outcome once per delivery; ARGV: outcome, ttl seconds, then any further
# counter fields to bump with it (e.g. "customers.applied"). Returns 1 when counted.
_OUTCOME = lua("store_outcome")

# _OUTCOME's "produced" for many deliveries at once. KEYS: each delivery's produced marker
# then its target's counters hash; ARGV[1] the marker's TTL, then per delivery its flow's
# counter field ('' for none). Returns how many were counted now.
_PRODUCED = lua("store_produced")

# A script prelude: ``many(command, key, args)`` runs ``command key args...`` in chunks of
# 1,000 arguments (Lua's unpack has a stack limit; even, so field-value pairs stay whole):
# one command for many members instead of one a member.
MANY = lua("many")

# Many applied deliveries of one target (a bulk call's successes) in one call: each one's
# ledger written, its outcome counted once (_OUTCOME's rule), and it is pending no more.
# KEYS: the target's counters, pending set and pending payloads, then per delivery its
# ledger and its outcome marker. ARGV[1] the marker's TTL, ARGV[2] JSON: per delivery
# [delivery id, [ledger field, value, ...], [further counter fields]]. Returns how many
# were counted now. (One script rather than four commands a delivery: packing hundreds of
# commands cost the worker more CPU than the bulk call, on the path its children wait on.)
_APPLIED_MANY = lua("many", "store_applied_many")

# Replace a lock's token only if it still is ARGV[1]; ARGV: old, new, ttl ms.
_SWAP = lua("store_swap")

# Undo a counted outcome (a dead letter being replayed). ARGV: the outcome expected, then
# further counter fields to decrement with it.
_FORGET = lua("store_forget")


@dataclass(frozen=True)
class LedgerEntry:
    """What was last applied to a target for one record."""

    fingerprint: str
    source_version: int
    target_id: str | None = None
    deleted: bool = False
    applied_at: float = 0.0
    extra: str | None = None  # JSON, sink-specific (e.g. saga step reached)

    def to_mapping(self) -> dict[str, str]:
        data = {
            "fingerprint": self.fingerprint,
            "source_version": str(self.source_version),
            "target_id": self.target_id or "",
            "deleted": "1" if self.deleted else "0",
            "applied_at": f"{self.applied_at:.3f}",
        }
        if self.extra is not None:
            data["extra"] = self.extra
        return data

    @classmethod
    def from_mapping(cls, data: dict[str, str]) -> LedgerEntry:
        return cls(
            fingerprint=data.get("fingerprint", ""),
            source_version=int(data.get("source_version", "0") or 0),
            target_id=data.get("target_id") or None,
            deleted=data.get("deleted") == "1",
            applied_at=float(data.get("applied_at", "0") or 0),
            extra=data.get("extra"),
        )


def pending_id(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """(target, delivery id) of a delivery as stored or sent (a dict); None for a batch.

    :attr:`erpsync.events.Delivery.delivery_id` without validating the whole delivery.
    """
    event, target = payload.get("event"), payload.get("target")
    if not isinstance(event, Mapping) or not isinstance(target, str):
        return None
    event_id, version = event.get("event_id"), event.get("source_version")
    if not isinstance(event_id, str) or not isinstance(version, int):
        return None
    return target, f"{event_id}.{version}"


def queue_script(pipe: Any, script: Script, keys: list[str], args: list[Any]) -> None:
    """Queue a Lua script on a pipeline as EVAL of its text.

    redis-py checks every registered script of a pipeline with SCRIPT EXISTS before sending
    it, one more round trip per pipeline; the text costs a few hundred bytes instead, and
    Redis compiles it once (its script cache is keyed by the text's digest).
    """
    pipe.eval(script.script, len(keys), *keys, *args)


def _ttl_ms(ttl_s: float) -> int:
    return max(1, int(ttl_s * 1000))


def _holder() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Start:
    """What :meth:`State.start` found in its one round trip."""

    #: the target's circuit ``state`` field (None: the target has no circuit record)
    circuit_state: str | None
    #: the record lock's token when it was taken, else None
    token: str | None
    #: who held the lock when it was not taken
    holder: str | None
    #: the record's ledger, read under the lock (None when not taken, or no ledger yet)
    ledger: LedgerEntry | None


class State:
    """Typed access to erpsync's Redis state."""

    def __init__(self, client: redis.Redis, keys: Keys, *, outcome_ttl_s: int = 14 * 86400) -> None:
        self.redis = client
        self.keys = keys
        self.outcome_ttl_s = outcome_ttl_s
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)
        self._recover = client.register_script(_RECOVER)
        self._outcome = client.register_script(_OUTCOME)
        self._swap = client.register_script(_SWAP)
        self._forget = client.register_script(_FORGET)
        self._produced = client.register_script(_PRODUCED)
        self._applied_many = client.register_script(_APPLIED_MANY)
        self._done = client.register_script(_DONE)
        self._overdue = client.register_script(_OVERDUE)

    # -- ledger -----------------------------------------------------------------------
    def pipeline(self) -> Any:
        """A pipeline (no transaction) to queue several of these writes on, in one round trip
        (the ``client=`` of the calls that take one); sent by ``execute()``."""
        return self.redis.pipeline(transaction=False)

    def ledger_get(self, target: str, entity: str, key: str) -> LedgerEntry | None:
        data: dict[str, str] = self.redis.hgetall(self.keys.ledger(target, entity, key))  # type: ignore[assignment]
        return LedgerEntry.from_mapping(data) if data else None

    def ledger_put(
        self, target: str, entity: str, key: str, entry: LedgerEntry, *, client: Any = None
    ) -> None:
        """Write the ledger (``client``: a pipeline to queue the write on)."""
        target_client: Any = self.redis if client is None else client
        target_client.hset(self.keys.ledger(target, entity, key), mapping=entry.to_mapping())

    def claim_target_id(self, target: str, entity: str, target_id: str, key: str) -> str | None:
        """Claim ``target_id`` for ``key``: None when it is ``key``'s (now or already),
        else the other source key it belongs to.

        The first record a target answered with that id holds it (``HSETNX``, so two
        records answered at once cannot both win). A holder whose ledger has since moved
        to another id gives it up (the record was re-created elsewhere); a holder whose
        ledger names it, or is not written yet (its delivery still running), keeps it.
        """
        owners = self.keys.owners(target, entity)
        if self.redis.hsetnx(owners, target_id, key):
            return None
        holder = self.redis.hget(owners, target_id)
        if holder is None or str(holder) == key:
            return None
        ledger = self.ledger_get(target, entity, str(holder))
        if ledger is not None and ledger.target_id and ledger.target_id != target_id:
            self.redis.hset(owners, target_id, key)
            return None
        return str(holder)

    # -- one delivery's round trips ---------------------------------------------------
    def start(
        self,
        target: str,
        entity: str,
        key: str,
        delivery_id: str,
        *,
        now: float,
        lock_ttl_s: float,
    ) -> Start:
        """Mark a delivery in flight (and seen moving, when pending), read its target's
        circuit, take its record's lock and read its ledger under the lock, in one round trip.

        Commands of a pipeline run in order, so the ledger is read after the lock is taken;
        when the lock was not taken, the ledger read is ignored.
        """
        lock_key = self.keys.record_lock(target, entity, key)
        token = _holder()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys.inflight(target), delivery_id, f"{now:.3f}")
            pipe.zadd(self.keys.pending(target), {delivery_id: now}, xx=True)
            pipe.hget(self.keys.circuit(target), "state")
            pipe.set(lock_key, token, nx=True, px=_ttl_ms(lock_ttl_s))
            pipe.hgetall(self.keys.ledger(target, entity, key))
            pipe.get(lock_key)
            _, _, circuit_state, taken, ledger, holder = pipe.execute()
        if not taken:
            return Start(circuit_state, None, holder, None)
        return Start(
            circuit_state, token, None, LedgerEntry.from_mapping(ledger) if ledger else None
        )

    def end(
        self, target: str, delivery_id: str, lock_key: str, token: str | None, *, client: Any = None
    ) -> None:
        """Release the record's lock (when held) and clear the in-flight mark: what
        :meth:`start` took, given back in one round trip (or queued on ``client``)."""
        if client is None:
            with self.redis.pipeline(transaction=False) as pipe:
                self.end(target, delivery_id, lock_key, token, client=pipe)
                pipe.execute()
            return
        if token is not None:
            queue_script(client, self._release, [lock_key], [token])
        client.hdel(self.keys.inflight(target), delivery_id)

    # -- locks ------------------------------------------------------------------------
    def acquire(self, lock_key: str, ttl_s: float) -> str | None:
        """Take a lock; returns its token, or None when another live holder has it."""
        token = _holder()
        if self.redis.set(lock_key, token, nx=True, px=_ttl_ms(ttl_s)):
            return token
        current = self.redis.get(lock_key)
        return self.take_over(lock_key, current, ttl_s)

    def take_over(self, lock_key: str, current: Any, ttl_s: float) -> str | None:
        """Take a lock held by ``current`` if that holder is a dead process of this host."""
        token = _holder()
        # Compare-and-swap: only a dead holder's token is replaced.
        if (
            isinstance(current, str)
            and _holder_is_dead(current)
            and self._swap(keys=[lock_key], args=[current, token, _ttl_ms(ttl_s)])
        ):
            return token
        return None

    def release(self, lock_key: str, token: str, *, patience_s: float = 15.0) -> None:
        """Give a lock back; through a Redis restart, tried again for up to ``patience_s``.

        A lock whose release is lost stays taken until its TTL: a producer's stream lock
        (5 minutes) would stop that stream's polls for as long, though its holder lives on.
        """
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self._release(keys=[lock_key], args=[token])
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
            else:
                return

    def acquire_many(self, lock_keys: list[str], ttl_s: float) -> list[str | None]:
        """:meth:`acquire` for many locks (a batch's records) in one round trip.

        A lock held by a dead process of this host is taken over as :meth:`acquire` does
        (one more round trip each, rare).
        """
        tokens = [_holder() for _ in lock_keys]
        ttl_ms = _ttl_ms(ttl_s)
        with self.redis.pipeline(transaction=False) as pipe:
            for lock_key, token in zip(lock_keys, tokens, strict=True):
                pipe.set(lock_key, token, nx=True, px=ttl_ms)
                pipe.get(lock_key)
            answers = pipe.execute()
        taken: list[str | None] = []
        for i, (lock_key, token) in enumerate(zip(lock_keys, tokens, strict=True)):
            if answers[2 * i]:
                taken.append(token)
            else:
                taken.append(self.take_over(lock_key, answers[2 * i + 1], ttl_s))
        return taken

    def release_many(self, held: Iterable[tuple[str, str]]) -> None:
        """:meth:`release` for many (lock key, token) pairs in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for lock_key, token in held:
                queue_script(pipe, self._release, [lock_key], [token])
            pipe.execute()

    # -- delayed set ------------------------------------------------------------------
    def schedule(self, payload: dict[str, Any], due_at: float) -> None:
        """Park a delivery (or a batch) until ``due_at`` (epoch seconds).

        A pending delivery is marked seen moving at ``due_at``, after it is parked: its
        lease runs from when it is due.
        """
        member = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        pending = pending_id(payload)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.delayed(), {member: due_at})
            if pending is not None:
                pipe.zadd(self.keys.pending(pending[0]), {pending[1]: due_at}, xx=True)
            pipe.execute()

    def claim_due(self, *, now: float | None = None, limit: int = 500) -> list[str]:
        """Take due deliveries into the claimed set (scored ``now``, the claim's time);
        re-publish each, then :meth:`done`."""
        now = time.time() if now is None else now
        claimed: list[str] = self._claim(
            keys=[self.keys.delayed(), self.keys.delayed_claimed()], args=[now, limit, now]
        )
        return claimed

    def done(self, members: list[str], *, claimed_at: float | None = None) -> None:
        """Forget claimed deliveries once they are back on their queue.

        With ``claimed_at`` (the ``now`` of :meth:`claim_due`), only members still claimed
        then: the same content parked again and claimed by another pump meanwhile stays
        claimed until that pump is done with it (or its claim is recovered).
        """
        if not members:
            return
        if claimed_at is None:
            self.redis.zrem(self.keys.delayed_claimed(), *members)
        else:
            self._done(keys=[self.keys.delayed_claimed()], args=[claimed_at, *members])

    def recover_claims(self, *, older_than_s: float = 60.0, now: float | None = None) -> int:
        """Put back claims a dead pump never re-published; returns how many."""
        now = time.time() if now is None else now
        result: int = self._recover(
            keys=[self.keys.delayed(), self.keys.delayed_claimed()], args=[now - older_than_s, now]
        )
        return result

    def delayed_count(self) -> int:
        total: int = self.redis.zcard(self.keys.delayed())
        claimed: int = self.redis.zcard(self.keys.delayed_claimed())
        return total + claimed

    # -- pending deliveries -----------------------------------------------------------
    def register(
        self, sent: Iterable[tuple[str, str, str]], *, now: float, client: Any = None
    ) -> None:
        """Record deliveries as pending, seen moving ``now``: (target, delivery id, JSON).

        Called before they are sent (``client``: a pipeline to queue the writes on).
        """
        if client is None:
            with self.redis.pipeline(transaction=False) as pipe:
                self.register(sent, now=now, client=pipe)
                pipe.execute()
            return
        payloads: dict[str, dict[str, str]] = {}
        for target, delivery_id, payload in sent:
            payloads.setdefault(target, {})[delivery_id] = payload
        for target, mapping in payloads.items():
            client.hset(self.keys.pending_payload(target), mapping=mapping)
            client.zadd(self.keys.pending(target), dict.fromkeys(mapping, now))

    def touch(self, pending: Iterable[tuple[str, str]], *, now: float) -> None:
        """Mark pending deliveries (target, delivery id) seen moving ``now`` (a batch sent
        back or started); one that is not pending (already at its outcome) stays so."""
        by_target: dict[str, list[str]] = {}
        for target, delivery_id in pending:
            by_target.setdefault(target, []).append(delivery_id)
        if not by_target:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for target, ids in by_target.items():
                pipe.zadd(self.keys.pending(target), dict.fromkeys(ids, now), xx=True)
            pipe.execute()

    def settle(self, client: Any, target: str, delivery_id: str) -> None:
        """Queue on ``client``: the delivery reached its outcome, it is pending no more."""
        client.zrem(self.keys.pending(target), delivery_id)
        client.hdel(self.keys.pending_payload(target), delivery_id)

    def claim_overdue(
        self, target: str, seen_before: float, *, now: float, limit: int = 500
    ) -> list[str]:
        """Pending deliveries of ``target`` last seen moving at or before ``seen_before``,
        marked seen ``now`` (so they are taken once per lease); returns their JSON."""
        found: list[str] = self._overdue(
            keys=[self.keys.pending(target), self.keys.pending_payload(target)],
            args=[seen_before, limit, now],
        )
        return found

    def pending_count(self, target: str) -> int:
        count: int = self.redis.zcard(self.keys.pending(target))
        return count

    # -- accounting -------------------------------------------------------------------
    def mark_produced(self, target: str, delivery_id: str, *, flow: str | None = None) -> bool:
        """Count a delivery as produced, once; False when it already was."""
        extra = [f"{flow}.produced"] if flow else []
        counted = self._outcome(
            keys=[self.keys.produced_marker(target, delivery_id), self.keys.counters(target)],
            args=["produced", self.outcome_ttl_s, *extra],
        )
        return bool(counted)

    def mark_produced_many(self, deliveries: Iterable[tuple[str, str, str | None]]) -> int:
        """:meth:`mark_produced` for each (target, delivery id, flow), one call per 500.

        Returns how many were counted now (the others already were).
        """
        counted = 0
        batch: list[tuple[str, str, str | None]] = []
        for item in [*deliveries, None]:
            if item is not None:
                batch.append(item)
            if batch and (item is None or len(batch) >= 500):
                keys: list[str] = []
                fields: list[str] = []
                for target, delivery_id, flow in batch:
                    keys += [
                        self.keys.produced_marker(target, delivery_id),
                        self.keys.counters(target),
                    ]
                    fields.append(f"{flow}.produced" if flow else "")
                counted += int(self._produced(keys=keys, args=[self.outcome_ttl_s, *fields]))
                batch = []
        return counted

    def record_outcome(
        self, target: str, delivery_id: str, outcome: Outcome, *, also: tuple[str, ...] = ()
    ) -> bool:
        """Count a delivery's final outcome, once; False when it already had one. Either
        way the delivery is pending no more.

        ``also`` names further counters bumped with it, only when it is counted.
        """
        with self.redis.pipeline(transaction=False) as pipe:
            self.queue_outcome(pipe, target, delivery_id, outcome, also=also)
            counted = pipe.execute()[0]
        return bool(counted)

    def queue_outcome(
        self,
        client: Any,
        target: str,
        delivery_id: str,
        outcome: Outcome,
        *,
        also: tuple[str, ...] = (),
    ) -> None:
        """:meth:`record_outcome`, queued on a pipeline (whether it counted is not told)."""
        queue_script(
            client,
            self._outcome,
            [self.keys.delivery_outcome(target, delivery_id), self.keys.counters(target)],
            [outcome, self.outcome_ttl_s, *also],
        )
        self.settle(client, target, delivery_id)

    def record_applied_many(
        self,
        target: str,
        applied: Sequence[tuple[str, str, str, LedgerEntry, tuple[str, ...]]],
    ) -> int:
        """For each (delivery id, entity, key, ledger entry, further counters) of ``target``:
        :meth:`ledger_put` and :meth:`queue_outcome` ("applied"), in one call (bulk calls).

        Returns how many outcomes were counted now (the others already were).
        """
        if not applied:
            return 0
        keys = [
            self.keys.counters(target),
            self.keys.pending(target),
            self.keys.pending_payload(target),
        ]
        items: list[list[Any]] = []
        for delivery_id, entity, key, entry, also in applied:
            keys.append(self.keys.ledger(target, entity, key))
            keys.append(self.keys.delivery_outcome(target, delivery_id))
            pairs = [part for pair in entry.to_mapping().items() for part in pair]
            items.append([delivery_id, pairs, list(also)])
        counted = self._applied_many(keys=keys, args=[self.outcome_ttl_s, json.dumps(items)])
        return int(counted)

    def forget_outcome(
        self, target: str, delivery_id: str, outcome: Outcome, *, flow: str | None = None
    ) -> bool:
        """Undo a counted outcome (a dead letter being replayed); True when there was one."""
        key = self.keys.delivery_outcome(target, delivery_id)
        extra = [f"{flow}.{outcome}"] if flow else []
        undone = self._forget(keys=[key, self.keys.counters(target)], args=[outcome, *extra])
        return bool(undone)

    def outcomes_of(self, deliveries: Sequence[tuple[str, str]]) -> list[str | None]:
        """The outcome counted for each (target, delivery id), None where none is yet."""
        keys = [self.keys.delivery_outcome(target, d) for target, d in deliveries]
        found: list[str | None] = self.redis.mget(keys) if keys else []  # type: ignore[assignment]
        return found

    def incr(self, target: str, counter: str, amount: int = 1) -> None:
        """Bump a plain counter (retries, waits, parks, circuit openings...)."""
        self.redis.hincrby(self.keys.counters(target), counter, amount)

    def counters(self, target: str) -> dict[str, int]:
        raw: dict[str, str] = self.redis.hgetall(self.keys.counters(target))  # type: ignore[assignment]
        return {name: int(value) for name, value in raw.items()}

    # -- producers --------------------------------------------------------------------
    def next_versions(self, source: str, entity: str, count: int) -> int:
        """Reserve ``count`` source versions; returns the first of them."""
        last: int = self.redis.incrby(self.keys.sequence(source, entity), count)
        return last - count + 1

    def set_latest(self, source: str, entity: str, versions: dict[str, int]) -> None:
        """Record the newest version produced per key (replay skips superseded entries)."""
        if versions:
            self.redis.hset(self.keys.latest(source, entity), mapping=versions)  # type: ignore[arg-type]

    def latest(self, source: str, entity: str, key: str) -> int | None:
        value = self.redis.hget(self.keys.latest(source, entity), key)
        return int(value) if isinstance(value, str | bytes) else None
