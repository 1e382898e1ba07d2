"""``erpsync reconcile --repair``: one forced delivery per drifting record, and its outcomes.

The deliveries go through the normal pipeline (:func:`state.publish.publish`: ledger,
locks, rate limit, circuit, dead letters); the force passes the ledger's "already applied"
check only. Duplicates are listed with an operator hint, never touched.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from erpsync.events import ChangeEvent, Content, Delivery
from erpsync.models import parent_field
from producers.base import Producer, SnapshotStream
from producers.reconcile import DEFAULT_LIMIT, KINDS, duplicate_hint
from producers.reconcile_files import CHUNK as _CHUNK
from state.dlq import DeadLetterStore, entry_id_for
from state.publish import publish
from state.trace import sent_event

if TYPE_CHECKING:
    from producers.reconcile import Reconciliation

log = structlog.get_logger("erpsync.reconcile")


@dataclass
class RepairReport:
    """What ``--repair`` sent per target, and what became of it."""

    sent: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: per target: deliveries that were dead-lettered, with their code and hint
    dead_lettered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per target: what repair leaves to an operator (duplicates), with a hint
    not_repaired: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per target: deliveries without an outcome when the wait ended
    waiting: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            target: {
                "sent": self.sent.get(target, 0),
                "outcomes": self.outcomes.get(target, {}),
                "waiting": self.waiting.get(target, 0),
                "dead_lettered": self.dead_lettered.get(target, []),
                "not_repaired": self.not_repaired.get(target, []),
            }
            for target in sorted(set(self.sent) | set(self.not_repaired) | set(self.dead_lettered))
        }


@dataclass
class _Sent:
    target: str
    key: str
    delivery_id: str


def repair(
    reconciliation: Reconciliation,
    producer: Producer,
    *,
    actor: str,
    limit: int | None = DEFAULT_LIMIT,
) -> tuple[RepairReport, list[_Sent]]:
    """Send one forced delivery per missing, different or orphaned record, and audit it.

    Each delivery is a new change of its record (a new source version, so never stale),
    published as the producer publishes (counted, pending, on the target's queue); the
    workers apply it like any other change, but past the ledger's "already applied"
    check. Duplicates are listed with an operator hint, never touched.
    """
    report = reconciliation.report
    stream = reconciliation.stream
    findings = reconciliation.findings
    out = RepairReport()
    sent: list[_Sent] = []
    for target, target_report in report.targets.items():
        if target_report.not_checked is not None:
            continue
        hints = [
            {**dup, "hint": duplicate_hint(target, dup["key"], dup["target_ids"])}
            for dup in itertools.islice(findings.duplicates(target), limit)
        ]
        if hints:
            out.not_repaired[target] = hints
        chunk: list[tuple[str, dict[str, Any] | None]] = []
        for _kind, key, payload in findings.to_repair(target):
            chunk.append((key, payload))
            if len(chunk) >= _CHUNK:
                sent += _send(producer, stream, report.flow, target, chunk)
                chunk = []
        sent += _send(producer, stream, report.flow, target, chunk)
        out.sent[target] = sum(1 for s in sent if s.target == target)
    DeadLetterStore(producer.redis, producer.keys).audit(
        actor,
        "reconcile_repair",
        sum(out.sent.values()),
        {
            "flow": report.flow,
            "sent": out.sent,
            "found": {t: {k: r.counts[k] for k in KINDS} for t, r in report.targets.items()},
            "not_checked": {t: r.not_checked for t, r in report.targets.items() if r.not_checked},
        },
    )
    log.info("reconcile.repair_sent", flow=report.flow, sent=out.sent, actor=actor)
    return out, sent


def _send(
    producer: Producer,
    stream: SnapshotStream,
    flow: str,
    target: str,
    chunk: list[tuple[str, dict[str, Any] | None]],
) -> list[_Sent]:
    if not chunk:
        return []
    first = producer.state.next_versions(stream.source, stream.entity, len(chunk))
    deliveries: list[Delivery] = []
    for offset, (key, payload) in enumerate(chunk):
        if payload is None:  # gone from the source: the producer's deletion
            body: dict[str, Any] = {"key": key, "active": False}
            content = Content.of("delete", body)
        else:
            body = payload
            content = Content.of("upsert", body)
        parent = body.get(parent_field(stream.entity))
        event = ChangeEvent.create(
            flow=flow,
            source=stream.source,
            entity=stream.entity,
            key=key,
            operation=content.operation,
            payload=body,
            source_version=first + offset,
            parent_key=parent if isinstance(parent, str) else None,
            content=content,
        )
        deliveries.append(Delivery(event=event, target=target, force=True))
    now = time.time()  # before publishing: a worker may apply at once
    publish(producer.app, deliveries, state=producer.state)
    if producer.trace is not None:
        producer.trace.write(
            (flow, d.event.key, {**sent_event(d, now, bulk=False), "reason": "repair"})
            for d in deliveries
        )
    producer.state.set_latest(
        stream.source, stream.entity, {d.event.key: d.event.source_version for d in deliveries}
    )
    return [_Sent(target, d.event.key, d.delivery_id) for d in deliveries]


def wait_repairs(
    producer: Producer,
    out: RepairReport,
    sent: list[_Sent],
    *,
    timeout_s: float,
    limit: int | None = DEFAULT_LIMIT,
    poll_s: float = 0.5,
) -> RepairReport:
    """Follow the repair's deliveries to their outcomes (or ``timeout_s``); fill ``out``."""
    keys, client = producer.keys, producer.redis
    waiting = list(sent)
    outcomes: dict[str, dict[str, int]] = {}
    dead: list[_Sent] = []
    deadline = time.monotonic() + timeout_s
    while waiting:
        still: list[_Sent] = []
        for start in range(0, len(waiting), _CHUNK):
            part = waiting[start : start + _CHUNK]
            values = producer.state.outcomes_of([(s.target, s.delivery_id) for s in part])
            for item, value in zip(part, values, strict=True):
                if value is None:
                    still.append(item)
                    continue
                per = outcomes.setdefault(item.target, {})
                per[str(value)] = per.get(str(value), 0) + 1
                if value == "dead_lettered":
                    dead.append(item)
        waiting = still
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    out.outcomes = outcomes
    out.waiting = {}
    for item in waiting:
        out.waiting[item.target] = out.waiting.get(item.target, 0) + 1
    store = DeadLetterStore(client, keys)
    out.dead_lettered = {}
    for item in dead:
        listed = out.dead_lettered.setdefault(item.target, [])
        if limit is not None and len(listed) >= limit:
            continue
        entry = store.get(entry_id_for(item.target, item.delivery_id))
        listed.append(
            {
                "key": item.key,
                "dlq_id": entry.id if entry else None,
                "code": entry.code if entry else None,
                "hint": entry.hint if entry else None,
            }
        )
    return out
