"""Chaos run: a whole erpsync installation under everything production does to it.

Run ``uv run python -m bench.chaos [--minutes M] [--customers N] [--json]``; the short
version runs in the default test suite (``tests/chaos``), the 30-minute soak by hand.

It builds the integration suite's :class:`bench.stack.Pipeline` (the sandbox
over HTTP, real ``erpsync worker`` processes, the in-process producer) on a Redis of its own
with append-only persistence, seeds the ERP with thousands of customers, and then, for
``--minutes``, all at once:

* **edits** from a thread: renames (and renames back to an earlier name), deactivations and
  reactivations of leaf customers, new children under active customers, product price and
  status changes; a small set of "hot" records takes many edits in a row, so that several
  versions of one record are in flight together;
* **faults** on every target, rotated every few seconds: 429 with ``Retry-After``, 5xx,
  connections dropped before and after the request is applied, slow answers on a share of
  records, answers slower than HIPE's client timeout (``timeout_s`` = 1 s) on another share,
  and now and then a permanent vendor error (Propeller 40005, HIPE 422, Atollon FAIL) that
  must be dead-lettered; failed page reads on the ERP too (the producer's side);
* **workers SIGKILLed** at random every few seconds (sometimes all of them at once), once
  they consume, and restarted, as a supervisor would; for each kill, the time until every
  delivery the worker held (started or prefetched) was running again elsewhere;
* **a worker cut off from Redis** once (it reaches Redis through a TCP proxy, frozen for
  ``cut_off_s``), and the time until every delivery it held was running again elsewhere;
* **the producer restarted**: a new ``ProducerService``, cleanly between polls or while a
  poll is in flight (its clients closed under it);
* **Redis restarted once**, half-way (stopped with SIGTERM, down for a few seconds, started
  again on the same port and append-only file);
* **duplicate and out-of-order delivery**: messages the producer published (seen through
  Celery's ``after_task_publish`` signal) are published again: single deliveries, batch
  messages, and older versions of a record after newer ones.

Then edits stop and faults are cleared: the producer polls until the source is captured, and
the dead letters are replayed (every one must carry a code and an operator hint), after
doing what a hint asks of an operator where a replay alone cannot succeed (Propeller 40008,
only when deletions are configured to bin companies: restore the company from the recycle
bin, which only its backoffice can do; the sandbox's Propeller stands in for it), until
nothing is left in the queues, the delayed set or the dead-letter queue. Then it checks:
every target equals the source (customers in the three targets, products in Atollon), no
record is duplicated in any target, no change is lost (every target's ledger holds the
fingerprint of every record's last produced version), and every delivery sent has exactly
one outcome (one counted as produced but never sent, because the producer was stopped
mid-publish, is reported: its change went out again as a newer version).

Every process started here is ended here, by pid. Worker processes are started from the
main thread only: they die with the thread that started them (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis
import tomli_w
from celery import Celery
from celery.signals import after_task_publish

from bench._util import key_values, machine_info, print_json
from bench.stack import TARGETS, Pipeline, pipeline_config
from bench.tcp_proxy import TcpProxy
from bench.verify import Comparison, compare_all, compare_atollon_products
from cli.embedded_redis import EmbeddedRedis
from cli.services.replay import DlqOperator
from erpsync.events import Delivery
from erpsync.logging import configure_logging
from producers.runner import ProducerService
from simulators.server import RunningSandbox
from state.batches import BatchStore
from state.broker import Unacked, queue_keys, unacked_key
from state.dlq import DeadLetter, DeadLetterStore
from state.leases import first_restarts
from state.messages import TASK_APPLY, TASK_APPLY_BATCH, create_app
from state.publish import publish, send_batch
from state.store import State

REDIS_ENV = "ERPSYNC_TEST_REDIS_URL"
ERP = "onlineerp"
WRITES = ["POST", "PUT", "PATCH", "DELETE"]
#: HIPE's client timeout in the run: the "timeout" faults answer slower than this
HIPE_TIMEOUT_S = 1.0
#: answer delay of the "timeout" faults (above HIPE_TIMEOUT_S)
TIMEOUT_LATENCY_MS = 1600
#: answer delay of the "slow answer" faults (below every client timeout)
SLOW_LATENCY_MS = 300
#: seconds with nothing queued, reserved or parked before the run is taken as settled
QUIET_S = 3.0
#: names the renames use: quotes, ampersands, percent and plus signs, emoji, right-to-left
NAMES = (
    "Emballages Côté & Fils",
    'Cartonnages "Le Nord" inc.',
    "Boulangerie 100% + ou -",
    "Ferme Ōkami 🐺 enr.",
    "شركة الأرز (Laval)",
    "Transport O'Brien ltée",
    "Imprimerie A+B=C",
    "Quincaillerie <Gagné> & Associés",
)


@dataclass(frozen=True)
class ChaosSettings:
    """How big and how rough a run is."""

    minutes: float = 1.25
    customers: int = 1000
    workers: int = 2
    kill_every_s: tuple[float, float] = (4.0, 9.0)
    kill_all_share: float = 0.2
    edits_per_s: float = 4.0
    producer_interval_s: float = 1.0
    producer_restart_every_s: float = 15.0
    fault_rotation_s: float = 5.0
    disorder_every_s: float = 0.5
    redis_down_s: float = 3.0
    cut_off_s: float = 30.0
    converge_timeout_s: float = 900.0
    max_replays: int = 4
    random_seed: int | None = None

    @property
    def chaos_s(self) -> float:
        return self.minutes * 60.0


@dataclass
class ChaosReport:
    """The figures of one run, and what failed (``problems`` empty means it passed)."""

    settings: dict[str, Any]
    seed: int
    customers: int = 0
    products: int = 0
    events: int = 0
    deliveries: int = 0
    edits: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    kill_all: int = 0
    worker_restarts: int = 0
    worker_unexpected_exits: int = 0
    worker_exits_at_redis_restart: int = 0
    producer_restarts: dict[str, int] = field(default_factory=dict)
    redis_restarts: int = 0
    redis_down_s: float = 0.0
    redis_outcomes_resumed_after_s: float | None = None
    #: per kill, seconds until every delivery the worker held ran again: p50, p99, max
    recovery_after_kill_s: dict[str, float] = field(default_factory=dict)
    held_at_kills: int = 0
    #: the same for the worker cut off from Redis (held: how many it held)
    recovery_after_cut_off_s: float | None = None
    held_at_cut_off: int = 0
    #: deliveries held by a killed or cut-off worker never seen running again
    held_not_restarted: int = 0
    #: from the last kill until every target equalled the source
    converged_after_last_kill_s: float | None = None
    faults_injected: dict[str, dict[str, int]] = field(default_factory=dict)
    faults_met: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    resent_overdue: int = 0
    dependency_waits: int = 0
    parked: dict[str, int] = field(default_factory=dict)
    duplicates_published: int = 0
    batch_duplicates_published: int = 0
    stale_published: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letters_by_code: dict[str, int] = field(default_factory=dict)
    dead_letters_unexplained: list[str] = field(default_factory=list)
    replayed: int = 0
    replay_rounds: int = 0
    replay_resolved: dict[str, int] = field(default_factory=dict)
    dead_letters_left: int = 0
    duplicates: int = 0
    lost: int = 0
    unaccounted: int = 0
    unaccounted_lost: int = 0
    unaccounted_resent: int = 0
    operator_restores: int = 0
    failed_polls: int = 0
    timeline: list[str] = field(default_factory=list)
    comparisons: list[str] = field(default_factory=list)
    chaos_s: float = 0.0
    converge_s: float | None = None
    total_s: float = 0.0
    observations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


# -- faults -------------------------------------------------------------------------------
def target_faults(system: str, rng: random.Random, *, permanent: bool) -> list[dict[str, Any]]:
    """One rotation's fault rules for a target (share-based rules pick a key digit)."""
    rules: list[dict[str, Any]] = []
    if permanent:
        rules.append(PERMANENT[system])
    rules += [
        # One of each kind for certain in every rotation, whatever the traffic: a run on a
        # loaded machine sends a target few requests, and a share alone may then meet none.
        {"count": 1, "statuses": [429], "retry_after_s": 0.5},
        {"count": 1, "statuses": [503]},
        {"count": 1, "drop_rate": 1.0, "drop_phase": "before"},
        {"rate": 0.05, "statuses": [429], "retry_after_s": 0.5},
        {"rate": 0.05, "statuses": [500, 502, 503, 504]},
        {"drop_rate": 0.03, "drop_phase": "before"},
        {"drop_rate": 0.03, "drop_phase": "after", "methods": WRITES},
    ]
    slow, late = rng.sample(range(10), 2)
    if system == "propeller":
        rules.append({"latency_ms": SLOW_LATENCY_MS, "path": f"/v2/companies/sourceId/*{slow}"})
    elif system == "hipe":
        rules.append({"latency_ms": SLOW_LATENCY_MS, "path": f"/api/companies/*{slow}"})
        rules.append({"latency_ms": TIMEOUT_LATENCY_MS, "path": f"/api/companies/*{late}"})
    else:
        path = "/crab/crawler/contact" if slow % 2 else "/crab/crawler/product"
        rules.append({"latency_ms": SLOW_LATENCY_MS, "path": path})
    return rules


