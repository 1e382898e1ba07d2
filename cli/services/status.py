"""What ``erpsync status`` shows: per flow and per target, read from Redis only.

``queue_depth`` counts the broker's messages (exact); ``queued_deliveries`` the deliveries
in them (a batch message carries several), exact when ``lag_exact``.

Per flow: the last poll of its stream and its counts (the producer's ``stream_state``), the
cursor or snapshot size, its dead letters and waiting deliveries per target, and its last
reconcile (``erpsync reconcile`` or the producer's periodic one): counts per target. Per target:
queue depth, deliveries reserved by workers, in flight, scheduled (the delayed set), lag,
dead letters by code, circuit state and the outcome counters.

**Lag** is the age of the oldest change not yet applied: the oldest ``detected_at`` among
the target's deliveries waiting in its queue, reserved by a worker (kombu's ``unacked``
hash: in flight deliveries are there too, with ``acks_late``) or parked in the delayed set.

The queue of a target is the Redis list ``<key_prefix>:sync.<target>`` (kombu's
``global_keyprefix`` is ``<key_prefix>:``; priorities other than 0 live in lists suffixed
``\\x06\\x16<priority>``). Each message is kombu's JSON envelope; its ``body`` (base64 when
``properties.body_encoding`` says so) is Celery's protocol-2 ``[args, kwargs, embed]``,
whose first argument is the delivery.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from erpsync.settings import FlowSettings, Settings
from state.broker import deliveries_of_message, queue_keys, unacked_key
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit
from state.messages import queue_for
from state.reconciled import reconcile_summary
from state.store import State

#: messages examined per queue for the lag (depth is always exact)
QUEUE_SCAN_LIMIT = 20_000


def _detected_at(delivery: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(delivery["event"]["detected_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class _Waiting:
    """Deliveries of one target not yet applied, and the oldest change among them."""

    count: int = 0
    oldest: float | None = None
    by_flow: dict[str, int] = field(default_factory=dict)
    oldest_by_flow: dict[str, float] = field(default_factory=dict)

    def add(self, delivery: dict[str, Any]) -> None:
        self.count += 1
        flow = str((delivery.get("event") or {}).get("flow", "?"))
        self.by_flow[flow] = self.by_flow.get(flow, 0) + 1
        seen = _detected_at(delivery)
        if seen is not None:
            if self.oldest is None or seen < self.oldest:
                self.oldest = seen
            if flow not in self.oldest_by_flow or seen < self.oldest_by_flow[flow]:
                self.oldest_by_flow[flow] = seen

    def merge_oldest(self, other: _Waiting) -> None:
        for flow, seen in other.oldest_by_flow.items():
            if flow not in self.oldest_by_flow or seen < self.oldest_by_flow[flow]:
                self.oldest_by_flow[flow] = seen
        if other.oldest is not None and (self.oldest is None or other.oldest < self.oldest):
            self.oldest = other.oldest


def _lag(oldest: float | None, now: float) -> float:
    return round(max(0.0, now - oldest), 3) if oldest is not None else 0.0


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


class StatusReader:
    """Gathers the status of an installation from its Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        queue_scan_limit: int = QUEUE_SCAN_LIMIT,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.queue_scan_limit = queue_scan_limit
        self.state = State(client, keys)
        self.circuit = Circuit(client, keys)
        self.dlq = DeadLetterStore(client, keys)

    # -- the pieces ---------------------------------------------------------------------
    def queue(self, target: str) -> tuple[int, _Waiting, bool]:
        """(messages, the deliveries of the scanned messages, whether all were scanned)."""
        depth = 0
        waiting = _Waiting()
        complete = True
        budget = self.queue_scan_limit
        for key in queue_keys(self.keys, target):
            length = int(self.redis.llen(key))
            depth += length
            if not length:
                continue
            # kombu LPUSHes and BRPOPs: the oldest messages are at the tail.
            take = min(length, budget)
            complete = complete and take == length
            budget -= take
            for start in range(-take, 0, 1000):
                stop = min(start + 999, -1)
                for raw in self.redis.lrange(key, start, stop) or []:
                    for delivery in deliveries_of_message(raw):
                        waiting.add(delivery)
        return depth, waiting, complete

    def reserved(self) -> dict[str, _Waiting]:
        """Per target: messages a worker took but has not acknowledged yet."""
        out: dict[str, _Waiting] = {}
        for _, value in self.redis.hscan_iter(unacked_key(self.keys), count=1000):
            try:
                message, _exchange, routing_key = json.loads(value)
            except (ValueError, TypeError):
                continue
            for delivery in deliveries_of_message(json.dumps(message)):
                target = str(delivery.get("target") or str(routing_key).removeprefix("sync."))
                out.setdefault(target, _Waiting()).add(delivery)
        return out

    def scheduled(self) -> dict[str, _Waiting]:
        """Per target: deliveries parked in the delayed set (retries, waits, open circuit)."""
        out: dict[str, _Waiting] = {}
        for key in (self.keys.delayed(), self.keys.delayed_claimed()):
            for member, _score in self.redis.zscan_iter(key, count=1000):
                try:
                    delivery = json.loads(member)
                except ValueError:
                    continue
                if isinstance(delivery, dict):
                    out.setdefault(str(delivery.get("target")), _Waiting()).add(delivery)
        return out

    def dead_letters(self) -> dict[str, dict[str, dict[str, int]]]:
        """Dead letters per target, flow and code."""
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for entry in self.dlq.iter_entries():
            per_flow = counts.setdefault(entry.target, {}).setdefault(entry.flow, {})
            per_flow[entry.code] = per_flow.get(entry.code, 0) + 1
        return counts

    def stream(self, source: str, entity: str, now: float | None = None) -> dict[str, Any]:
        """The producer's record of the last poll of a stream."""
        raw: dict[str, str] = self.redis.hgetall(self.keys.stream_state(source, entity))  # type: ignore[assignment]

        def number(name: str) -> float | None:
            value = raw.get(name)
            try:
                return float(value) if value else None
            except ValueError:
                return None

        def count(name: str) -> int | None:
            value = number(name)
            return int(value) if value is not None else None

        cursor_raw = self.redis.get(self.keys.cursor(source, entity))
        cursor: Any = None
        if cursor_raw is not None:
            try:
                cursor = json.loads(cursor_raw)
            except ValueError:
                cursor = str(cursor_raw)
        return {
            "name": f"{source}.{entity}",
            "last_poll_started": _iso(number("last_poll_started")),
            "last_poll_finished": _iso(number("last_poll_finished")),
            "last_poll_age_s": (
                round((time.time() if now is None else now) - finished, 1)
                if (finished := number("last_poll_finished")) is not None
                else None
            ),
            "last_records": count("last_records"),
            "last_changed": count("last_changed"),
            "last_deleted": count("last_deleted"),
            "last_duration_s": number("last_duration_s"),
            "last_error": raw.get("last_error") or None,
            "last_error_at": _iso(number("last_error_at")),
            "cursor": cursor,
            "snapshot_records": int(self.redis.hlen(self.keys.snapshot(source, entity))),
        }

    def reconcile(self, flow: str, now: float | None = None) -> dict[str, Any] | None:
        """The flow's last reconcile: when, how long, counts per target (None: never ran)."""
        summary = reconcile_summary(self.redis, self.keys, flow)
        if summary is None:
            return None
        finished = summary.get("finished_at")
        at = float(finished) if isinstance(finished, int | float) else None
        return {
            "finished_at": _iso(at),
            "age_s": (
                round((time.time() if now is None else now) - at, 1) if at is not None else None
            ),
            "duration_s": summary.get("duration_s"),
            "source_records": summary.get("source_records"),
            "error": summary.get("error"),
            "targets": summary.get("targets") or {},
        }

    # -- everything ---------------------------------------------------------------------
    def invoices(self, settings: Settings) -> dict[str, int] | None:
        """The billing round trip's totals: ERP invoices issued (billing flows), recorded in
        Atollon, and Atollon invoices paid, partly paid, cancelled (invoice flows); None when
        no flow bills."""
        billing = [n for n, f in settings.flows.items() if f.entity == "billing"]
        states = [n for n, f in settings.flows.items() if f.entity == "invoice"]
        if not billing and not states:
            return None
        erp = self.state.counters("onlineerp") if billing else {}
        atollon = self.state.counters("atollon") if states else {}

        def total(counters: dict[str, int], flows: list[str], name: str) -> int:
            return sum(counters.get(f"{flow}.{name}", 0) for flow in flows)

        return {
            "issued": total(erp, billing, "action_invoiced"),
            "recorded_in_atollon": total(erp, billing, "invoice_recorded"),
            "paid": total(atollon, states, "invoice_paid"),
            "partly_paid": total(atollon, states, "invoice_partly_paid"),
            "cancelled": total(atollon, states, "invoice_cancelled"),
        }

    def gather(self, settings: Settings, *, now: float | None = None) -> dict[str, Any]:
        """The whole status as JSON-ready data (``erpsync status --json``)."""
        now = time.time() if now is None else now
        dead = self.dead_letters()
        reserved = self.reserved()
        scheduled = self.scheduled()
        flow_targets = {t for flow in settings.flows.values() for t in flow.targets}
        targets = sorted(flow_targets | set(dead))
        target_rows: list[dict[str, Any]] = []
        waiting_by_target: dict[str, tuple[_Waiting, _Waiting, _Waiting]] = {}
        for target in targets:
            depth, queued, complete = self.queue(target)
            held = reserved.get(target, _Waiting())
            parked = scheduled.get(target, _Waiting())
            waiting_by_target[target] = (queued, held, parked)
            target_rows.append(
                self._target_row(
                    target,
                    (target in flow_targets, depth, complete),
                    (queued, held, parked),
                    dead.get(target, {}),
                    now,
                )
            )
        flow_rows = [
            self._flow_row(name, flow, waiting_by_target, dead, now)
            for name, flow in settings.flows.items()
        ]
        return {
            "generated_at": _iso(now),
            "key_prefix": self.keys.prefix,
            "workers": sorted(str(w) for w in self.redis.hkeys(self.keys.workers())),
            "flows": flow_rows,
            "targets": target_rows,
            "dlq_total": self.dlq.count(),
            "invoices": self.invoices(settings),
        }

    def _target_row(
        self,
        target: str,
        queue: tuple[bool, int, bool],
        waiting: tuple[_Waiting, _Waiting, _Waiting],
        dead: dict[str, dict[str, int]],
        now: float,
    ) -> dict[str, Any]:
        """One target: what waits (queued, reserved, parked), its lag, DLQ, circuit, counters.

        ``queue``: whether a flow names the target, its queue's depth, whether the lag is
        exact (every queued message read).
        """
        configured, depth, complete = queue
        queued, held, parked = waiting
        oldest = _Waiting()
        for part in waiting:
            oldest.merge_oldest(part)
        by_code: dict[str, int] = {}
        for per_flow in dead.values():
            for code, n in per_flow.items():
                by_code[code] = by_code.get(code, 0) + n
        return {
            "name": target,
            "configured": configured,
            "queue": queue_for(target),
            "queue_depth": depth,
            "queued_deliveries": queued.count,
            "reserved": held.count,
            "in_flight": int(self.redis.hlen(self.keys.inflight(target))),
            "scheduled_retries": parked.count,
            "lag_s": _lag(oldest.oldest, now),
            "oldest_unapplied_at": _iso(oldest.oldest),
            "lag_exact": complete,
            "dlq": dict(sorted(by_code.items())),
            "dlq_total": sum(by_code.values()),
            "circuit": self.circuit.status(target).as_dict(),
            "counters": dict(sorted(self.state.counters(target).items())),
        }

    def _flow_row(
        self,
        name: str,
        flow: FlowSettings,
        waiting_by_target: dict[str, tuple[_Waiting, _Waiting, _Waiting]],
        dead: dict[str, dict[str, dict[str, int]]],
        now: float,
    ) -> dict[str, Any]:
        """One flow: per target what of it waits and its lag and DLQ; its stream, reconcile."""
        per_target: dict[str, Any] = {}
        for target in flow.targets:
            queued, held, parked = waiting_by_target.get(
                target, (_Waiting(), _Waiting(), _Waiting())
            )
            flow_oldest = min(
                (
                    w.oldest_by_flow[name]
                    for w in (queued, held, parked)
                    if name in w.oldest_by_flow
                ),
                default=None,
            )
            codes = dead.get(target, {}).get(name, {})
            per_target[target] = {
                "queued": queued.by_flow.get(name, 0),
                "reserved": held.by_flow.get(name, 0),
                "scheduled_retries": parked.by_flow.get(name, 0),
                "lag_s": _lag(flow_oldest, now),
                "dlq": dict(sorted(codes.items())),
                "dlq_total": sum(codes.values()),
            }
        return {
            "name": name,
            "enabled": flow.enabled,
            "source": flow.source,
            "entity": flow.entity,
            "targets": per_target,
            "stream": self.stream(flow.source, flow.entity, now),
            "reconcile": self.reconcile(name, now),
        }


def gather_status(
    settings: Settings, client: redis.Redis, *, now: float | None = None
) -> dict[str, Any]:
    """The status of the installation ``settings`` describe."""
    return StatusReader(client, Keys(settings.key_prefix)).gather(settings, now=now)
