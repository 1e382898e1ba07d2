"""``erpsync demo``: the whole job on one machine, in a few minutes, with nothing installed.

It starts a Redis of its own (unless ``ERPSYNC_REDIS_URL`` names one), the sandbox seeded
with an ERP of customers (with a hierarchy), products and billable work, a worker process
and the producers; shows each flow converge; makes a few edits in the ERP and in Atollon and
shows them arrive; prints a summary per flow and target; and stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import redis
import tomli_w
import typer
from rich import box
from rich.live import Live
from rich.table import Table

from cli._demo_addresses import address_counts, address_edits, give_delivery_addresses
from cli._demo_edits import DemoEdits, Edit
from cli._demo_people import give_people, people_counts, people_edits
from cli._output import console, err_console, print_json
from cli.embedded_redis import EmbeddedRedis, EmbeddedRedisError, die_with_parent
from erpsync.logging import configure_logging
from erpsync.settings import load_settings
from producers.runner import ProducerService
from simulators._sandbox import SeedRequest
from simulators.server import CREDENTIALS, RunningSandbox
from state.dlq import DeadLetterStore
from state.keys import Keys

REPO = Path(__file__).resolve().parents[1]

FLOWS: dict[str, dict[str, Any]] = {
    "customers": {
        "source": "onlineerp",
        "entity": "customer",
        "targets": ["propeller", "hipe", "atollon"],
        "mapping": {"propeller": {}, "hipe": {}, "atollon": {}},
    },
    "contacts": {
        "source": "onlineerp",
        "entity": "person",
        "targets": ["hipe", "atollon"],
        "mapping": {"hipe": {}, "atollon": {}},
    },
    "products": {
        "source": "onlineerp",
        "entity": "product",
        "targets": ["atollon"],
        "mapping": {"atollon": {}},
    },
    "billing": {
        "source": "atollon",
        "entity": "billing",
        "targets": ["onlineerp"],
        "mapping": {"onlineerp": {}},
    },
    "invoices": {
        "source": "onlineerp",
        "entity": "invoice",
        "targets": ["atollon"],
        "mapping": {"atollon": {}},
    },
}

#: quick waits: the demo shows retries without making anyone wait for them
WORKER: dict[str, Any] = {
    "pool": "threads",
    "concurrency": 16,
    "prefetch_multiplier": 8,
    "visibility_timeout_s": 30.0,
    "unacked_restore_interval_s": 2.0,
    "transient_max_attempts": 10,
    "transient_base_s": 0.2,
    "transient_cap_s": 2.0,
    "dependency_base_s": 0.2,
    "dependency_cap_s": 2.0,
    "dependency_max_waits": 60,
    "circuit_failure_threshold": 10,
    "circuit_cooldown_s": 1.0,
    "circuit_cooldown_max_s": 5.0,
    "pump_interval_s": 0.05,
}

LIGHT_FAULTS: list[dict[str, Any]] = [
    {"rate": 0.05, "statuses": [503, 429], "retry_after_s": 0.5, "latency_ms": 10},
    {"drop_rate": 0.01},
]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@dataclass
class Demo:
    """One run of the demo; everything it starts is stopped by :meth:`close`."""

    records: int
    faults: str
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="erpsync-demo-")))
    prefix: str = field(default_factory=lambda: f"demo{os.getpid()}")
    worker: subprocess.Popen[bytes] | None = None
    started: float = field(default_factory=time.monotonic)

    # -- set-up -----------------------------------------------------------------------
    def start(self, say: Callable[[str], None]) -> None:
        redis_url = os.environ.get("ERPSYNC_REDIS_URL")
        if redis_url:
            say(f"Redis: {redis_url.split('@')[-1]} (ERPSYNC_REDIS_URL)")
        else:
            embedded = self.stack.enter_context(EmbeddedRedis(directory=self.directory / "redis"))
            redis_url = embedded.url
            say(f"Redis: embedded, {embedded.url}")
        self.redis_url = redis_url
        self.sandbox = RunningSandbox()
        self.sandbox.start()
        self.stack.callback(self.sandbox.stop)
        products = max(10, self.records // 5)
        activities = min(50, max(1, self.records // 20))
        request = SeedRequest(customers=self.records, products=products, activities=activities)
        for simulator in self.sandbox.simulators.values():
            simulator.seed(request)
        addresses = give_delivery_addresses(self)
        people = give_people(self)
        say(
            f"Sandbox: ERP with {self.records} customers (3-level hierarchy, {addresses} "
            f"addresses, {people} people), {products} products; Atollon with {activities} "
            "activities to invoice"
        )
        if self.faults == "light":
            for system in ("propeller", "hipe", "atollon", "onlineerp"):
                with self.control(system) as client:
                    client.post("/_sandbox/faults", json=LIGHT_FAULTS).raise_for_status()
            say("Faults: 5% of answers 503/429 with Retry-After, 1% dropped connections")
        systems = {
            name: {"base_url": ep.api_url, **CREDENTIALS[name]}
            for name, ep in self.sandbox.endpoints.items()
        }
        config = {
            "redis_url": redis_url,
            "key_prefix": self.prefix,
            "log_level": "WARNING",
            "log_format": "json",
            "systems": systems,
            "flows": FLOWS,
            "worker": WORKER,
        }
        self.config_path = self.directory / "erpsync.toml"
        self.config_path.write_text(tomli_w.dumps(config), encoding="utf-8")
        self.settings = load_settings(self.config_path)
        self.keys = Keys(self.prefix)
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.stack.callback(self.redis.close)
        self.stack.callback(self._clear_keys)
        self._start_worker()
        self.producer = ProducerService(self.settings)
        self.stack.callback(self.producer.close)
        say(f"Worker: pid {self.worker.pid if self.worker else '?'}, 16 threads; producers ready")

    def _start_worker(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERPSYNC_")}
        env["ERPSYNC_CONFIG"] = str(self.config_path)
        log = (self.directory / "worker.log").open("wb")
        self.stack.callback(log.close)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.stack.callback(self._stop_worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.redis.hlen(self.keys.workers()):
                return
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited: see {self.directory / 'worker.log'}")
            time.sleep(0.1)
        raise RuntimeError("the worker did not start within 60 s")

    def _stop_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGTERM)
        try:
            self.worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=5)

    def _clear_keys(self) -> None:
        if os.environ.get("ERPSYNC_REDIS_URL"):  # a Redis we do not own: leave it clean
            for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
                self.redis.delete(key)

    def close(self, *, keep_files: bool = False) -> None:
        """Stop everything; remove the run's directory unless its logs are wanted."""
        self.stack.close()
        if not keep_files:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- observing --------------------------------------------------------------------
    def control(self, system: str) -> httpx.Client:
        return httpx.Client(base_url=self.sandbox.endpoints[system].url, timeout=30)

    def records_of(self, system: str, entity: str) -> list[dict[str, Any]]:
        with self.control(system) as client:
            data: list[dict[str, Any]] = client.get(f"/_sandbox/records/{entity}").json()
            return data

    def counters(self, target: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.redis.hgetall(self.keys.counters(target)).items()}

    def pairs(self) -> Iterator[tuple[str, str]]:
        for flow, spec in FLOWS.items():
            for target in spec["targets"]:
                yield flow, target

    def settled(self) -> bool:
        waiting = self.redis.zcard(self.keys.delayed()) + self.redis.zcard(
            self.keys.delayed_claimed()
        )
        if waiting:
            return False
        for target in {t for _, t in self.pairs()}:
            c = self.counters(target)
            if c.get("produced", 0) > c.get("applied", 0) + c.get("skipped", 0) + c.get(
                "dead_lettered", 0
            ):
                return False
            if self.redis.hlen(self.keys.inflight(target)):
                return False
        return True

    def progress(self, phase: str) -> Table:
        table = Table(title=f"erpsync demo — {phase} — {time.monotonic() - self.started:.0f} s")
        for column in (
            "flow",
            "target",
            "produced",
            "applied",
            "skipped",
            "dead letters",
            "pending",
        ):
            table.add_column(
                column, justify="right" if column not in ("flow", "target") else "left"
            )
        for flow, target in self.pairs():
            c = self.counters(target)
            produced = c.get(f"{flow}.produced", 0)
            applied = c.get(f"{flow}.applied", 0)
            skipped = c.get(f"{flow}.skipped", 0)
            dead = c.get(f"{flow}.dead_lettered", 0)
            table.add_row(
                flow, target, str(produced), str(applied), str(skipped), str(dead),
                str(max(0, produced - applied - skipped - dead)),
            )  # fmt: skip
        retries = sum(self.counters(t).get("retries", 0) for t in {t for _, t in self.pairs()})
        table.caption = f"retries so far: {retries}"
        return table

    def converge(self, phase: str, timeout_s: float, live: Live | None) -> bool:
        """Poll until a poll finds nothing new and every delivery has its outcome."""
        deadline = time.monotonic() + timeout_s
        quiet_polls = 0
        next_poll = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_poll:
                results = self.producer.poll_once()
                events = sum(r.events for r in results)
                next_poll = now + 1.0
                quiet_polls = quiet_polls + 1 if events == 0 else 0
            if live is not None:
                live.update(self.progress(phase))
            if quiet_polls >= 2 and self.settled():
                return True
            time.sleep(0.25)
        return False

    # -- edits ------------------------------------------------------------------------
    def make_edits(self) -> list[Edit]:
        """Edit the ERP (rename, deactivate, add a child, addresses, people) and Atollon; how
        to see each arrive."""
        return [*DemoEdits(self).make(), *address_edits(self), *people_edits(self)]

    # -- summary ----------------------------------------------------------------------
    def summary(self, converged: bool, edits: list[Edit]) -> dict[str, Any]:
        dead: dict[tuple[str, str], dict[str, int]] = {}
        for entry in DeadLetterStore(self.redis, self.keys).iter_entries():
            codes = dead.setdefault((entry.flow, entry.target), {})
            codes[entry.code] = codes.get(entry.code, 0) + 1
        flows: dict[str, dict[str, Any]] = {}
        for flow, target in self.pairs():
            c = self.counters(target)
            flows.setdefault(flow, {})[target] = {
                "created": c.get(f"{flow}.action_created", 0),
                "updated": c.get(f"{flow}.action_updated", 0)
                + c.get(f"{flow}.action_unarchived", 0),
                "unchanged": c.get(f"{flow}.skipped", 0),
                "archived": c.get(f"{flow}.action_archived", 0)
                + c.get(f"{flow}.action_deleted", 0),
                "invoices": c.get(f"{flow}.action_invoiced", 0),
                "dead_lettered": dead.get((flow, target), {}),
            }
        retries = {t: self.counters(t).get("retries", 0) for t in {t for _, t in self.pairs()}}
        erp, atollon = self.counters("onlineerp"), self.counters("atollon")
        invoices = {
            "issued": erp.get("billing.action_invoiced", 0),
            "recorded_in_atollon": erp.get("billing.invoice_recorded", 0),
            "paid": atollon.get("invoices.invoice_paid", 0),
            "cancelled": atollon.get("invoices.invoice_cancelled", 0),
        }
        return {
            "converged": converged,
            "edits_arrived": all(all(e.arrived.values()) for e in edits) if edits else False,
            "seconds": round(time.monotonic() - self.started, 1),
            "records": self.records,
            "faults": self.faults,
            "flows": flows,
            "retries": retries,
            "invoices": invoices,
            "addresses": address_counts(self),
            "people": people_counts(self),
            "edits": [{"edit": e.description, "arrived": e.arrived} for e in edits],
        }


