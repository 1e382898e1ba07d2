"""``erpsync dlq …``: list, show, replay, edit, drop, export, import and audit dead letters.

The rules (selection, supersession, accounting, validation, audit) live in
:mod:`cli.services.replay`; this module parses options and prints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.table import Table

from cli._config import settings_or_exit
from cli._dlq_view import entries_table, print_plan, print_replay, progress_bar
from cli._output import console, grid, print_json, say
from cli.services.replay import (
    DeadLetterFilter,
    DlqOperator,
    DurationError,
    EditError,
    ImportFileError,
    Missing,
    entry_as_dict,
    format_age,
    parse_duration,
    parse_import,
)
from erpsync.events import Delivery
from erpsync.settings import Settings
from state.dlq import DeadLetter, DeadLetterStore, Retention
from state.keys import Keys
from state.store import State

__all__ = ["dlq_app", "grid", "operator_session", "register", "say"]

dlq_app = typer.Typer(
    name="dlq",
    help="Dead letters: list, show, replay, edit, drop, export, import, audit.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")


# -- shared options ---------------------------------------------------------------------
TargetOpt = Annotated[
    list[str] | None, typer.Option("--target", help="only this target (repeatable)")
]
CodeOpt = Annotated[
    list[str] | None,
    typer.Option("--code", help="only this error code: vendor code, http-<status>… (repeatable)"),
]
FlowOpt = Annotated[list[str] | None, typer.Option("--flow", help="only this flow (repeatable)")]
EntityOpt = Annotated[
    list[str] | None, typer.Option("--entity", help="only this entity (repeatable)")
]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option("--key", help="only this record key; globs allowed: 'C0001*' (repeatable)"),
]
OlderOpt = Annotated[
    str | None,
    typer.Option("--older-than", help="only entries whose last failure is older: 30s, 15m, 2h, 3d"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
IdsArg = Annotated[
    list[str] | None, typer.Argument(metavar="ID", help="entry ids", show_default=False)
]
AllOpt = Annotated[bool, typer.Option("--all", help="every dead letter")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="who acts, for the audit log (default: the OS user)")
]


def _filter(
    target: list[str] | None,
    code: list[str] | None,
    flow: list[str] | None,
    entity: list[str] | None,
    key: list[str] | None,
    older_than: str | None,
) -> DeadLetterFilter:
    older_s = None
    if older_than is not None:
        try:
            older_s = parse_duration(older_than)
        except DurationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    return DeadLetterFilter(
        targets=tuple(target or ()),
        codes=tuple(code or ()),
        flows=tuple(flow or ()),
        entities=tuple(entity or ()),
        keys=tuple(key or ()),
        older_than_s=older_s,
    )


@dataclass
class _Session:
    settings: Settings
    operator: DlqOperator


@contextmanager
def _session(actor: str | None, *, publisher: bool = False) -> Iterator[_Session]:
    """The operator over this installation's Redis (and broker, to replay)."""
    with operator_session(settings_or_exit(), actor, publisher=publisher) as session:
        yield session


@contextmanager
def operator_session(
    settings: Settings, actor: str | None, *, publisher: bool = False
) -> Iterator[_Session]:
    """The dead-letter operator of ``settings`` acting as ``actor`` (the console's too)."""
    from state.client import redis_client
    from state.trace import TraceStore

    client = redis_client(settings)
    keys = Keys(settings.key_prefix)
    store = DeadLetterStore(
        client,
        keys,
        Retention(
            max_entries=settings.dlq.max_entries, max_age_s=settings.dlq.max_age_days * 86400
        ),
    )
    state = State(client, keys)
    celery_app = None
    publish_fn = None
    if publisher:
        from state.messages import create_app
        from state.publish import publish

        celery_app = create_app(settings)
        app_ = celery_app

        def publish_fn(deliveries: Sequence[Delivery]) -> int:
            return publish(app_, deliveries, state=state, count=False)  # pending until done

    try:
        yield _Session(
            settings,
            DlqOperator(
                store,
                state,
                actor=actor,
                publish=publish_fn,
                trace=TraceStore.of(client, settings),
            ),
        )
    finally:
        if celery_app is not None:
            celery_app.close()
        client.close()


def _fail(message: str, code: int = 1) -> typer.Exit:
    say(f"erpsync dlq: {message}", "bold red", err=True)
    return typer.Exit(code)


# -- list / show ------------------------------------------------------------------------
@dlq_app.command("list")
def list_entries(
    target: TargetOpt = None,
    code: CodeOpt = None,
    flow: FlowOpt = None,
    entity: EntityOpt = None,
    key: KeyOpt = None,
    older_than: OlderOpt = None,
    limit: Annotated[int, typer.Option(help="show at most this many (0: all)")] = 0,
    json_output: JsonOpt = False,
) -> None:
    """Dead letters, oldest first, filtered by target, code, flow, entity, key and age."""
    flt = _filter(target, code, flow, entity, key, older_than)
    with _session(None) as s:
        entries = s.operator.select(flt)
    shown = entries[:limit] if limit > 0 else entries
    if json_output:
        print_json([entry_as_dict(e) for e in shown])
        return
    if not entries:
        say("no dead letters" + (" match" if not flt.empty else ""))
        return
    title = f"dead letters: {len(entries)}" + (
        f" (showing {len(shown)})" if shown != entries else ""
    )
    console.print(entries_table(shown, title))


