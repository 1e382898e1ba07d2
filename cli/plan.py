"""``erpsync plan FLOW``: what the flow's first run would do at each target, written nowhere.

Reads the source and the targets (GETs, and Propeller's search, which changes nothing) and
prints per target how many records the first run would create, update, leave unchanged,
adopt (link to a record made without our id, by the flow's match rules) or leave to an
operator (ambiguous), with examples and the fields that would change. Writes to no system
and stores nothing (the producer computes the same decisions again, and stores them, just
before the flow's first run).

Exit status: 0 planned; 2 on an error (bad flow, the source or a target could not be read).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli._config import settings_or_exit
from cli._output import console, err_console, print_examples, print_json, read_progress
from erpsync.logging import configure_logging
from erpsync.redaction import redact
from producers.plan import PLAN_KINDS, TargetPlan, make_plan
from producers.reconcile import ReconcileError

ERROR = 2


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    flow: Annotated[str, typer.Argument(help="the flow to plan, e.g. customers")],
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="only this target (repeat for several)"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
    limit: Annotated[
        int, typer.Option(min=0, help="examples per kind and target (0: all of them)")
    ] = 10,
) -> None:
    """What FLOW's first run would do at each target: create, update, unchanged, adopt,
    ambiguous (read only: nothing is written anywhere)."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    from producers.runner import ProducerService

    listed = None if limit == 0 else limit
    service = ProducerService(settings)
    progress, on_progress = read_progress(quiet=json_output)
    try:
        with (
            progress,
            make_plan(service, flow, target, limit=listed, progress=on_progress) as planner,
        ):
            targets = planner.run()
            source_records = planner.reconciliation.report.source_records
    except ReconcileError as exc:
        err_console.print(f"[red]erpsync plan: {exc}[/]", highlight=False)
        raise typer.Exit(ERROR) from None
    except Exception as exc:  # noqa: BLE001 (Redis, a source: reported, not traced)
        err_console.print(f"[red]erpsync plan: {redact(f'{type(exc).__name__}: {exc}')}[/]",
                          highlight=False)  # fmt: skip
        raise typer.Exit(ERROR) from None
    finally:
        service.close()
    if json_output:
        print_json(
            {
                "flow": flow,
                "source_records": source_records,
                "targets": {name: t.as_dict() for name, t in targets.items()},
            }
        )
    else:
        print_plan(flow, source_records, targets)
    if any(t.not_checked for t in targets.values()):
        raise typer.Exit(ERROR)


def print_plan(
    flow: str, source_records: int, targets: dict[str, TargetPlan], *, out: Console = console
) -> None:
    """The plan for people: a table of counts, then per target its examples."""
    table = Table(title=f"plan {flow} ({source_records:,} source records): nothing written")
    for column in ("target", *PLAN_KINDS, "rules"):
        table.add_column(column, justify="left" if column in ("target", "rules") else "right")
    for name, t in targets.items():
        if t.not_checked is not None:
            table.add_row(name, *("-" for _ in PLAN_KINDS), f"not read: {t.not_checked}")
            continue
        table.add_row(name, *(f"{t.counts[k]:,}" for k in PLAN_KINDS), ", ".join(t.rules) or "-")
    out.print(table)
    for name, t in targets.items():
        if t.not_checked is not None:
            continue
        for note in t.notes:
            out.print(f"[bold]{name}[/]: {note}", highlight=False)
        for kind in ("adopt", "ambiguous", "update", "create"):
            examples = t.examples[kind]
            if not examples:
                continue
            heading = f"[bold]{name}[/] {kind} ({t.counts[kind]:,}):"
            lines = [_describe(kind, item) for item in examples]
            print_examples(out, heading, lines, t.counts[kind])


def _fields(fields: dict[str, Any]) -> str:
    return (
        "; ".join(f"{f}: {v.get('target')!r} -> {v.get('source')!r}" for f, v in fields.items())
        or "nothing changes"
    )


def _describe(kind: str, item: dict[str, Any]) -> str:
    key = item.get("key")
    if kind == "adopt":
        return (
            f"{key} -> {item['target_id']} {item.get('name')!r} (by {item.get('rule')}): "
            f"{_fields(item.get('fields') or {})}"
        )
    if kind == "ambiguous":
        found = ", ".join(f"{c['target_id']} {c.get('name')!r} ({c['rule']})"
                          for c in item.get("candidates", []))  # fmt: skip
        return f"{key}: {item.get('reason')}: {found}"
    if kind == "update":
        return f"{key}: {_fields(item.get('fields') or {})}"
    return str(key)