def _summary_table(summary: dict[str, Any]) -> Table:
    # Fits an 80-column terminal without truncating a name or a header.
    table = Table(title="summary", box=box.ROUNDED, pad_edge=False, collapse_padding=True)
    for column in ("flow", "target"):
        table.add_column(column, no_wrap=True)
    for column in ("created", "updated", "unchanged", "archived", "invoices"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("dead letters")
    for flow, targets in summary["flows"].items():
        for target, row in targets.items():
            dead = ", ".join(f"{code}: {n}" for code, n in row["dead_lettered"].items()) or "0"
            table.add_row(
                flow, target, str(row["created"]), str(row["updated"]), str(row["unchanged"]),
                str(row["archived"]), str(row["invoices"]), dead,
            )  # fmt: skip
    return table


def _converge_and_edit(
    run: Demo, timeout: float, say: Callable[[str], None], *, quiet: bool
) -> tuple[bool, list[Edit]]:
    """The initial sync, then the edits: whether both converged, and each edit's arrival."""
    edits: list[Edit] = []
    display: contextlib.AbstractContextManager[Live | None] = (
        Live(run.progress("initial sync"), console=console, refresh_per_second=4)
        if not quiet
        else contextlib.nullcontext()
    )
    with display as live:
        converged = run.converge("initial sync", timeout, live)
        if converged:
            say("Initial sync converged; making edits in the ERP and Atollon…")
            edits = run.make_edits()
            converged = run.converge("edits", timeout, live)
            for edit in edits:
                edit.arrived = {target: check() for target, check in edit.checks.items()}
    return converged, edits


def _print_summary(run: Demo, summary: dict[str, Any], edits: list[Edit], *, quiet: bool) -> None:
    """The human summary: each edit's arrival per target, the table, invoices, the verdict."""
    if quiet:
        console.print(run.progress("done"))
    for edit in edits:
        marks = " ".join(f"{t} {'✓' if ok else '✗'}" for t, ok in edit.arrived.items())
        console.print(f"  {edit.description}: {marks}", highlight=False)
    console.print(_summary_table(summary))
    i = summary["invoices"]
    console.print(
        f"invoices: {i['issued']} issued in the ERP, {i['recorded_in_atollon']} "
        f"recorded in Atollon, {i['paid']} paid, {i['cancelled']} cancelled",
        highlight=False,
    )
    a = summary["addresses"]
    console.print(
        f"addresses: {a['onlineerp']} in the ERP, {a['propeller']} in Propeller, "
        f"{a['hipe']} in HIPE",
        highlight=False,
    )
    n = summary["people"]
    console.print(
        f"people: {n['onlineerp']} in the ERP, {n['hipe']} in HIPE, {n['atollon']} in Atollon",
        highlight=False,
    )
    state = "converged" if summary["converged"] and summary["edits_arrived"] else "DID NOT converge"
    console.print(f"{state} in {summary['seconds']} s")


def _stay_up(run: Demo, say: Callable[[str], None]) -> None:
    """``--keep-running``: name the endpoints, then keep polling until Ctrl-C."""
    say("Still running (Ctrl-C to stop):")
    for name, endpoint in run.sandbox.endpoints.items():
        say(f"  {name:<10} {endpoint.api_url}  (control: {endpoint.url}/_sandbox)")
    say(f"  config     {run.config_path}")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            run.producer.poll_once()
            time.sleep(2)


def demo(
    records: Annotated[int, typer.Option(help="ERP customers to seed", min=10, max=100_000)] = 1000,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="stay up afterwards (Ctrl-C to stop)")
    ] = False,
    faults: Annotated[
        str, typer.Option(help="none or light: inject faults into the targets")
    ] = "none",
    timeout: Annotated[float, typer.Option(help="seconds allowed for each phase")] = 150.0,
) -> None:
    """Run the whole sync on this machine: sandbox, Redis, worker, producers; then edits."""
    if faults not in {"none", "light"}:
        err_console.print("[red]--faults must be none or light[/]")
        raise typer.Exit(2)
    quiet = json_output or not console.is_terminal
    configure_logging("WARNING", "console")  # the live table is the demo's output

    def say(text: str) -> None:
        (err_console if json_output else console).print(text, highlight=False)

    def interrupted(signum: int, frame: object) -> None:
        # Ctrl-C under `uv run` (scripts/demo) arrives twice: from the terminal and forwarded
        # by uv. A second KeyboardInterrupt would cut the clean-up short (the worker outlived
        # the demo and its Redis), so later signals are ignored while it runs (it is bounded).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)  # stop like Ctrl-C: clean up everything
    run = Demo(records=records, faults=faults)
    keep_files = True  # a failed run keeps its logs (worker.log, redis/redis.log) for a look
    try:
        try:
            run.start(say)
        except EmbeddedRedisError as exc:
            err_console.print(f"[red]erpsync demo: {exc}[/]")
            raise typer.Exit(2) from None
        converged, edits = _converge_and_edit(run, timeout, say, quiet=quiet)
        summary = run.summary(converged, edits)
        if json_output:
            print_json(summary)
        else:
            _print_summary(run, summary, edits, quiet=quiet)
        if keep_running:
            _stay_up(run, say)
        keep_files = not (summary["converged"] and summary["edits_arrived"])
        if keep_files:
            raise typer.Exit(1)
    except KeyboardInterrupt:
        keep_files = False
        say("Interrupted: stopping everything the demo started…")
        raise typer.Exit(130) from None
    finally:
        run.close(keep_files=keep_files)
        if keep_files:
            err_console.print(f"erpsync demo: logs kept in {run.directory}", highlight=False)
