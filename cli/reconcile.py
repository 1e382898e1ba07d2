"""``erpsync reconcile FLOW``: compare the source with each target, field by field; repair.

Exit status (cron-friendly): 0 when every target was checked and none drifted, 1 when drift
was found (whether ``--repair`` then fixed it or not), 2 on an error: a bad flow or
configuration, a source that cannot be read, or a target that could not be checked (its
circuit is open, its read failed) while the others showed no drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cli._config import settings_or_exit
from cli._output import console, err_console, print_examples, print_json, read_progress
from cli.services.replay import default_actor
from erpsync.logging import configure_logging
from erpsync.redaction import redact
from producers.reconcile import (
    DEFAULT_LIMIT,
    KINDS,
    ReconcileError,
    Report,
    store_result,
    trace_findings,
)
from producers.reconcile_repair import RepairReport, repair, wait_repairs

if TYPE_CHECKING:
    from producers.runner import ProducerService

#: exit statuses
NO_DRIFT, DRIFT, ERROR = 0, 1, 2


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile)


def exit_status(report: Report) -> int:
    """0: checked everywhere, no drift; 1: drift found; 2: a target could not be checked."""
    if report.drift:
        return DRIFT
    if report.unchecked:
        return ERROR
    return NO_DRIFT


# long: 7 typer parameters, one per flag (the body is 40 lines)
def reconcile(
    flow: Annotated[str, typer.Argument(help="the flow to check, e.g. customers")],
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="only this target (repeat for several)"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    do_repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="send every missing, different or orphaned record again through the "
            "workers (duplicates are only reported)",
        ),
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            min=0,
            help="examples listed per kind and target (counts stay exact); 0 lists all",
        ),
    ] = DEFAULT_LIMIT,
    timeout: Annotated[
        float, typer.Option(help="seconds --repair waits for the workers' outcomes")
    ] = 600.0,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="who repairs, for the audit log (default: the OS user)"),
    ] = None,
) -> None:
    """Compare FLOW's source with each target field by field; report (and repair) drift."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    from producers.runner import ProducerService

    listed = None if limit == 0 else limit
    service = ProducerService(settings)
    try:
        progress, on_progress = read_progress(quiet=json_output)
        try:
            with (
                progress,
                service.reconciliation(
                    flow, target, limit=listed, progress=on_progress
                ) as reconciliation,
            ):
                report = reconciliation.run()
                store_result(service.producer.redis, service.producer.keys, report)
                trace_findings(reconciliation, service.producer.trace)
                repaired = None
                if do_repair:
                    repaired = _repair(service, reconciliation, actor, listed, timeout, progress)
        except ReconcileError as exc:
            err_console.print(f"[red]erpsync reconcile: {exc}[/]", highlight=False)
            raise typer.Exit(ERROR) from None
        except Exception as exc:  # noqa: BLE001 (Redis, the broker: reported, not traced)
            message = redact(f"{type(exc).__name__}: {exc}")
            err_console.print(f"[red]erpsync reconcile: {message}[/]", highlight=False)
            raise typer.Exit(ERROR) from None
    finally:
        service.close()

    if json_output:
        out = report.as_dict()
        if repaired is not None:
            out["repair"] = repaired.as_dict()
        print_json(out)
    else:
        print_report(report, repaired)
    raise typer.Exit(exit_status(report))


def _repair(
    service: ProducerService,
    reconciliation: Any,
    actor: str | None,
    limit: int | None,
    timeout_s: float,
    progress: Progress,
) -> RepairReport:
    sent_report, sent = repair(
        reconciliation, service.producer, actor=actor or default_actor(), limit=limit
    )
    waiting = progress.add_task("repairing (waiting for the workers)", total=None)
    progress.update(waiting, completed=len(sent))
    return wait_repairs(service.producer, sent_report, sent, timeout_s=timeout_s, limit=limit)


def _value(value: Any) -> str:
    return "∅" if value is None else repr(value)


def print_report(
    report: Report, repaired: RepairReport | None = None, *, out: Console = console
) -> None:
    """The report for people: a table per target, then the examples and the repair."""
    table = Table(title=f"reconcile {report.flow} ({report.source_records:,} source records)")
    for column in ("target", "checked", "in sync", *KINDS, "known limits"):
        left = column in ("target", "known limits")
        table.add_column(column, justify="left" if left else "right")
    for name, t in report.targets.items():
        if t.not_checked is not None:
            table.add_row(name, "-", "-", *("-" for _ in KINDS), f"not checked: {t.not_checked}")
            continue
        counts = [(f"[red]{t.counts[k]:,}[/]" if t.counts[k] else "0") for k in KINDS]
        table.add_row(
            name, f"{t.checked:,}", f"{t.counts['in_sync']:,}", *counts,
            ", ".join(t.known_limits) or "-",
        )  # fmt: skip
    out.print(table)
    for name, t in report.targets.items():
        if t.not_checked is not None or not t.drift:
            continue
        out.print(f"[bold]{name}[/]")
        for kind in KINDS:
            examples = t.examples[kind]
            if not examples:
                continue
            lines = [_describe(kind, item) for item in examples]
            print_examples(out, f"  {kind} ({t.counts[kind]:,}):", lines, t.counts[kind])
    if repaired is not None:
        _print_repair(repaired, out)
    if not report.drift and not report.unchecked:
        out.print("[green]no drift[/]")


def _describe(kind: str, item: dict[str, Any]) -> str:
    key = item.get("key")
    if kind == "different":
        fields = item.get("fields", {})
        changes = "; ".join(
            f"{f}: source {_value(v.get('source'))}, target {_value(v.get('target'))}"
            for f, v in fields.items()
        )
        return f"{key}: {changes}"
    if kind == "duplicates":
        return f"{key}: target ids {', '.join(str(i) for i in item.get('target_ids', []))}"
    if kind == "orphaned":
        why = "gone from the source" if item.get("source") == "absent" else "inactive in the source"
        return f"{key} (target id {item.get('target_id')}): active in the target, {why}"
    return str(key)


def _print_repair(repaired: RepairReport, out: Console) -> None:
    out.print("[bold]repair[/]")
    for target, done in repaired.as_dict().items():
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(done["outcomes"].items())) or "none yet"
        line = f"  {target}: {done['sent']} sent; {outcomes}"
        if done["waiting"]:
            line += f"; {done['waiting']} still waiting"
        out.print(line, highlight=False)
        for entry in done["dead_lettered"]:
            out.print(
                f"    {entry['key']}: dead-lettered {entry['code']} ({entry['dlq_id']}): "
                f"{entry['hint']}",
                highlight=False,
            )
        for entry in done["not_repaired"]:
            out.print(f"    {entry['key']}: not repaired: {entry['hint']}", highlight=False)
