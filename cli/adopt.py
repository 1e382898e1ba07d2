"""``erpsync adopt``: the records the first run held because their match was ambiguous.

* ``erpsync adopt review [--flow F] [--json]``: every held record, per target, with the
  target records it matched and why nothing was adopted;
* ``erpsync adopt link KEY TARGET_ID [--target T]``: adopt that target record (one of the
  record's candidates, or any record of the target without an external id of ours) for
  KEY: our external id is written onto it and it is updated;
* ``erpsync adopt create KEY [--target T]``: create KEY in the target as a new record.

Each decision is stored in the flow's adoption table, written to the audit log (the one DLQ
operations use: ``erpsync dlq audit``), and the held delivery (dead-lettered with code
``adoption-review``) is replayed, so the workers act on it at once. A decision taken before
the record's delivery arrived is simply there when it does.

Exit status: 0 done; 2 on an error (unknown flow, target or key; a target id the target
does not have, that carries another record's external id of ours, or is adopted for another
record already).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cli._config import settings_or_exit
from cli._output import console, err_console, print_json
from cli.dlq import operator_session
from cli.services.replay import DeadLetterFilter, default_actor
from erpsync.errors import SyncError
from erpsync.settings import Settings
from state.adoption import REVIEW_CODE, AdoptionTable, Candidate, Entry
from state.dlq import DeadLetterStore
from state.keys import Keys

ERROR = 2

adopt_app = typer.Typer(
    help="Records held because their match was ambiguous: review, link, create.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(adopt_app, name="adopt")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]erpsync adopt: {message}[/]", highlight=False)
    return typer.Exit(ERROR)


def _flow(settings: Settings, flow: str | None) -> str:
    """The flow meant: the one given, else the only enabled flow with match rules."""
    with_rules = [n for n, f in settings.flows.items() if f.enabled and f.match_rules()]
    if flow is not None:
        if flow not in with_rules:
            raise _fail(f"flow {flow!r} has no match rules (flows with some: "
                        f"{', '.join(with_rules) or 'none'})")  # fmt: skip
        return flow
    if len(with_rules) != 1:
        raise _fail(
            f"say which flow (--flow): {', '.join(with_rules) or 'no flow has match rules'}"
        )
    return with_rules[0]


def _table(settings: Settings) -> tuple[AdoptionTable, DeadLetterStore]:
    from state.client import redis_client

    client, keys = redis_client(settings), Keys(settings.key_prefix)
    return AdoptionTable(client, keys), DeadLetterStore(client, keys)


FlowOption = Annotated[
    str | None, typer.Option("--flow", "-f", help="the flow (default: the one with match rules)")
]
TargetOption = Annotated[
    str | None, typer.Option("--target", "-t", help="the target (default: where KEY is held)")
]
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="who decides, for the audit log (default: OS user)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print as JSON")]
KeyArgument = Annotated[str, typer.Argument(help="the source record's key, e.g. C000123")]


@adopt_app.command("review")
def review(
    flow: FlowOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every record held for an operator's decision, with its candidates."""
    settings = settings_or_exit()
    name = _flow(settings, flow)
    table, _ = _table(settings)
    held = table.reviews(name, settings.flows[name].match_rules())
    if json_output:
        print_json([{"target": t, "key": k, **e.as_dict()} for t, k, e in held])
        return
    if not held:
        console.print(f"nothing held for review in flow {name}")
        return
    out = Table(title=f"held for review: flow {name} ({len(held)})")
    for column in ("target", "key", "why", "candidates (target id, name, rule)"):
        out.add_column(column)
    for target, key, entry in held:
        found = "\n".join(f"{c.target_id}  {c.name!r}  ({c.rule})" for c in entry.candidates)
        out.add_row(target, key, entry.reason or "", found)
    console.print(out)
    console.print("decide with: erpsync adopt link KEY TARGET_ID --target T | "
                  "erpsync adopt create KEY --target T")  # fmt: skip


def _held(
    table: AdoptionTable, settings: Settings, flow: str, key: str, target: str | None
) -> tuple[str, Entry]:
    targets = [target] if target else list(settings.flows[flow].match_rules())
    found = [(t, e) for t in targets if (e := table.get(flow, t, key)) is not None
             and e.decision == "review"]  # fmt: skip
    if not found:
        raise _fail(f"{key} is not held for review in flow {flow}"
                    + (f" at {target}" if target else ""))  # fmt: skip
    if len(found) > 1:
        raise _fail(f"{key} is held at {', '.join(t for t, _ in found)}: say which (--target)")
    return found[0]


