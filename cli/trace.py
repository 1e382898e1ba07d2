"""``erpsync trace KEY``: the story of one source record, newest last, per target."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cli._config import settings_or_exit
from cli._output import console, err_console, print_json
from erpsync.settings import Settings
from state.trace import TraceStore, describe, story

#: the column of events that concern no one target (a change seen in the source)
SOURCE = "(source)"


def register(app: typer.Typer) -> None:
    app.command("trace")(trace)


def read_story(settings: Settings, key: str, flow: str | None = None) -> list[dict[str, Any]]:
    """Every traced event of ``key`` (in ``flow``, else every flow), oldest first.

    Each event names its ``flow`` and carries ``text``, the line :func:`describe` makes.
    """
    from state.client import redis_client

    flows = [flow] if flow else sorted(settings.flows)
    client = redis_client(settings)
    try:
        found = TraceStore.of(client, settings).read(flows, key)
    finally:
        client.close()
    events: list[dict[str, Any]] = []
    for name, raw in found.items():
        events.extend({"flow": name, **e, "text": describe(e)} for e in story(raw))
    events.sort(key=lambda e: float(e.get("at", 0)))
    return events


def by_target(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The events per target; a source's events (detections) go with every target."""
    targets = sorted({str(e["target"]) for e in events if e.get("target")})
    if not targets:
        return {SOURCE: events}
    return {t: [e for e in events if e.get("target") in (None, t)] for t in targets}


def when(at: Any) -> str:
    """An event's time, UTC, to the millisecond."""
    return datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def trace(
    key: Annotated[str, typer.Argument(help="the record's key, as erpsync knows it (C0042)")],
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """The story of one record: changes seen, deliveries, attempts, waits, outcomes,
    dead letters, replays and reconcile findings, newest last, per target."""
    settings = settings_or_exit()
    if flow is not None and flow not in settings.flows:
        err_console.print(
            f"[red]erpsync trace: no flow {flow!r} (flows: {', '.join(sorted(settings.flows))})[/]",
            highlight=False,
        )
        raise typer.Exit(2)
    if settings.trace_max_events == 0:
        err_console.print("[yellow]erpsync trace: the trace is off (trace_max_events = 0)[/]")
    events = read_story(settings, key, flow)
    if json_output:
        print_json(events)
        return
    if not events:
        where = f"flow {flow}" if flow else "any flow"
        err_console.print(
            f"no trace of {key!r} in {where} (traces expire after "
            f"{settings.trace_ttl_s / 86400:g} days; keys are the source's, namespaced: "
            "propeller:42)",
            highlight=False,
        )
        raise typer.Exit(1)
    for target, rows in by_target(events).items():
        table = Table(title=f"{key} → {target}", box=box.SIMPLE_HEAVY, title_justify="left")
        for column in ("time (UTC)", "flow", "what"):
            table.add_column(column, overflow="fold")
        for event in rows:
            table.add_row(when(event["at"]), str(event["flow"]), str(event["text"]))
        console.print(table)
