"""How ``erpsync dlq`` shows dead letters: the entries table, a replay's plan and its report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli._output import console, err_console, grid, print_json, say
from cli.services.replay import Missing, ReplayOutcomes, ReplayPlan, ReplayReport, format_age
from state.dlq import DeadLetter


def entries_table(entries: Sequence[DeadLetter], title: str) -> Table:
    """One row per dead letter: ids, codes and keys whole, the error message cut."""
    rows = [
        [
            e.id,
            e.target,
            e.code,
            e.entity,
            e.key,
            str(e.attempts),
            format_age(e.age_s),
            e.message[:200],
        ]
        for e in entries
    ]
    columns = ("id", "target", "code", "entity", "key", "tries", "age", "error")
    return grid(title, columns, rows, flexible="error")


def progress_bar() -> Progress:
    """A transient bar on stderr: so many of so many, and the time taken."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _print_plan_table(plan: ReplayPlan) -> None:
    rows = [
        [
            p.entry.id,
            p.entry.target,
            p.entry.code,
            p.entry.key,
            str(p.entry.delivery.event.source_version),
            "replay" if p.verdict == "replay" else "skip: superseded",
            p.note,
        ]
        for p in plan.entries
    ]
    if rows:
        title = f"dry run: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}"
        columns = ("id", "target", "code", "key", "version", "would", "note")
        console.print(grid(title, columns, rows, flexible="note", fold=True))
    say(
        f"would replay {len(plan.to_replay)}, skip {len(plan.superseded)} superseded "
        "by a newer change of the same record"
    )


def _print_missing(missing: Sequence[Missing]) -> None:
    for m in missing:
        say(f"{m.id}: {m.reason}; nothing to replay", "yellow")


def print_plan(plan: ReplayPlan, *, json_output: bool) -> None:
    """A dry run: what would be replayed, what is superseded, what is missing."""
    if json_output:
        print_json(
            {
                "dry_run": True,
                "entries": [p.as_dict() for p in plan.entries],
                "would_replay": len(plan.to_replay),
                "superseded": len(plan.superseded),
                "missing": [m.as_dict() for m in plan.missing],
            }
        )
        return
    _print_plan_table(plan)
    _print_missing(plan.missing)


def print_replay(
    report: ReplayReport, outcomes: ReplayOutcomes | None, *, json_output: bool
) -> None:
    """What a replay did: replayed, superseded, missing, and the outcomes when waited for."""
    if json_output:
        data: dict[str, Any] = {
            "dry_run": False,
            "replayed": [e.id for e in report.replayed],
            "superseded": [p.as_dict() for p in report.superseded],
            "missing": [m.as_dict() for m in report.missing]
            + [{"id": i, "reason": "resolved meanwhile"} for i in report.vanished],
        }
        if outcomes is not None:
            data["outcomes"] = outcomes.as_dict()
        print_json(data)
    else:
        say(
            f"replayed {len(report.replayed)}: on their target queues; the workers apply them "
            "under each target's rate limit and circuit"
        )
        if report.superseded:
            say(
                f"skipped {len(report.superseded)} superseded by a newer change of the same "
                f"record: {', '.join(p.entry.id for p in report.superseded[:20])}"
            )
        _print_missing(report.missing)
        for entry_id in report.vanished:
            say(f"{entry_id}: resolved meanwhile; not replayed", "yellow")
        if outcomes is not None:
            say(
                f"applied {len(outcomes.applied)}, skipped {len(outcomes.skipped)}, "
                f"dead-lettered again {len(outcomes.failed_again)}, "
                f"still pending {len(outcomes.pending)}"
            )
            if outcomes.failed_again:
                say("dead-lettered again: " + ", ".join(outcomes.failed_again[:20]), "red")
