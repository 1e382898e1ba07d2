"""``erpsync status`` and ``erpsync target list|pause|resume``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import redis
import typer

from cli._config import settings_or_exit
from cli._output import console, print_json
from cli.dlq import grid, say
from cli.services.replay import default_actor, format_age
from cli.services.status import gather_status
from erpsync.settings import SYSTEM_NAMES, Settings
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.limits import Circuit

target_app = typer.Typer(
    name="target",
    help="Targets: circuit states; pause or resume a target by hand.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="who acts, for the audit log (default: the OS user)")
]


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.add_typer(target_app, name="target")


@contextmanager
def _redis(settings: Settings) -> Iterator[redis.Redis]:
    from state.client import redis_client

    client = redis_client(settings)
    try:
        yield client
    finally:
        client.close()


def _fmt_lag(seconds: float) -> str:
    return "-" if seconds <= 0 else format_age(seconds)


def _codes(counts: dict[str, int]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in counts.items()) or "-"


def status(json_output: JsonOpt = False) -> None:
    """Per flow and target: last poll, lag, queue, in flight, retries, DLQ, circuit."""
    settings = settings_or_exit()
    try:
        with _redis(settings) as client:
            data = gather_status(settings, client)
    except redis.RedisError as exc:
        say(f"erpsync status: Redis unavailable: {exc}", "bold red", err=True)
        raise typer.Exit(1) from None
    if json_output:
        print_json(data)
        return
    flow_rows = _flow_rows(data["flows"])
    flow_columns = ("flow", "stream", "last poll", "records", "changed", "deleted", "error")
    console.print(grid("flows", flow_columns, flow_rows, flexible="error", fold=True))
    reconcile_rows = _reconcile_rows(data["flows"])
    if reconcile_rows:
        drift_columns = ("flow", "target", "reconciled", *_DRIFT, "in sync", "note")
        console.print(
            grid("last reconcile", drift_columns, reconcile_rows, flexible="note", fold=True)
        )
    target_rows = _target_rows(data["targets"])
    columns = (
        "target",
        "circuit",
        "queued",
        "flight",
        "retries",
        "lag",
        "DLQ",
        "applied",
        "skipped",
        "dead",
    )
    console.print(grid("targets", columns, target_rows))
    for t in data["targets"]:
        if t["dlq"]:
            say(f"dead letters at {t['name']}: {_codes(t['dlq'])}")
    say(f"dead letters: {data['dlq_total']}   workers: {len(data['workers'])}")
    _say_invoices(data.get("invoices"))


def _say_invoices(invoices: dict[str, int] | None) -> None:
    """The billing round trip in one line (when a flow bills)."""
    if invoices is None:
        return
    say(
        f"invoices: {invoices['issued']} issued in the ERP, "
        f"{invoices['recorded_in_atollon']} recorded in Atollon, {invoices['paid']} paid, "
        f"{invoices['partly_paid']} partly paid, {invoices['cancelled']} cancelled"
    )


_DRIFT = ("missing", "different", "orphaned", "duplicates")


def _flow_rows(flows: list[dict[str, Any]]) -> list[list[str]]:
    """One row per flow: its stream's last poll, what it found, its last error."""
    rows: list[list[str]] = []
    for flow in flows:
        stream = flow["stream"]
        age = stream["last_poll_age_s"]
        rows.append(
            [
                flow["name"] + ("" if flow["enabled"] else " (off)"),
                stream["name"],
                f"{format_age(age)} ago" if age is not None else "never",
                _num(stream["last_records"]),
                _num(stream["last_changed"]),
                _num(stream["last_deleted"]),
                stream["last_error"] or "",
            ]
        )
    return rows


def _target_rows(targets: list[dict[str, Any]]) -> list[list[str]]:
    """One row per target: circuit, queue, in flight, retries, lag, DLQ and counters."""
    rows: list[list[str]] = []
    for t in targets:
        counters = t["counters"]
        rows.append(
            [
                t["name"],
                _circuit(t["circuit"]),
                str(t["queued_deliveries"] + t["reserved"]),
                str(t["in_flight"]),
                str(t["scheduled_retries"]),
                _fmt_lag(t["lag_s"]),
                str(t["dlq_total"]),
                str(counters.get("applied", 0)),
                str(counters.get("skipped", 0)),
                str(counters.get("dead_lettered", 0)),
            ]
        )
    return rows