#: one permanent vendor error per rotation that has them: each one makes a dead letter
PERMANENT: dict[str, dict[str, Any]] = {
    "propeller": {"rate": 0.2, "count": 1, "vendor_code": "40005", "methods": WRITES},
    "hipe": {"rate": 0.2, "count": 1, "statuses": [422], "methods": ["POST", "PATCH"]},
    "atollon": {"rate": 0.2, "count": 1, "vendor_code": "Invalid data", "methods": ["POST"]},
}

#: the producer's side: the ERP's robot fails some page reads (edits are never faulted)
ERP_FAULTS: list[dict[str, Any]] = [
    {"rate": 0.04, "statuses": [503], "methods": ["GET"]},
    {"drop_rate": 0.02, "methods": ["GET"]},
]


# -- the ERP's users ----------------------------------------------------------------------
@dataclass
class _Customer:
    name: str
    parent: str | None
    active: bool
    names: list[str] = field(default_factory=list)


class Editor:
    """Edits the ERP at a steady rate, as its users do, keeping the hierarchy valid.

    Only leaves are deactivated and new children only go under active customers, so every
    edit has one correct outcome in every target (a deactivated parent with active children
    is a question for the flow's design, not for a chaos run).
    """

    def __init__(self, p: Pipeline, rng: random.Random, per_s: float) -> None:
        self.p = p
        self.rng = rng
        self.per_s = per_s
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.customers: dict[str, _Customer] = {}
        self.children: Counter[str] = Counter()
        self.products: dict[str, dict[str, Any]] = {}
        self.hot: list[str] = []
        self._new = 0

    def load(self) -> None:
        for record in self.p.records(ERP, "Customer"):
            key = record["NoClient"]
            parent = record["NoClientParent"]
            self.customers[key] = _Customer(record["NomClient"], parent, record["EstActif"])
            if parent:
                self.children[parent] += 1
        for record in self.p.records(ERP, "Product"):
            self.products[record["NoProduit"]] = record
        self.hot = self.rng.sample(sorted(self.customers), min(25, len(self.customers)))

    def start(self) -> Editor:
        self._thread = threading.Thread(target=self._run, name="chaos-editor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        with self.p.erp() as erp:
            while not self._stop.wait(self.rng.expovariate(self.per_s)):
                try:
                    self.edit(erp)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _pick(self, candidates: list[str]) -> str | None:
        allowed = set(candidates)
        hot = [k for k in self.hot if k in allowed]
        if hot and self.rng.random() < 0.4:
            return self.rng.choice(hot)
        return self.rng.choice(candidates) if candidates else None

    def edit(self, erp: httpx.Client) -> None:
        """One edit, chosen at random among the kinds the ERP's users make."""
        kind = self.rng.choices(
            ["rename", "rename_back", "deactivate", "reactivate", "new_child", "product"],
            weights=[35, 10, 17, 15, 10, 13],
        )[0]
        customers = self.customers
        if kind == "rename_back":
            renamed = [k for k, c in customers.items() if c.names]
            key = self._pick(renamed)
            if key is None:
                kind = "rename"
            else:
                previous = customers[key].names.pop()
                self._put(erp, key, {"NomClient": previous})
                customers[key].name = previous
                self.counts[kind] += 1
                return
        if kind == "rename":
            key = self._pick(sorted(customers))
            if key is None:
                return
            name = f"{self.rng.choice(NAMES)} {self.rng.randrange(1000)}"
            customers[key].names.append(customers[key].name)
            self._put(erp, key, {"NomClient": name})
            customers[key].name = name
        elif kind == "deactivate":
            leaves = [k for k, c in customers.items() if c.active and not self.children[k]]
            key = self._pick(leaves)
            if key is None:
                return
            self._put(erp, key, {"EstActif": False})
            customers[key].active = False
        elif kind == "reactivate":
            key = self._pick([k for k, c in customers.items() if not c.active])
            if key is None:
                return
            self._put(erp, key, {"EstActif": True})
            customers[key].active = True
        elif kind == "new_child":
            parent = self._pick([k for k, c in customers.items() if c.active])
            if parent is None:
                return
            self._new += 1
            key = f"N{self._new:06d}"
            name = f"{self.rng.choice(NAMES)} {self._new}"
            body = {
                "NoClient": key,
                "NomClient": name,
                "NoClientParent": parent,
                "Courriel": f"achats.{key.lower()}@exemple.qc.ca",
                "Adresse": {"Ligne1": "1 rue Principale", "Ville": "Laval", "Pays": "CA"},
                "EstActif": True,
            }
            erp.post("/Entity/Customer", json=body).raise_for_status()
            customers[key] = _Customer(name, parent, True)
            self.children[parent] += 1
            if self.rng.random() < 0.3:
                self.hot.append(key)
        else:
            key = self.rng.choice(sorted(self.products))
            product = self.products[key]
            if self.rng.random() < 0.25:
                change: dict[str, Any] = {"EstActif": not product["EstActif"]}
            else:
                change = {"PrixVente": round(self.rng.uniform(0.5, 500.0), 2)}
            erp.put(f"/Entity/Product/{key}", json=change).raise_for_status()
            product.update(change)
        self.counts[kind] += 1

    def _put(self, erp: httpx.Client, key: str, change: dict[str, Any]) -> None:
        erp.put(f"/Entity/Customer/{key}", json=change).raise_for_status()


# -- the producer -------------------------------------------------------------------------
class ProducerLoop:
    """Polls every ``interval_s`` with a ProducerService that the run replaces now and then."""

    def __init__(self, p: Pipeline, interval_s: float) -> None:
        self.p = p
        self.interval_s = interval_s
        self.service = ProducerService(p.settings)
        self.restarts: Counter[str] = Counter()
        self.failed_polls = 0
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ProducerLoop:
        self._thread = threading.Thread(target=self._run, name="chaos-producer", daemon=True)
        self._thread.start()
        return self

    def poll(self) -> tuple[int, bool]:
        """Poll every stream once; returns the events published and whether all succeeded."""
        with self._busy:
            service = self.service
            results = service.poll_once()
        events = sum(r.events for r in results)
        clean = all(r.skipped is None for r in results)
        if not clean:
            self.failed_polls += 1
        return events, clean

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(Exception):  # a poll under a closing service may fail
                self.poll()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def restart(self, *, clean: bool) -> None:
        """A new ProducerService: after the poll in flight, or with the old one closed under it."""
        fresh = ProducerService(self.p.settings)
        if clean:
            with self._busy:
                old, self.service = self.service, fresh
        else:
            old, self.service = self.service, fresh
        with contextlib.suppress(Exception):
            old.close()
        self.restarts["clean" if clean else "mid_poll"] += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.service.close()


# -- duplicate and out-of-order delivery --------------------------------------------------
class Disorder:
    """Publishes again what the producer published: duplicates, and older versions late.

    It sees the producer's messages through Celery's ``after_task_publish`` signal (this
    process publishes nothing else while it listens): single deliveries, and batches (by
    reference: their deliveries are read from the batch store). It publishes again with
    its own Celery app: single deliveries twice, older versions of a record after newer
    ones, and now and then a batch message twice.
    """

    def __init__(self, p: Pipeline, rng: random.Random, every_s: float) -> None:
        self.p = p
        self.rng = rng
        self.every_s = every_s
        self.app: Celery = create_app(p.settings)
        self.batches = BatchStore(State(p.redis, p.keys))
        self.recent: deque[Delivery] = deque(maxlen=3000)
        self.versions: dict[tuple[str, str, str], list[Delivery]] = {}
        self.recent_batches: deque[tuple[str, str]] = deque(maxlen=200)
        #: every delivery the producer published, by (target, delivery id), with the ids of
        #: the Celery messages that carried it (to follow a lost one through the worker logs)
        self.published: dict[tuple[str, str], tuple[Delivery, list[str]]] = {}
        self.duplicates = 0
        self.stale = 0
        self.batch_duplicates = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _seen(
        self,
        sender: Any = None,
        body: Any = None,
        headers: Any = None,
        routing_key: Any = None,
        **_kw: Any,
    ) -> None:
        if getattr(self._local, "publishing", False) or sender not in (
            TASK_APPLY,
            TASK_APPLY_BATCH,
        ):
            return
        args = body[0] if isinstance(body, tuple | list) else (body or {}).get("args")
        task_id = str((headers or {}).get("id", ""))
        try:
            payloads: list[Any] = [args[0]]  # type: ignore[index]
            if sender == TASK_APPLY_BATCH:
                ref = args[0]  # type: ignore[index]
                if isinstance(ref, str):
                    target = str(routing_key or "").removeprefix("sync.")
                    with self._lock:
                        self.recent_batches.append((target, ref))
                    payloads = self.batches.get(ref) or []
                else:
                    payloads = list(ref)
            deliveries = [Delivery.model_validate(payload) for payload in payloads]
        except Exception:  # noqa: BLE001 (not ours, or Redis is down: nothing to disorder)
            return
        with self._lock:
            for delivery in deliveries:
                entry = self.published.setdefault(
                    (delivery.target, delivery.delivery_id), (delivery, [])
                )
                entry[1].append(task_id)
                if self._stop.is_set() or sender != TASK_APPLY:
                    continue
                event = delivery.event
                self.recent.append(delivery)
                history = self.versions.setdefault((delivery.target, event.entity, event.key), [])
                history.append(delivery)
                del history[:-4]

    def start(self) -> Disorder:
        after_task_publish.connect(self._seen, weak=False)
        self._thread = threading.Thread(target=self._run, name="chaos-disorder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        self._local.publishing = True
        while not self._stop.wait(self.every_s):
            with self._lock:
                duplicates = self.rng.sample(list(self.recent), min(3, len(self.recent)))
                several = [h for h in self.versions.values() if len(h) > 1]
                histories = self.rng.sample(several, min(2, len(several)))
                batch = (
                    self.rng.choice(self.recent_batches)
                    if self.recent_batches and self.rng.random() < 0.2
                    else None
                )
            stale = [h[self.rng.randrange(len(h) - 1)] for h in histories]
            try:
                publish(self.app, duplicates)
                self.duplicates += len(duplicates)
                publish(self.app, stale)
                self.stale += len(stale)
                if batch is not None:
                    with self.app.producer_or_acquire() as producer:
                        send_batch(self.app, batch[0], batch[1], producer=producer)
                    self.batch_duplicates += 1
            except Exception:  # noqa: BLE001,S112 (Redis may be down: try again next tick)
                continue

    def stop(self) -> None:
        """Stop publishing again (what the producer publishes is still recorded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def close(self) -> None:
        after_task_publish.disconnect(self._seen)
        with contextlib.suppress(Exception):
            self.app.close()


# -- the run ------------------------------------------------------------------------------
@contextlib.contextmanager
def _redis_env(url: str) -> Iterator[None]:
    """``pipeline_config`` reads the test Redis from the environment: point it at ours."""
    previous = os.environ.get(REDIS_ENV)
    os.environ[REDIS_ENV] = url
    try:
        yield
    finally:
        if previous is None:
            del os.environ[REDIS_ENV]
        else:
            os.environ[REDIS_ENV] = previous


def _retry_causes(directory: Path) -> Counter[str]:
    """The failed calls the workers retried, by cause, from their JSON log lines.

    A bulk call that failed as a whole counts once (its deliveries' attempts are counted
    in the ``retries`` figure).
    """
    causes: Counter[str] = Counter()
    for path in sorted(directory.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"sync.retry_scheduled"' not in line and '"sync.batch_retry_scheduled"' not in line:
                continue
            try:
                error = str(json.loads(line).get("error", ""))
            except ValueError:
                continue
            status = re.search(r"HTTP (\d{3})", error)
            if "Timeout" in error:
                causes["timeout"] += 1
            elif "connection dropped" in error:
                causes["dropped"] += 1
            elif status and status.group(1) == "429":
                causes["429"] += 1
            elif status and status.group(1).startswith("5"):
                causes["5xx"] += 1
            else:
                causes["other"] += 1
    return causes


def _find_in_redis(client: redis.Redis, needle: str) -> list[str]:
    """Every key whose value mentions ``needle`` (where a lost delivery may still sit)."""
    found: list[str] = []
    for key in client.scan_iter(count=1000):
        kind, values = key_values(client, key)
        if any(needle in str(v) for v in values):
            found.append(f"{key!s} ({kind!s})")
    return found


def _last_line(logs: list[str], event_id: str, target: str) -> str:
    """The latest worker log line about one event at one target (time, event, error)."""
    latest: dict[str, Any] | None = None
    for text in logs:
        for line in text.splitlines():
            if event_id not in line or f'"{target}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if row.get("target") == target and (
                    latest is None or row.get("timestamp", "") > latest.get("timestamp", "")
                ):
                    latest = row
    if latest is None:
        return "none"
    return f"{latest.get('timestamp')} {latest.get('event')} {latest.get('error', '')}".strip()


def _exit_reason(p: Pipeline, worker: subprocess.Popen[bytes]) -> str:
    """The last critical or error line of a worker's log (what made it exit)."""
    index = p.workers.index(worker)
    path = p.directory / f"worker-{index}.log"
    reason = "no error logged"
    for line in path.read_text(errors="replace").splitlines():
        if '"level": "critical"' in line or '"level": "error"' in line:
            with contextlib.suppress(ValueError):
                reason = str(json.loads(line).get("event", ""))[:200]
    return reason


class ChaosRun:
    """One chaos run; :meth:`run` returns its report."""

    def __init__(
        self,
        settings: ChaosSettings,
        directory: Path,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.s = settings
        self.directory = directory
        self.seed = (
            settings.random_seed if settings.random_seed is not None else random.randrange(10**6)
        )
        self.rng = random.Random(self.seed)
        self.progress = progress or (lambda _: None)
        self.report = ChaosReport(settings=asdict(settings), seed=self.seed)
        self._started = time.monotonic()
        self._redis_stopped_at: float | None = None
        self._redis_back_at: float | None = None
        self._outcomes_before_restart = 0
        self._noted: set[int] = set()
        self._ready_pids: set[int] = set()
        #: per kill (or the cut-off): when, and the task ids the worker held then
        self._held_at_kills: list[tuple[float, set[str]]] = []
        self._held_at_cut: tuple[float, set[str]] | None = None
        self._link: TcpProxy | None = None
        self._cut_worker: subprocess.Popen[bytes] | None = None
        self._thaw_at: float | None = None

    # -- helpers ----------------------------------------------------------------------
    def _note(self, what: str) -> None:
        """A line of the run's timeline (seconds since the start, wall-clock time)."""
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        self.report.timeline.append(f"{time.monotonic() - self._started:7.1f}s {stamp}Z {what}")

    def _outcomes(self, p: Pipeline) -> int:
        total = 0
        for target in TARGETS:
            c = p.counters(target)
            total += c.get("applied", 0) + c.get("skipped", 0) + c.get("dead_lettered", 0)
        return total

    def _rotate_faults(self, p: Pipeline, rotation: int) -> None:
        permanent = rotation % 3 == 1
        for system in TARGETS:
            p.faults(system, target_faults(system, self.rng, permanent=permanent))
        p.faults(ERP, ERP_FAULTS)

    @staticmethod
    def _alive(p: Pipeline) -> list[subprocess.Popen[bytes]]:
        return [w for w in p.workers if w.poll() is None]

    def _supervise(self, p: Pipeline) -> None:
        """Start workers up to the configured count; note any that exited by itself."""
        for worker in p.workers:
            if worker.poll() is not None and worker.pid not in p.killed | self._noted:
                self._noted.add(worker.pid)
                now = time.monotonic()
                during_restart = (
                    self._redis_stopped_at is not None
                    and self._redis_stopped_at <= now
                    and (self._redis_back_at is None or now <= self._redis_back_at + 15.0)
                )
                if during_restart:
                    self.report.worker_exits_at_redis_restart += 1
                else:
                    self.report.worker_unexpected_exits += 1
                reason = _exit_reason(p, worker)
                self._note(f"worker {worker.pid} exited by itself (code {worker.returncode})")
                self.report.observations.append(
                    f"worker {worker.pid} exited by itself (code {worker.returncode})"
                    f"{' during the Redis restart' if during_restart else ''}: {reason}"
                )
        while len(self._alive(p)) < self.s.workers:
            worker = p.start_worker()
            self.report.worker_restarts += 1
            self._note(f"worker {worker.pid} started (worker-{len(p.workers) - 1}.log)")

    def _ready(self, p: Pipeline, worker: subprocess.Popen[bytes]) -> bool:
        """The worker has consumed since it started (its log says ``worker.ready``)."""
        if worker.pid not in self._ready_pids:
            path = p.directory / f"worker-{p.workers.index(worker)}.log"
            with contextlib.suppress(OSError):
                if b'"worker.ready"' in path.read_bytes():
                    self._ready_pids.add(worker.pid)
        return worker.pid in self._ready_pids

    def _kill(self, p: Pipeline) -> bool:
        """SIGKILL one ready worker, or all of them; False when none is ready yet.

        Only workers that became ready are killed: on a loaded machine a worker takes
        seconds to start, and killing it before it consumes only stops all progress.
        """
        alive = [
            w
            for w in self._alive(p)
            if self._ready(p, w) and (w is not self._cut_worker or self._held_at_cut is not None)
        ]
        if not alive:
            return False
        victims = alive if self.rng.random() < self.s.kill_all_share else [self.rng.choice(alive)]
        if len(victims) > 1:
            self.report.kill_all += 1
        for victim in victims:
            holding, renewed_at = self._holding(p, victim)
            with contextlib.suppress(redis.RedisError):  # the harness forgets the registry
                p.kill_worker(victim, signal.SIGKILL)
            killed_at = time.time()
            held = self._still_held(p, holding, since=renewed_at)
            self._held_at_kills.append((killed_at, held))
            self.report.kills += 1
            self._note(f"worker {victim.pid} SIGKILLed")
        return True

    @staticmethod
    def _holding(p: Pipeline, worker: subprocess.Popen[bytes]) -> tuple[dict[str, str], float]:
        """Delivery tag -> task id of what ``worker`` held at its last lease renewal, and
        when that was."""
        key = p.keys.worker_lease(f"erpsync-{worker.pid}@{socket.gethostname()}")
        with contextlib.suppress(redis.RedisError, ValueError):
            raw = p.redis.get(key)
            if raw:
                record = json.loads(raw)
                return dict(record.get("held", {})), float(record.get("at", 0.0))
        return {}, 0.0

    @staticmethod
    def _still_held(p: Pipeline, holding: dict[str, str], *, since: float) -> set[str]:
        """The task ids of ``holding`` still unacknowledged now (the worker can no longer
        acknowledge: killed or cut off), less those started elsewhere since ``since`` (a
        message kombu gave back meanwhile keeps its tag: its new holder's, then)."""
        unacked = Unacked(create_app(p.settings))
        try:
            tasks = {holding[tag] for tag in unacked.held(holding)}
            entries = [str(e) for e in p.redis.lrange(p.keys.restarted(), 0, -1)]
        except redis.RedisError:
            return set()
        finally:
            unacked.close()
        return tasks - set(first_restarts(entries, tasks, since=since))

    def _start_cut_worker(self, p: Pipeline) -> None:
        """One worker reaches Redis through a TCP proxy the run freezes once."""
        at = urlsplit(p.settings.redis_url)
        self._link = TcpProxy((at.hostname or "127.0.0.1", at.port or 6379))
        config = json.loads(json.dumps(p.config))
        config["redis_url"] = urlunsplit(at._replace(netloc=f"127.0.0.1:{self._link.port}"))
        path = self.directory / "cut-off.toml"
        path.write_text(tomli_w.dumps(config), encoding="utf-8")
        self._cut_worker = p.start_worker(config=path)
        self._note(f"worker {self._cut_worker.pid} started behind a proxy to Redis")

    def _cut_off(self, p: Pipeline, now: float) -> None:
        """Freeze the proxied worker's link once it consumes; thaw it ``cut_off_s`` later."""
        worker, link = self._cut_worker, self._link
        if worker is None or link is None:
            return
        if self._held_at_cut is None and worker.poll() is None and self._ready(p, worker):
            holding, renewed_at = self._holding(p, worker)
            link.freeze()
            cut_at = time.time()
            self._held_at_cut = (cut_at, self._still_held(p, holding, since=renewed_at))
            self._thaw_at = now + self.s.cut_off_s
            self._note(f"worker {worker.pid} cut off from Redis")
        elif self._thaw_at is not None and now >= self._thaw_at:
            link.thaw()
            self._thaw_at = None
            self._note(f"worker {worker.pid} reaches Redis again")

    def _recovery(self, p: Pipeline) -> None:
        """Per kill and for the cut-off: until every held delivery ran again elsewhere."""
        report = self.report
        entries = [str(e) for e in p.redis.lrange(p.keys.restarted(), 0, -1)]
        per_kill: list[float] = []
        for killed_at, tasks in self._held_at_kills:
            again = first_restarts(entries, tasks, since=killed_at)
            report.held_at_kills += len(tasks)
            report.held_not_restarted += len(tasks) - len(again)
            if again:
                per_kill.append(max(again.values()) - killed_at)
        if per_kill:
            ordered = sorted(per_kill)
            report.recovery_after_kill_s = {
                "p50": round(ordered[len(ordered) // 2], 1),
                "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
                "max": round(ordered[-1], 1),
            }
        if self._held_at_cut is not None:
            cut_at, tasks = self._held_at_cut
            again = first_restarts(entries, tasks, since=cut_at)
            report.held_at_cut_off = len(tasks)
            report.held_not_restarted += len(tasks) - len(again)
            if again:
                report.recovery_after_cut_off_s = round(max(again.values()) - cut_at, 1)

    def _restart_redis(self, server: EmbeddedRedis, p: Pipeline) -> None:
        started = self._redis_stopped_at = time.monotonic()
        self._note("Redis stopping (SIGTERM)")
        server.stop(remove_directory=False)
        time.sleep(self.s.redis_down_s)
        server.start()
        self._note("Redis started again")
        self.report.redis_down_s = round(time.monotonic() - started, 2)
        self.report.redis_restarts += 1
        self._redis_back_at = time.monotonic()
        # the count as reloaded from the append-only file: the next outcome is a new one
        self._outcomes_before_restart = self._safe(lambda: self._outcomes(p)) or 0

    def _note_resumed(self, p: Pipeline) -> None:
        if self._redis_back_at is None or self.report.redis_outcomes_resumed_after_s is not None:
            return
        now = self._safe(lambda: self._outcomes(p))
        if now is not None and now > self._outcomes_before_restart:
            self.report.redis_outcomes_resumed_after_s = round(
                time.monotonic() - self._redis_back_at, 2
            )

    @staticmethod
    def _safe(read: Callable[[], int]) -> int | None:
        try:
            return read()
        except redis.RedisError:
            return None

    # -- the phases -------------------------------------------------------------------
    def run(self) -> ChaosReport:
        redis_dir = self.directory / "redis"
        server = EmbeddedRedis(appendonly=True, directory=redis_dir)
        server.start()
        sandbox = RunningSandbox().start()
        p: Pipeline | None = None
        try:
            with _redis_env(server.url):
                config = pipeline_config(
                    sandbox,
                    "x",
                    systems={"hipe": {"timeout_s": HIPE_TIMEOUT_S}},
                )
            config["log_level"] = "INFO"  # the workers' log lines say what they met
            p = Pipeline(sandbox, self.directory, config)
            self._run(p, server)
        finally:
            if p is not None:
                with contextlib.suppress(Exception):
                    p.close()
            sandbox.stop()
            server.stop()
            if self._link is not None:
                self._link.close()
        self.report.total_s = round(time.monotonic() - self._started, 1)
        return self.report

    def _run(self, p: Pipeline, server: EmbeddedRedis) -> None:
        s, report = self.s, self.report
        with p.control(ERP) as client:
            client.post("/_sandbox/seed", json={"customers": s.customers}).raise_for_status()
        # each thread draws from a generator of its own, derived from the run's seed
        editor = Editor(p, random.Random(self.seed + 1), s.edits_per_s)
        editor.load()
        report.customers = len(editor.customers)
        report.products = len(editor.products)
        self._start_cut_worker(p)
        self._supervise(p)
        report.worker_restarts = 0  # the first ones are starts, not restarts
        p.wait_workers(s.workers, timeout_s=120)

        producer = ProducerLoop(p, s.producer_interval_s)
        disorder = Disorder(p, random.Random(self.seed + 2), s.disorder_every_s)
        try:
            self._chaos(p, server, editor, producer, disorder)
            report.edits = dict(editor.counts)
            report.duplicates_published = disorder.duplicates
            report.batch_duplicates_published = disorder.batch_duplicates
            report.stale_published = disorder.stale
            if editor.errors:
                report.observations.append(
                    f"{len(editor.errors)} ERP edits failed: {editor.errors[0]}"
                )
            self.progress("edits stopped, faults cleared: converging")
            self._note("edits stopped, faults cleared")
            for system in (*TARGETS, ERP):
                p.faults(system, None)
            self._supervise(p)
            converge_started = time.monotonic()
            try:
                self._converge(p, producer)
                report.converge_s = round(time.monotonic() - converge_started, 1)
                if self._held_at_kills:
                    last_kill = max(at for at, _ in self._held_at_kills)
                    report.converged_after_last_kill_s = round(time.time() - last_kill, 1)
                self._note("converged")
            except TimeoutError as exc:
                report.problems.append(str(exc))
            self._note_resumed(p)
            self._figures(p, producer)
            self._verify(p, disorder)
        finally:
            producer.close()
            disorder.close()

    def _chaos(
        self,
        p: Pipeline,
        server: EmbeddedRedis,
        editor: Editor,
        producer: ProducerLoop,
        disorder: Disorder,
    ) -> None:
        """Edits, faults, kills and restarts for ``minutes``; processes start from here only."""
        s, report = self.s, self.report
        rotation = 0
        self._rotate_faults(p, rotation)
        producer.start()
        disorder.start()
        editor.start()
        self.progress(f"chaos for {s.chaos_s:.0f} s (seed {self.seed})")
        self._note("chaos starts")
        begin = time.monotonic()
        end = begin + s.chaos_s
        next_kill = begin + self.rng.uniform(*s.kill_every_s)
        next_rotation = begin + s.fault_rotation_s
        next_producer = begin + s.producer_restart_every_s
        redis_at = begin + s.chaos_s / 2
        cut_at = begin + s.chaos_s / 8
        try:
            while (now := time.monotonic()) < end:
                if now >= next_kill:
                    killed = self._kill(p)
                    next_kill = now + (self.rng.uniform(*s.kill_every_s) if killed else 0.5)
                self._supervise(p)
                if now >= next_rotation:
                    rotation += 1
                    self._rotate_faults(p, rotation)
                    next_rotation = now + s.fault_rotation_s
                if now >= next_producer:
                    clean = sum(producer.restarts.values()) % 2 == 0
                    producer.restart(clean=clean)
                    self._note(f"producer restarted ({'clean' if clean else 'mid-poll'})")
                    next_producer = now + s.producer_restart_every_s
                if now >= cut_at:
                    self._cut_off(p, now)
                if report.redis_restarts == 0 and now >= redis_at:
                    self.progress("restarting Redis")
                    self._restart_redis(server, p)
                self._note_resumed(p)
                time.sleep(0.1)
        finally:
            if self._link is not None:
                self._link.thaw()
            editor.stop()
            disorder.stop()
            producer.stop()
            report.chaos_s = round(time.monotonic() - begin, 1)
            report.producer_restarts = dict(producer.restarts)

    def _converge(self, p: Pipeline, producer: ProducerLoop) -> None:
        """Capture the source, then replay dead letters until nothing is left anywhere."""
        deadline = time.monotonic() + self.s.converge_timeout_s
        while True:
            events, clean = producer.poll()
            if clean and events == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the producer never captured the source without errors")
            time.sleep(0.5)
        self._note("source captured")
        mutex_ttl = p.redis.ttl(p.keys.unacked_mutex())
        if mutex_ttl and mutex_ttl > 0:
            # kombu restores unacknowledged messages under this lock; a worker killed while
            # holding it stops every restore until it expires (unacked_mutex_expire)
            self.report.observations.append(
                f"kombu's restore lock was held when the chaos ended ({mutex_ttl} s left)"
            )

        store = DeadLetterStore(p.redis, p.keys)
        state = State(p.redis, p.keys)
        app = create_app(p.settings)

        def resend(deliveries: Sequence[Delivery]) -> int:
            return publish(app, deliveries, state=state, count=False)  # as `erpsync dlq replay`

        operator = DlqOperator(store, state, actor="chaos", publish=resend)
        seen: dict[str, DeadLetter] = {}
        resolved: Counter[str] = Counter()
        quiet_since: float | None = None
        try:
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(
                        f"not converged in {self.s.converge_timeout_s:.0f} s: "
                        f"{self._backlog(p)}; " + "; ".join(f"{t}={p.counters(t)}" for t in TARGETS)
                    )
                self._supervise(p)
                entries = operator.select() if self._drained(p) else []
                if entries:
                    # The faults are gone: replay as an operator does once the cause is
                    # fixed, without waiting for children still waiting for a parent.
                    for entry in entries:
                        seen.setdefault(f"{entry.id}:{entry.dead_lettered_count}", entry)
                    stuck = [e for e in entries if e.replays >= self.s.max_replays]
                    if stuck:
                        raise TimeoutError(
                            f"{len(stuck)} dead letters still fail after {self.s.max_replays} "
                            "replays: "
                            + ", ".join(f"{e.target} {e.key} {e.code}" for e in stuck[:10])
                        )
                    plan = operator.plan(entries)
                    self._play_operator(p, [planned.entry for planned in plan.to_replay])
                    self.report.replay_rounds += 1
                    self._note(f"replay round {self.report.replay_rounds}: {len(entries)} entries")
                    result = operator.replay(plan)
                    self.report.replayed += len(result.replayed)
                    resolved["superseded"] += len(result.superseded)
                    outcomes = operator.wait(result.replayed, timeout_s=120)
                    resolved["applied"] += len(outcomes.applied)
                    for _, why in outcomes.skipped:
                        resolved[f"skipped: {why}"] += 1
                    resolved["failed_again"] += len(outcomes.failed_again)
                    resolved["pending"] += len(outcomes.pending)
                    quiet_since = None
                    continue
                if not self._drained(p) or self._parked(p):
                    quiet_since = None
                    time.sleep(0.5)
                    continue
                quiet_since = quiet_since or now
                if now - quiet_since >= QUIET_S and not store.count():
                    return
                time.sleep(0.5)
        finally:
            app.close()
            self.report.replay_resolved = dict(resolved)
            self._explain(seen.values())

    def _play_operator(self, p: Pipeline, entries: list[DeadLetter]) -> None:
        """Do what a dead letter's hint asks of an operator, where a replay is not enough.

        Propeller 40008: the company of a customer is in Propeller's recycle bin (only with
        ``on_source_delete = "delete"``; by default a deactivated or deleted customer's
        company is marked inactive, never binned), and only the backoffice can restore it;
        the sandbox's Propeller stands in for the backoffice. Only entries about to be
        replayed are restored: a superseded one may be a customer deleted again, whose
        company belongs in the bin.
        """
        propeller = p.sandbox.simulators["propeller"]
        settings = p.settings.systems.propeller
        source = settings.source if settings is not None else ""
        for entry in entries:
            if entry.target == "propeller" and entry.code == "40008":
                restored = propeller.restore_from_recycle_bin(source, entry.key)  # type: ignore[attr-defined]
                self.report.operator_restores += restored

    def _drained(self, p: Pipeline) -> bool:
        """Nothing in a queue or reserved by a worker (parked deliveries may wait)."""
        try:
            for target in TARGETS:
                if any(p.redis.llen(k) for k in queue_keys(p.keys, target)):
                    return False
            return not p.redis.hlen(unacked_key(p.keys))
        except redis.RedisError:
            return False

    def _parked(self, p: Pipeline) -> bool:
        """Deliveries wait in the delayed set, are being re-published by a pump, or are
        pending without an outcome (among them any the broker lost, until they are resent)."""
        try:
            return bool(
                p.redis.zcard(p.keys.delayed())
                or p.redis.zcard(p.keys.delayed_claimed())
                or any(p.redis.zcard(p.keys.pending(t)) for t in TARGETS)
            )
        except redis.RedisError:
            return True

    def _backlog(self, p: Pipeline) -> str:
        queued = sum(p.redis.llen(k) for t in TARGETS for k in queue_keys(p.keys, t))
        return (
            f"queued={queued} unacked={p.redis.hlen(unacked_key(p.keys))} "
            f"delayed={p.redis.zcard(p.keys.delayed())} "
            f"claimed={p.redis.zcard(p.keys.delayed_claimed())} "
            f"pending={sum(p.redis.zcard(p.keys.pending(t)) for t in TARGETS)} "
            f"dead_letters={DeadLetterStore(p.redis, p.keys).count()}"
        )

    def _explain(self, entries: Any) -> None:
        codes: Counter[str] = Counter()
        for entry in entries:
            codes[f"{entry.target}:{entry.code}"] += 1
            if not (entry.code and entry.hint and entry.message):
                self.report.dead_letters_unexplained.append(
                    f"{entry.target} {entry.key} code={entry.code!r} hint={entry.hint!r}"
                )
        self.report.dead_letters = sum(codes.values())
        self.report.dead_letters_by_code = dict(sorted(codes.items()))

    def _figures(self, p: Pipeline, producer: ProducerLoop) -> None:
        report = self.report
        # from the counters: a poll's result does not count what went out in batches
        report.events = p.counters("propeller").get("customers.produced", 0) + p.counters(
            "atollon"
        ).get("products.produced", 0)
        report.deliveries = sum(p.counters(t).get("produced", 0) for t in TARGETS)
        report.failed_polls = producer.failed_polls
        parked: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        for target in TARGETS:
            c = p.counters(target)
            report.retries += c.get("retries", 0)
            report.resent_overdue += c.get("resent_overdue", 0)
            report.dependency_waits += c.get("dependency_waits", 0)
            for name, value in c.items():
                if name.startswith("parked_"):
                    parked[name.removeprefix("parked_")] += value
                if name.startswith("skipped_"):
                    skipped[name.removeprefix("skipped_")] += value
            report.faults_injected[target] = dict(p.stats(target)["faults_injected"])
        report.faults_injected[ERP] = dict(p.stats(ERP)["faults_injected"])
        report.parked = dict(parked)
        report.skipped = dict(skipped)
        report.faults_met = dict(_retry_causes(self.directory))
        self._recovery(p)

    def _verify(self, p: Pipeline, disorder: Disorder) -> None:
        report = self.report
        comparisons: list[Comparison] = [*compare_all(p), compare_atollon_products(p)]
        report.comparisons = [str(c) for c in comparisons]
        report.duplicates = sum(len(c.duplicates) for c in comparisons)
        for comparison in comparisons:
            if not comparison.equal:
                report.problems.append(f"target differs from the source: {comparison}")
        report.lost = self._lost(p)
        if report.lost:
            report.problems.append(f"{report.lost} changes lost (ledger behind the source)")
        self._accounting(p, disorder)
        report.dead_letters_left = DeadLetterStore(p.redis, p.keys).count()
        if report.dead_letters_left:
            report.problems.append(f"{report.dead_letters_left} dead letters left after replay")
        if report.dead_letters_unexplained:
            report.problems.append(
                f"{len(report.dead_letters_unexplained)} dead letters without code or hint"
            )

    def _lost(self, p: Pipeline) -> int:
        """Records whose last produced version is not what a target's ledger holds."""
        state = State(p.redis, p.keys)
        lost = 0
        flows = {"customer": TARGETS, "product": ("atollon",)}
        for entity, targets in flows.items():
            snapshot: dict[str, str] = p.redis.hgetall(p.keys.snapshot(ERP, entity))  # type: ignore[assignment]
            for target in targets:
                for key, fingerprint in snapshot.items():
                    ledger = state.ledger_get(target, entity, str(key))
                    if ledger is None or ledger.fingerprint != fingerprint:
                        lost += 1
                        if lost <= 5:
                            self.report.observations.append(
                                f"lost: {target} {entity} {key} ledger="
                                f"{ledger.fingerprint if ledger else None} source={fingerprint}"
                            )
        return lost

    def _accounting(self, p: Pipeline, disorder: Disorder) -> None:
        """Deliveries counted as produced without an outcome, and what became of each.

        One whose content went out again as a newer version of the record (the producer was
        stopped mid-publish, so its snapshot did not move and the next poll sent the change
        again) is a blemish of the accounting only. Any other was lost on its way: by the
        broker, or by a worker killed between taking it and recording it as unacknowledged.
        """
        report = self.report
        missing: list[tuple[str, str]] = []
        for target in TARGETS:
            marker = p.keys.produced_marker(target, "")
            for key in p.redis.scan_iter(match=f"{marker}*", count=1000):
                delivery_id = str(key)[len(marker) :]
                if not p.redis.exists(p.keys.delivery_outcome(target, delivery_id)):
                    missing.append((target, delivery_id))
        report.unaccounted = len(missing)
        if not missing:
            return
        newest: dict[tuple[str, str], int] = {}
        for (target, _), (delivery, _) in disorder.published.items():
            index = (target, delivery.event.event_id)
            newest[index] = max(newest.get(index, 0), delivery.event.source_version)
        logs = [
            path.read_text(errors="replace") for path in sorted(self.directory.glob("worker-*.log"))
        ]
        for target, delivery_id in missing:
            event_id, _, version = delivery_id.rpartition(".")
            if newest.get((target, event_id), 0) > int(version or 0):
                report.unaccounted_resent += 1
                continue
            report.unaccounted_lost += 1
            found = disorder.published.get((target, delivery_id))
            what = (
                f"{found[0].event.entity} {found[0].event.key} messages {found[1]}"
                if found
                else "never seen published"
            )
            inflight = p.redis.hget(p.keys.inflight(target), delivery_id)
            started = time.strftime("%H:%M:%S", time.gmtime(float(inflight))) if inflight else "no"
            seen = p.redis.zscore(p.keys.pending(target), delivery_id)
            pending = time.strftime("%H:%M:%S", time.gmtime(float(seen))) if seen else "no"
            where = _find_in_redis(p.redis, event_id) if report.unaccounted_lost <= 3 else []
            report.observations.append(
                f"delivery lost: {target} {delivery_id} ({what}); last worker line: "
                f"{_last_line(logs, event_id, target)}; left in flight by a worker: {started}; "
                f"pending, last seen moving: {pending}; "
                f"found in Redis under: {where or 'nothing'}"
            )
        if report.unaccounted_lost:
            report.problems.append(
                f"{report.unaccounted_lost} deliveries never reached an outcome and their "
                "change was not sent again"
            )
        if report.unaccounted_resent:
            report.observations.append(
                f"{report.unaccounted_resent} deliveries counted as produced have no outcome: "
                "the producer was stopped while publishing them, and their change went out "
                "again as a newer version"
            )


def run_chaos(
    settings: ChaosSettings,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ChaosReport:
    """Run one chaos run in ``directory`` (a temporary one when None)."""
    if directory is not None:
        return ChaosRun(settings, directory, progress).run()
    with tempfile.TemporaryDirectory(prefix="erpsync-chaos-") as tmp:
        return ChaosRun(settings, Path(tmp), progress).run()


def print_text(report: ChaosReport) -> None:
    """The figures for a human."""
    lines = [
        ("result", "PASS" if report.ok else "FAIL"),
        ("seed", report.seed),
        ("customers / products", f"{report.customers} / {report.products}"),
        ("chaos phase", f"{report.chaos_s} s"),
        ("events / deliveries", f"{report.events} / {report.deliveries}"),
        ("producer polls failed", report.failed_polls),
        ("edits", report.edits),
        ("workers SIGKILLed", f"{report.kills} ({report.kill_all} times all at once)"),
        ("worker restarts", report.worker_restarts),
        (
            "workers exited by themselves",
            f"{report.worker_exits_at_redis_restart} during the Redis restart, "
            f"{report.worker_unexpected_exits} otherwise",
        ),
        ("producer restarts", report.producer_restarts),
        ("Redis restarts", f"{report.redis_restarts} (down {report.redis_down_s} s)"),
        ("outcomes resumed after Redis", f"{report.redis_outcomes_resumed_after_s} s"),
        (
            "held deliveries running again after a kill",
            f"{report.recovery_after_kill_s} s ({report.held_at_kills} held at "
            f"{report.kills} kills)",
        ),
        (
            "held deliveries running again after a cut-off",
            f"{report.recovery_after_cut_off_s} s ({report.held_at_cut_off} held, "
            f"cut off {report.settings['cut_off_s']} s)",
        ),
        ("held deliveries never seen running again", report.held_not_restarted),
        ("faults injected", report.faults_injected),
        ("faults met by workers", report.faults_met),
        ("retries", report.retries),
        ("resent after their lease (broker losses)", report.resent_overdue),
        ("dependency waits", report.dependency_waits),
        ("parked", report.parked),
        (
            "duplicates / stale / batch duplicates published",
            f"{report.duplicates_published} / {report.stale_published} / "
            f"{report.batch_duplicates_published}",
        ),
        ("skipped", report.skipped),
        ("dead letters", f"{report.dead_letters} {report.dead_letters_by_code}"),
        ("operator restores (backoffice)", report.operator_restores),
        (
            "replayed",
            f"{report.replayed} in {report.replay_rounds} rounds {report.replay_resolved}",
        ),
        ("duplicates in targets", report.duplicates),
        ("lost changes", report.lost),
        (
            "deliveries without outcome",
            f"{report.unaccounted} (lost {report.unaccounted_lost}, "
            f"sent again as a newer version {report.unaccounted_resent})",
        ),
        ("time to converge", f"{report.converge_s} s"),
        ("converged after the last kill", f"{report.converged_after_last_kill_s} s"),
        ("total", f"{report.total_s} s"),
    ]
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    for comparison in report.comparisons:
        print(f"  {comparison}")
    for note in report.observations:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    if report.problems:
        print("timeline:")
        for line in report.timeline:
            print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits 1 when the run found a problem."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the chaos phase")
    parser.add_argument("--customers", type=int, default=2000, help="customers in the ERP")
    parser.add_argument("--workers", type=int, default=2, help="worker processes kept running")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this directory")
    args = parser.parse_args(argv)
    settings = ChaosSettings(
        minutes=args.minutes,
        customers=args.customers,
        workers=args.workers,
        random_seed=args.seed,
        converge_timeout_s=max(900.0, args.minutes * 60),
    )
    quiet = args.json
    # The in-process producer's failed polls and the simulators' dropped clients are the
    # faults the run injects: the figures count them, the output needs no line for each.
    configure_logging("ERROR", "console")
    logging.getLogger("simulators").setLevel(logging.CRITICAL)

    def progress(message: str) -> None:
        if not quiet:
            print(f"[chaos] {message}", flush=True)

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    report = run_chaos(settings, args.keep, progress)
    if args.keep is not None:
        (args.keep / "report.json").write_text(
            json.dumps(report.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
    if args.json:
        print_json({"machine": machine_info(), **report.as_dict()})
    else:
        print_text(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
