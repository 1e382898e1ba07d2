"""``erpsync worker``, ``erpsync produce`` and ``erpsync run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Annotated

import typer
from rich.table import Table

from cli._config import settings_or_exit
from cli._output import console, print_json
from erpsync.logging import configure_logging
from erpsync.settings import Settings
from producers.base import PollResult


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("produce")(produce)
    app.command("run")(run)


def default_queues(settings: Settings) -> list[str]:
    """A queue per target of every enabled flow."""
    from state.messages import queue_for

    targets = sorted({t for f in settings.flows.values() if f.enabled for t in f.targets})
    return [queue_for(t) for t in targets]


def worker(
    queues: Annotated[
        str | None, typer.Option(help="comma-separated targets or queues (default: every target)")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="parallel deliveries")] = None,
    pool: Annotated[str | None, typer.Option(help="threads, prefork or solo")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics on this port")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's own log level")] = "WARNING",
) -> None:
    """Run a Celery worker consuming the targets' queues (Ctrl-C stops it cleanly)."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    from state.messages import queue_for
    from workers.app import app, configure

    configure(settings, app)
    chosen = (
        [q if q.startswith("sync.") else queue_for(q) for q in queues.split(",") if q.strip()]
        if queues
        else default_queues(settings)
    )
    if not chosen:
        console.print("[red]erpsync worker: no enabled flow has a target: nothing to consume[/]")
        raise typer.Exit(2)
    if metrics_port is not None:
        os.environ["ERPSYNC_WORKER__METRICS_PORT"] = str(metrics_port)
    argv = [
        "worker",
        f"--queues={','.join(chosen)}",
        f"--concurrency={concurrency or settings.worker.concurrency}",
        f"--pool={pool or settings.worker.pool}",
        f"--loglevel={loglevel}",
        f"--hostname=erpsync-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--task-events",
    ]
    if not sys.stdout.isatty():
        argv.insert(0, "--quiet")  # a global option: no banner, the output stays JSON lines
    app.worker_main(argv)


def _print_results(results: list[PollResult], as_json: bool) -> None:
    if as_json:
        print_json([r.as_dict() for r in results])
        return
    table = Table(title="poll")
    for column in ("stream", "records", "changed", "deleted", "deliveries", "seconds", "note"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.stream,
            str(r.records),
            str(r.changed),
            str(r.deleted),
            str(r.deliveries),
            f"{r.duration_s:.2f}",
            r.skipped or "",
        )
    console.print(table)


def produce(
    once: Annotated[bool, typer.Option("--once", help="poll every stream once, then exit")] = False,
    interval: Annotated[
        float | None, typer.Option(help="seconds between polls (default: each flow's)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print results as JSON")] = False,
) -> None:
    """Poll the sources for changes and enqueue one event per change and target."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    from producers.runner import ProducerService

    service = ProducerService(settings)
    try:
        if once:
            results = service.poll_once()
            _print_results(results, json_output)
            if any(r.skipped and r.skipped.startswith("failed") for r in results):
                raise typer.Exit(1)
            return
        every = interval or min(
            (f.poll_interval_s for f in settings.flows.values() if f.enabled), default=30.0
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

        def report(result: PollResult) -> None:
            if json_output:
                sys.stdout.write(json.dumps(result.as_dict()) + "\n")
                sys.stdout.flush()
            elif result.events or result.skipped:
                console.print(
                    f"{result.stream}: {result.records} records, {result.changed} changed, "
                    f"{result.deleted} deleted, {result.deliveries} deliveries"
                    + (f" ({result.skipped})" if result.skipped else ""),
                    highlight=False,
                )

        try:
            service.run(every, stop, on_result=report)
        except KeyboardInterrupt:
            stop.set()
    finally:
        service.close()


def run(
    interval: Annotated[float | None, typer.Option(help="seconds between polls")] = None,
    concurrency: Annotated[int | None, typer.Option(help="worker concurrency")] = None,
) -> None:
    """A worker and the producers on one machine (Ctrl-C stops both cleanly)."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    command = [sys.executable, "-m", "cli", "worker"]
    if concurrency:
        command.append(f"--concurrency={concurrency}")
    worker_process = subprocess.Popen(command)  # noqa: S603 (our own CLI)
    try:
        produce(once=False, interval=interval, json_output=False)
    finally:
        worker_process.send_signal(signal.SIGTERM)
        try:
            worker_process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker_process.kill()