def _held_record(
    flow: str | None, key: str, target: str | None
) -> tuple[Settings, str, AdoptionTable, str, Entry]:
    """The settings, the flow meant, its adoption table, and where KEY is held with its
    entry (an error if it is not held, or held at several targets and none was named)."""
    settings = settings_or_exit()
    name = _flow(settings, flow)
    table, _ = _table(settings)
    where, held = _held(table, settings, name, key, target)
    return settings, name, table, where, held


def _report(done: dict[str, Any], json_output: bool, text: str) -> None:
    """What a decision did: ``done`` as JSON, or ``text`` and how many were replayed."""
    if json_output:
        print_json(done)
    else:
        console.print(f"{text}; {done['replayed']} held delivery replayed", highlight=False)


def _decide(
    settings: Settings, flow: str, target: str, key: str, entry: Entry, actor: str | None
) -> dict[str, Any]:
    """Store the decision, audit it, replay the held delivery; what was done."""
    table, store = _table(settings)
    table.set(flow, target, key, entry)
    who = actor or default_actor()
    details = {"flow": flow, "target": target, "key": key, **entry.as_dict()}
    store.audit(who, f"adopt_{'link' if entry.decision == 'adopt' else 'create'}", 1, details)
    criteria = DeadLetterFilter(targets=(target,), codes=(REVIEW_CODE,), flows=(flow,),
                                keys=(key,))  # fmt: skip
    with operator_session(settings, who, publisher=True) as session:
        entries = session.operator.select(criteria)
        replayed = 0
        if entries:
            report = session.operator.replay(
                session.operator.plan(entries), criteria=criteria.as_dict()
            )
            replayed = len(report.replayed)
    return {**details, "replayed": replayed}


def _outside_candidates(settings: Settings, target: str, key: str, target_id: str) -> Candidate:
    """A target record that was no candidate, read at the target: it must exist and carry
    no external id of ours (another record's would make two records one)."""
    from delivery.sinks import build_sinks
    from delivery.sinks.adoption import adopter_for
    from state.client import redis_client
    from state.limits import RateLimiter

    client = redis_client(settings)
    sinks = build_sinks(settings, RateLimiter(client, Keys(settings.key_prefix)))
    try:
        sink = sinks.get(target)
        adopter = getattr(sink, "adopter", None) or adopter_for(sink)  # behind its tables
        if adopter is None:
            raise _fail(f"{target}'s records cannot be read to adopt one")
        try:
            found = adopter.find(target_id)
        except SyncError as error:
            raise _fail(f"{target} could not be read: {error}") from None
    finally:
        for sink in sinks.values():
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    if found is None:
        raise _fail(f"{target} has no record {target_id}")
    if found.key is not None and found.key != key:
        raise _fail(f"{target} record {target_id} belongs to {found.key} already (it carries "
                    "that external id of ours)")  # fmt: skip
    if found.refused is not None:
        raise _fail(f"{target} record {target_id} cannot be linked: {found.refused}")
    return Candidate(found.target_id, found.name, "operator")


@adopt_app.command("link")
def link(
    key: KeyArgument,
    target_id: Annotated[
        str,
        typer.Argument(
            help="the target record to adopt: a candidate, or any record "
            "without an external id of ours"
        ),
    ],
    flow: FlowOption = None,
    target: TargetOption = None,
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Adopt TARGET_ID for KEY: our external id is written onto it, then it is updated.

    TARGET_ID is one of KEY's candidates, or any record of the target that carries no
    external id of ours (read at the target to check it)."""
    settings, name, table, where, held = _held_record(flow, key, target)
    chosen = next((c for c in held.candidates if c.target_id == target_id), None)
    if chosen is None:
        chosen = _outside_candidates(settings, where, key, target_id)
    taken = next(
        (k for k, e in table.entries(name, where)
         if e.decision == "adopt" and e.target_id == target_id and k != key),
        None,
    )  # fmt: skip
    if taken is not None:
        raise _fail(f"{where} record {target_id} is adopted for {taken} already")
    entry = Entry("adopt", target_id=target_id, name=chosen.name, rule="operator",
                  candidates=held.candidates, decided_by=actor or default_actor())  # fmt: skip
    done = _decide(settings, name, where, key, entry, actor)
    _report(done, json_output, f"{key} at {where}: adopts {target_id}")


@adopt_app.command("create")
def create(
    key: KeyArgument,
    flow: FlowOption = None,
    target: TargetOption = None,
    actor: ActorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create KEY in the target as a new record, whatever matched it."""
    settings, name, _, where, held = _held_record(flow, key, target)
    entry = Entry("create", candidates=held.candidates, reason=held.reason,
                  decided_by=actor or default_actor())  # fmt: skip
    done = _decide(settings, name, where, key, entry, actor)
    _report(done, json_output, f"{key} at {where}: created as a new record")