@dlq_app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="the entry's id")],
    json_output: JsonOpt = False,
) -> None:
    """Everything in one dead letter: the error, the hint, the attempts and the event."""
    with _session(None) as s:
        entry = s.operator.store.get(entry_id)
        reason = s.operator.explain_missing(entry_id) if entry is None else ""
    if entry is None:
        raise _fail(f"dead letter {entry_id}: {reason}")
    if json_output:
        print_json(entry_as_dict(entry))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    event = entry.delivery.event
    rows: list[tuple[str, Any]] = [
        ("id", entry.id),
        ("target", entry.target),
        ("flow / entity / key", f"{entry.flow} / {entry.entity} / {entry.key}"),
        ("operation", event.operation),
        ("code", entry.code),
        ("error", f"{entry.error_class} ({entry.error_type})"),
        ("vendor", f"{entry.vendor_code or '-'} {entry.vendor_name or ''}".strip()),
        ("HTTP status", entry.status_code if entry.status_code is not None else "-"),
        ("message", entry.message),
        ("hint", entry.hint or "-"),
        ("response", entry.response_excerpt or "-"),
        ("attempts", entry.attempts),
        ("first failure", entry.first_failure_at.isoformat(timespec="seconds")),
        (
            "last failure",
            f"{entry.last_failure_at.isoformat(timespec='seconds')} "
            f"({format_age(entry.age_s)} ago)",
        ),
        ("dead-lettered", f"{entry.dead_lettered_count} time(s), replayed {entry.replays}"),
        (
            "event",
            f"{event.event_id} version {event.source_version}, "
            f"detected {event.detected_at.isoformat(timespec='seconds')}",
        ),
        ("parent", event.parent_key or "-"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    console.print("[bold]payload[/]")
    console.print_json(json.dumps(event.payload, ensure_ascii=False))


# -- replay -----------------------------------------------------------------------------
def _choose(
    s: _Session,
    ids: list[str] | None,
    flt: DeadLetterFilter,
    all_entries: bool,
) -> tuple[list[DeadLetter], list[Missing], dict[str, Any]]:
    """The entries named by ids, a filter or --all (exactly one of them)."""
    given = sum([bool(ids), not flt.empty, all_entries])
    if given == 0:
        raise _fail("name the entries: IDs, a filter (--code, --target …) or --all", 2)
    if given > 1:
        raise _fail("give IDs, a filter or --all, not several of them", 2)
    if ids:
        found, missing = s.operator.get_many(ids)
        return found, missing, {"ids": list(ids)[:50]}
    entries = s.operator.select(None if all_entries else flt)
    return entries, [], ({"all": True} if all_entries else flt.as_dict())


@dlq_app.command("replay")
def replay(
    ids: IdsArg = None,
    all_entries: AllOpt = False,
    target: TargetOpt = None,
    code: CodeOpt = None,
    flow: FlowOpt = None,
    entity: EntityOpt = None,
    key: KeyOpt = None,
    older_than: OlderOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be replayed; change nothing")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for the workers' outcomes and report them")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits at most")] = 300.0,
    actor: ActorOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Put dead letters back on their target's queue (superseded ones are skipped).

    Replays go through the workers: rate limit and circuit apply; the ledger applies each once.
    """
    flt = _filter(target, code, flow, entity, key, older_than)
    with _session(actor, publisher=not dry_run) as s:
        entries, missing, criteria = _choose(s, ids, flt, all_entries)
        plan = s.operator.plan(entries, missing)
        if dry_run:
            print_plan(plan, json_output=json_output)
            raise typer.Exit(1 if plan.missing else 0)
        with progress_bar() as bar:
            task = bar.add_task("replaying", total=len(plan.entries))
            report = s.operator.replay(
                plan, progress=lambda n: bar.advance(task, n), criteria=criteria
            )
        outcomes = None
        if wait and report.replayed:
            with progress_bar() as bar:
                task = bar.add_task("waiting for outcomes", total=len(report.replayed))
                outcomes = s.operator.wait(
                    report.replayed, timeout_s=timeout, progress=lambda n: bar.advance(task, n)
                )
    print_replay(report, outcomes, json_output=json_output)
    failed = bool(report.missing) or (
        outcomes is not None and bool(outcomes.failed_again or outcomes.pending)
    )
    raise typer.Exit(1 if failed else 0)


# -- edit -------------------------------------------------------------------------------
@dlq_app.command("edit")
def edit(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="the entry's id")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="field=value instead of an editor (repeatable; dotted: address.city=Laval; "
            "JSON values: active=false, parent_key=null)",
        ),
    ] = None,
    actor: ActorOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Edit a dead letter's payload ($EDITOR, or --set), validated before it is stored."""
    with _session(actor) as s:
        payload = None
        if not set_:
            entry = s.operator.store.get(entry_id)
            if entry is None:
                raise _fail(f"dead letter {entry_id}: {s.operator.explain_missing(entry_id)}")
            original = json.dumps(entry.delivery.event.payload, indent=2, ensure_ascii=False)
            text = click.edit(original + "\n", extension=".json", require_save=True)
            if text is None or text.strip() == original.strip():
                say("no change; nothing stored")
                return
            try:
                payload = json.loads(text)
            except ValueError as exc:
                raise _fail(f"not JSON ({exc}); nothing stored") from None
            if not isinstance(payload, dict):
                raise _fail("the payload must be a JSON object; nothing stored")
        try:
            result = s.operator.edit(entry_id, payload=payload, sets=set_ or ())
        except EditError as exc:
            say(f"erpsync dlq: {exc}; nothing stored", "bold red", err=True)
            for reason in exc.reasons:
                say(f"  - {reason}", err=True)
            raise typer.Exit(1) from None
    if result is None:
        if json_output:
            print_json({"id": entry_id, "changed": []})
        else:
            say("no change; nothing stored")
        return
    if json_output:
        print_json(
            {"id": result.entry.id, "changed": result.changed, **entry_as_dict(result.entry)}
        )
        return
    say(
        f"stored {result.entry.id}: changed {', '.join(result.changed)}; "
        f"replay it with: erpsync dlq replay {result.entry.id}"
    )


# -- drop -------------------------------------------------------------------------------
@dlq_app.command("drop")
def drop(
    ids: IdsArg = None,
    all_entries: AllOpt = False,
    target: TargetOpt = None,
    code: CodeOpt = None,
    flow: FlowOpt = None,
    entity: EntityOpt = None,
    key: KeyOpt = None,
    older_than: OlderOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    actor: ActorOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Delete dead letters for good (the audit log keeps who dropped what)."""
    flt = _filter(target, code, flow, entity, key, older_than)
    with _session(actor) as s:
        entries, missing, criteria = _choose(s, ids, flt, all_entries)
        if entries and not ids and not yes:
            typer.confirm(f"drop {len(entries)} dead letter(s) for good?", abort=True)
        dropped = s.operator.drop(entries, criteria)
    if json_output:
        print_json({"dropped": dropped, "missing": [m.as_dict() for m in missing]})
    else:
        say(f"dropped {dropped}")
        for m in missing:
            say(f"{m.id}: {m.reason}", "yellow")
    raise typer.Exit(1 if missing else 0)


# -- export / import --------------------------------------------------------------------
@dlq_app.command("export")
def export(
    target: TargetOpt = None,
    code: CodeOpt = None,
    flow: FlowOpt = None,
    entity: EntityOpt = None,
    key: KeyOpt = None,
    older_than: OlderOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    actor: ActorOpt = None,
) -> None:
    """Dead letters as JSON lines (one entry per line, complete enough to import)."""
    flt = _filter(target, code, flow, entity, key, older_than)
    with _session(actor) as s:
        entries = s.operator.select(flt)
        lines = s.operator.export_lines(entries, flt.as_dict())
        if output is None:
            for line in lines:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            with output.open("w", encoding="utf-8") as fh:
                for line in lines:
                    fh.write(line + "\n")
            say(f"exported {len(entries)} to {output}", err=True)


@dlq_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="a JSON-lines file from `dlq export` ('-': stdin)")],
    actor: ActorOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Load dead letters from JSON lines; every line is checked first, all or nothing."""
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot read {path}: {exc.strerror}", 2) from None
    try:
        entries = parse_import(text.splitlines())
    except ImportFileError as exc:
        if json_output:
            print_json(
                {
                    "imported": 0,
                    "invalid_lines": [{"line": n, "problem": p} for n, p in exc.problems],
                }
            )
        else:
            say(f"erpsync dlq: {exc}; nothing imported", "bold red", err=True)
            for number, problem in exc.problems[:50]:
                say(f"  line {number}: {problem}", err=True)
        raise typer.Exit(1) from None
    with _session(actor) as s:
        added, replaced = s.operator.import_entries(entries, source=str(path))
    if json_output:
        print_json({"imported": len(entries), "added": added, "replaced": replaced})
    else:
        say(f"imported {len(entries)} ({added} new, {replaced} replaced)")


# -- audit ------------------------------------------------------------------------------
@dlq_app.command("audit")
def audit(
    limit: Annotated[int, typer.Option(help="the most recent N actions")] = 50,
    json_output: JsonOpt = False,
) -> None:
    """Who did what to dead letters, when, and to how many (newest first)."""
    with _session(None) as s:
        rows = s.operator.store.audit_log(limit=limit)
    if json_output:
        print_json(rows)
        return
    if not rows:
        say("the audit log is empty")
        return
    lines = []
    for row in rows:
        details = {k: v for k, v in row["details"].items() if v not in ({}, [], None)}
        lines.append(
            [
                str(row.get("at", ""))[:19],
                str(row.get("who", "")),
                str(row.get("action", "")),
                str(row.get("count", "")),
                json.dumps(details, ensure_ascii=False)[:300],
            ]
        )
    columns = ("at", "who", "action", "count", "details")
    console.print(grid("dead-letter audit log", columns, lines, flexible="details", fold=True))
