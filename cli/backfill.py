"""``erpsync backfill FLOW``: re-send every source record of a flow through the bulk paths.

For an initial load, or after a mapping change: every record is read from the source and
sent to the flow's targets whatever the snapshot says. Large loads go in bulk (Propeller
bulk upserts, HIPE CSV imports). The workers' ledger still skips what a target already has
with the same content, so a second backfill writes nothing; ``--force`` writes everything
again. ``--wait`` follows the workers until every delivery of the flow has an outcome.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli._config import settings_or_exit
from cli._output import console, err_console, print_json
from erpsync.logging import configure_logging
from producers.base import PollResult

if TYPE_CHECKING:
    from producers.runner import ProducerService

OUTCOMES = ("applied", "skipped", "dead_lettered")


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill)


def _flow_counters(
    service: ProducerService, flow: str, targets: list[str]
) -> dict[str, dict[str, int]]:
    """Per target: the flow's produced / applied / skipped / dead_lettered counters."""
    producer = service.producer
    out: dict[str, dict[str, int]] = {}
    for target in targets:
        raw = producer.redis.hmget(
            producer.keys.counters(target), [f"{flow}.{n}" for n in ("produced", *OUTCOMES)]
        )
        out[target] = {
            name: int(value or 0) for name, value in zip(("produced", *OUTCOMES), raw, strict=True)
        }
    return out


def _settled(counters: dict[str, int]) -> bool:
    return sum(counters[n] for n in OUTCOMES) >= counters["produced"]


def backfill(
    flow: Annotated[str, typer.Argument(help="the flow to re-send, e.g. customers")],
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="only this target (repeat for several)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="write every record again, even unchanged ones")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="follow the workers until every delivery has an outcome"),
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits at most")] = 3600.0,
    json_output: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Re-send every source record of FLOW to its targets (initial load, mapping change)."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    from producers.runner import ProducerService

    service = ProducerService(settings)
    try:
        try:
            targets = service.backfill_targets(flow, target)
        except ValueError as exc:
            err_console.print(f"[red]erpsync backfill: {exc}[/]", highlight=False)
            raise typer.Exit(2) from None
        before = _flow_counters(service, flow, targets)
        with _progress(quiet=json_output) as progress:
            results = _send_all(service, flow, targets, force, progress)
            waited, timings = (
                _follow(service, flow, targets, before, progress, timeout) if wait else (None, {})
            )
        after = _flow_counters(service, flow, targets)
    finally:
        service.close()

    summary = _summary(flow, targets, force, results, before, after, waited)
    if wait:
        summary["timings"] = timings
    if json_output:
        print_json(summary)
    else:
        _print_table(summary)
    if any(r.skipped for r in results) or waited is False:
        raise typer.Exit(1)


def _send_all(
    service: ProducerService, flow: str, targets: list[str], force: bool, progress: Progress
) -> list[PollResult]:
    """Read the whole source and send it, with a bar; a source failure exits 1."""
    reading = progress.add_task(f"reading {flow}", total=None, detail="")

    def on_progress(result: PollResult) -> None:
        progress.update(
            reading,
            completed=result.records,
            detail=f"{result.events} sent, {result.batches} batches",
        )

    try:
        results = service.backfill(flow, targets=targets, force=force, on_progress=on_progress)
    except Exception as exc:  # noqa: BLE001 (a source failure is reported, not traced)
        err_console.print(f"[red]erpsync backfill: {flow} failed: {exc}[/]")
        raise typer.Exit(1) from None
    records = sum(r.records for r in results)
    progress.update(reading, total=records, completed=records)
    return results


def _progress(*, quiet: bool) -> Progress:
    """A bar per phase: reading the source, then (with --wait) one per target, each with
    the time left at that target's own measured rate (targets apply at their own pace)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet,
        transient=False,
    )


def _summary(
    flow: str,
    targets: list[str],
    force: bool,
    results: list[PollResult],
    before: dict[str, dict[str, int]],
    after: dict[str, dict[str, int]],
    waited: bool | None,
) -> dict[str, Any]:
    """The backfill's result: what was read and sent, per stream, and each target's outcomes."""
    return {
        "flow": flow,
        "targets": targets,
        "force": force,
        "records": sum(r.records for r in results),
        "events": sum(r.events for r in results),
        "deliveries": sum(r.deliveries for r in results),
        "batches": sum(r.batches for r in results),
        "streams": [r.as_dict() for r in results],
        "outcomes": {
            t: {n: after[t][n] - before[t][n] for n in ("produced", *OUTCOMES)} for t in targets
        },
        "settled": waited,
    }


def _follow(
    service: ProducerService,
    flow: str,
    targets: list[str],
    before: dict[str, dict[str, int]],
    progress: Progress,
    timeout_s: float,
) -> tuple[bool, dict[str, dict[str, float]]]:
    """Show each target's outcomes until all deliveries of the flow have one (False on
    timeout), and per target how long it took and its rate (outcomes per second)."""
    bars = {t: progress.add_task(f"applying {t}", total=None, detail="") for t in targets}
    started = time.monotonic()
    deadline = started + timeout_s
    timings: dict[str, dict[str, float]] = {}
    while True:
        now = _flow_counters(service, flow, targets)
        for t in targets:
            if t not in timings and _settled(now[t]):
                seconds = max(time.monotonic() - started, 1e-3)
                done = sum(now[t][n] - before[t][n] for n in OUTCOMES)
                timings[t] = {"seconds": round(seconds, 3), "per_s": round(done / seconds, 2)}
            done = sum(now[t][n] - before[t][n] for n in OUTCOMES)
            progress.update(
                bars[t],
                total=max(1, now[t]["produced"] - before[t]["produced"]),
                completed=done,
                detail=", ".join(f"{n} {now[t][n] - before[t][n]}" for n in OUTCOMES),
            )
        if all(_settled(now[t]) for t in targets):
            return True, timings
        if time.monotonic() >= deadline:
            return False, timings
        time.sleep(0.5)


def _print_table(summary: dict[str, Any]) -> None:
    table = Table(title=f"backfill {summary['flow']}" + (" (forced)" if summary["force"] else ""))
    for column in ("target", "sent", "applied", "skipped", "dead-lettered"):
        table.add_column(column)
    for target, counts in summary["outcomes"].items():
        table.add_row(
            target,
            str(counts["produced"]),
            str(counts["applied"]),
            str(counts["skipped"]),
            str(counts["dead_lettered"]),
        )
    console.print(table)
    console.print(
        f"{summary['records']} records read, {summary['events']} sent as "
        f"{summary['deliveries']} deliveries ({summary['batches']} bulk messages)"
        + ("" if summary["settled"] is not None else "; the workers apply them (see --wait)")
    )
