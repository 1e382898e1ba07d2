"""Every Redis key erpsync uses, in one place.

All keys start with the configured prefix (``key_prefix``, default ``erpsync``) so that
several installations, or test runs, share a Redis without meeting. Celery's own broker keys
get the same prefix through kombu's ``global_keyprefix``. The record keys the ledger, locks
and dead letters are built from are namespaced by source (:mod:`erpsync.keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True)
class Keys:
    """Key builder for one prefix."""

    prefix: str = "erpsync"

    # -- producers --------------------------------------------------------------------
    def snapshot(self, source: str, entity: str) -> str:
        """Hash: source key -> fingerprint of the last state enqueued (snapshot streams)."""
        return f"{self.prefix}:snapshot:{source}:{entity}"

    def cursor(self, source: str, entity: str) -> str:
        """String: the bookmark of a cursor stream (JSON)."""
        return f"{self.prefix}:cursor:{source}:{entity}"

    def stream_state(self, source: str, entity: str) -> str:
        """Hash: last poll time, last poll's counts, errors (for ``erpsync status``)."""
        return f"{self.prefix}:stream:{source}:{entity}"

    def sequence(self, source: str, entity: str) -> str:
        """Counter: the source version handed to each detected change (monotonic)."""
        return f"{self.prefix}:seq:{source}:{entity}"

    def stream_lock(self, source: str, entity: str) -> str:
        """Lock: one producer polls a stream at a time."""
        return f"{self.prefix}:lock:stream:{source}:{entity}"

    # -- workers ----------------------------------------------------------------------
    def ledger(self, target: str, entity: str, key: str) -> str:
        """Hash: what was last applied to a target for one record (fingerprint, version, id)."""
        return f"{self.prefix}:ledger:{target}:{entity}:{key}"

    def owners(self, target: str, entity: str) -> str:
        """Hash: a target's record id -> the source key it was first answered for (the
        Atollon sink claims its contact ids here to catch two customers merged by name)."""
        return f"{self.prefix}:owners:{target}:{entity}"

    def ledger_pattern(self, target: str, entity: str) -> str:
        return f"{self.prefix}:ledger:{target}:{entity}:*"

    def record_lock(self, target: str, entity: str, key: str) -> str:
        """Lock: one event of a record is applied to a target at a time."""
        return f"{self.prefix}:lock:rec:{target}:{entity}:{key}"

    def latest(self, source: str, entity: str) -> str:
        """Hash: source key -> newest source version produced (supersession on replay)."""
        return f"{self.prefix}:latest:{source}:{entity}"

    def delayed(self) -> str:
        """Sorted set: deliveries waiting for their due time (score = due epoch seconds)."""
        return f"{self.prefix}:delayed"

    def delayed_claimed(self) -> str:
        """Sorted set: deliveries taken from ``delayed`` but not yet re-published."""
        return f"{self.prefix}:delayed:claimed"

    def delivery_outcome(self, target: str, delivery_id: str) -> str:
        """String: the final outcome of one delivery (so it is counted once)."""
        return f"{self.prefix}:outcome:{target}:{delivery_id}"

    def produced_marker(self, target: str, delivery_id: str) -> str:
        """String: this delivery was counted as produced."""
        return f"{self.prefix}:produced:{target}:{delivery_id}"

    def counters(self, target: str) -> str:
        """Hash: produced / applied / skipped / dead_lettered / retried ... per target."""
        return f"{self.prefix}:counters:{target}"

    def inflight(self, target: str) -> str:
        """Hash: delivery id -> start time of deliveries being applied now."""
        return f"{self.prefix}:inflight:{target}"

    def pending(self, target: str) -> str:
        """Sorted set: delivery id -> when a delivery not yet at its outcome was last seen
        moving (sent, started, parked until); see :meth:`state.store.State.register`."""
        return f"{self.prefix}:pending:{target}"

    def pending_payload(self, target: str) -> str:
        """Hash: delivery id -> the delivery (JSON) of each :meth:`pending` member."""
        return f"{self.prefix}:pending:{target}:payload"

    def workers(self) -> str:
        """Hash: worker hostname -> time it became ready."""
        return f"{self.prefix}:workers"

    def worker_lease(self, worker: str) -> str:
        """String (JSON, expires with the lease): what a live worker holds, renewed by it
        (``{"at": epoch s, "held": {delivery tag: task id}}``; see state.leases)."""
        return f"{self.prefix}:lease:worker:{worker}"

    def reclaim_lock(self) -> str:
        """Lock: one worker at a time puts back messages whose lease lapsed."""
        return f"{self.prefix}:lock:reclaim"

    def create_in_doubt(self, target: str, entity: str, key: str) -> str:
        """String (expires): a create of this record whose answer never came may still land
        in the target (targets without a unique key: HIPE); see state.leases."""
        return f"{self.prefix}:doubt:{target}:{entity}:{key}"

    def restarted(self) -> str:
        """List: "<task id> <epoch s>" each time a message given back (reclaimed, restored)
        started again, the latest 100,000 (recovery times: the chaos run, the tests)."""
        return f"{self.prefix}:restarted"

    def circuit(self, target: str) -> str:
        """Hash: circuit state of a target (state, until, reason, failures)."""
        return f"{self.prefix}:circuit:{target}"

    def rate(self, target: str) -> str:
        """Hash: token bucket shared by every worker of a target."""
        return f"{self.prefix}:rate:{target}"

    # -- dead letters -----------------------------------------------------------------
    def dlq_entry(self, entry_id: str) -> str:
        """String: one dead-letter entry (JSON)."""
        return f"{self.prefix}:dlq:entry:{entry_id}"

    def dlq_index(self) -> str:
        """Sorted set: every dead-letter entry id by last failure time."""
        return f"{self.prefix}:dlq:index"

    def dlq_by_target_code(self, target: str, code: str) -> str:
        """Sorted set: entry ids of one target and error code."""
        return f"{self.prefix}:dlq:{target}:{code}"

    def dlq_audit(self) -> str:
        """Stream: every operator action on dead letters."""
        return f"{self.prefix}:dlq:audit"

    # -- trace ------------------------------------------------------------------------
    def trace(self, flow: str, key: str) -> str:
        """List (JSON events, newest last, bounded, expires): one record's story
        (see state.trace)."""
        return f"{self.prefix}:trace:{flow}:{key}"

    def console_history(self) -> str:
        """List (JSON samples, newest last, the last hour): the console's live graph."""
        return f"{self.prefix}:console:history"

    # -- going live (state.adoption) --------------------------------------------------
    def adoption(self, flow: str, target: str) -> str:
        """Hash: source key -> what the first run does with that record (JSON; adopt,
        create, ambiguous), as ``erpsync plan`` decided it."""
        return f"{self.prefix}:adopt:{flow}:{target}"

    def adoption_prepared(self, flow: str, target: str) -> str:
        """String: the flow's adoption table for this target is prepared (before its first run)."""
        return f"{self.prefix}:adopt-prepared:{flow}:{target}"

    # -- reconcile --------------------------------------------------------------------
    def reconcile_last(self, flow: str) -> str:
        """String: the last reconcile of a flow (JSON: its report, and counts per target)."""
        return f"{self.prefix}:reconcile:{flow}"

    # -- stored batches (state.batches) -----------------------------------------------
    def batch(self, ref: str) -> str:
        """String: one stored batch's deliveries (JSON)."""
        return f"{self.prefix}:batch:{ref}"

    def bulk_pending(self) -> str:
        """Hash: (target, entity, key) of a record in a stored batch -> that batch's ref
        (followed by `` parked`` for a batch parked in the delayed set)."""
        return f"{self.prefix}:bulk-pending"

    def bulk_pending_fields(self, ref: str) -> str:
        """String: one stored batch's index value, then its fields (JSON), to forget them."""
        return f"{self.prefix}:bulk-pending:{ref}"

    # -- the broker (kombu's Redis transport, under its global_keyprefix) --------------
    def queue(self, queue: str) -> str:
        """List: a queue's messages (priority 0; see :func:`state.broker.queue_keys`)."""
        return f"{self.prefix}:{queue}"

    def unacked(self) -> str:
        """Hash: kombu's messages delivered to a worker and not yet acknowledged."""
        return f"{self.prefix}:unacked"

    def unacked_mutex(self) -> str:
        """String: kombu's lock over one pass restoring unacknowledged messages."""
        return f"{self.prefix}:unacked_mutex"

    def dlq_prefix(self) -> str:
        """The start of every dead-letter key (the per target and code indexes among them)."""
        return f"{self.prefix}:dlq:"