def _reconcile_rows(flows: list[dict[str, Any]]) -> list[list[str]]:
    """One row per flow and target of each flow's last reconcile."""
    rows: list[list[str]] = []
    for flow in flows:
        last = flow.get("reconcile")
        if not last:
            continue
        age = last["age_s"]
        when = f"{format_age(age)} ago" if age is not None else "?"
        if last.get("error"):
            rows.append([flow["name"], "-", when, *("-" for _ in _DRIFT), "-", last["error"]])
            continue
        for target, counts in last["targets"].items():
            note = f"not checked: {counts['not_checked']}" if counts.get("not_checked") else ""
            rows.append(
                [
                    flow["name"],
                    target,
                    when,
                    *(str(counts.get(kind, 0)) for kind in _DRIFT),
                    str(counts.get("in_sync", 0)),
                    note,
                ]
            )
    return rows


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _circuit(circuit: dict[str, Any]) -> str:
    state = str(circuit["state"])
    if state == "open" and circuit["until"]:
        return f"open ({format_age(max(0.0, circuit['until'] - time.time()))} left)"
    return state


def _known_targets(settings: Settings) -> list[str]:
    """The targets of the flows (enabled or not)."""
    return sorted({t for f in settings.flows.values() for t in f.targets})


def _check_target(settings: Settings, name: str) -> None:
    known = _known_targets(settings)
    if name not in known:
        hint = ", ".join(known) or f"none configured (systems: {', '.join(SYSTEM_NAMES)})"
        say(f"erpsync target: unknown target {name!r}; known: {hint}", "bold red", err=True)
        raise typer.Exit(2)


@target_app.command("list")
def list_targets(json_output: JsonOpt = False) -> None:
    """Every target with its circuit: closed, open, half_open or paused."""
    settings = settings_or_exit()
    with _redis(settings) as client:
        circuit = Circuit(client, Keys(settings.key_prefix))
        rows: list[dict[str, Any]] = [
            {"name": name, **circuit.status(name).as_dict()} for name in _known_targets(settings)
        ]
    if json_output:
        print_json(rows)
        return
    lines = [
        [
            row["name"],
            _circuit(row),
            str(row["failures"]),
            str(row["openings"]),
            str(row["reason"]),
        ]
        for row in rows
    ]
    columns = ("target", "circuit", "failures", "openings", "reason")
    console.print(grid("targets", columns, lines, flexible="reason", fold=True))


def pause_target(
    client: redis.Redis, keys: Keys, name: str, who: str, reason: str | None = None
) -> None:
    """Hold a target's deliveries (its circuit paused), audit-logged under ``who``."""
    Circuit(client, keys).pause(name, reason or f"paused by {who}")
    DeadLetterStore(client, keys).audit(who, "target.pause", 1, {"target": name})


def resume_target(client: redis.Redis, keys: Keys, name: str, who: str) -> None:
    """Deliver to a target again (its circuit closed), audit-logged under ``who``."""
    Circuit(client, keys).resume(name)
    DeadLetterStore(client, keys).audit(who, "target.resume", 1, {"target": name})


@target_app.command("pause")
def pause(
    name: Annotated[str, typer.Argument(help="the target, e.g. propeller")],
    reason: Annotated[str | None, typer.Option(help="why, shown by `target list`")] = None,
    actor: ActorOpt = None,
) -> None:
    """Stop delivering to a target: its deliveries wait, no retry is burned."""
    settings = settings_or_exit()
    _check_target(settings, name)
    who = actor or default_actor()
    with _redis(settings) as client:
        pause_target(client, Keys(settings.key_prefix), name, who, reason)
    say(f"{name} paused; `erpsync target resume {name}` resumes it")


@target_app.command("resume")
def resume(
    name: Annotated[str, typer.Argument(help="the target, e.g. propeller")],
    actor: ActorOpt = None,
) -> None:
    """Deliver to a target again (closes its circuit, whatever opened it)."""
    settings = settings_or_exit()
    _check_target(settings, name)
    who = actor or default_actor()
    with _redis(settings) as client:
        resume_target(client, Keys(settings.key_prefix), name, who)
    say(f"{name} resumed; waiting deliveries go out as they come due")
