"""``erpsync errors`` (the routing table) and ``erpsync doctor`` (config, mapping, reachability)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from adapters import ErrorTable, atollon, hipe, make_client, onlineerp, propeller
from cli._config import settings_or_exit
from cli._output import console, print_json
from delivery.engine import Sink
from delivery.sinks import build_sinks
from delivery.sinks.invoices import invoice_state_map
from delivery.sinks.view import ViewableSink
from erpsync.errors import AuthError, ConfigError, ErrorClass, SyncError, TransientError
from erpsync.flows import effective_mapping
from erpsync.mapping import target_mapping
from erpsync.redaction import redact
from erpsync.settings import (
    SYSTEM_NAMES,
    AtollonSettings,
    HipeSettings,
    HttpSystemSettings,
    OnlineErpSettings,
    PropellerSettings,
    Settings,
    load_settings,
)

TABLES: dict[str, Callable[[Mapping[str, ErrorClass] | None], ErrorTable]] = {
    "onlineerp": onlineerp.errors.error_table,
    "propeller": propeller.errors.error_table,
    "hipe": hipe.errors.error_table,
    "atollon": atollon.errors.error_table,
}


def register(app: typer.Typer) -> None:
    app.command("errors")(errors)
    app.command("doctor")(doctor)


def errors(
    system: Annotated[str | None, typer.Option(help="only this system")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the table as JSON")] = False,
) -> None:
    """The error routing table: what each vendor code or status means and what happens next."""
    overrides: dict[str, dict[str, ErrorClass]] = {}
    # The table is still useful without (valid) settings: the defaults are shown.
    with contextlib.suppress(ConfigError):
        overrides = {str(k): v for k, v in load_settings().errors.items()}
    if system is not None and system not in TABLES:
        console.print(f"[red]unknown system {system!r}; one of {', '.join(TABLES)}[/]")
        raise typer.Exit(2)
    rows: list[dict[str, str]] = []
    for name, build in TABLES.items():
        if system is None or system == name:
            rows.extend(build(overrides.get(name)).rows())
    if json_output:
        print_json(rows)
        return
    table = Table(title="erpsync error routing", show_lines=False)
    for column in ("system", "code / status", "name", "class", "action", "hint"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["system"], row["match"], row["name"], row["class"], row["action"], row["hint"]
        )
    console.print(table)


def _check(system: HttpSystemSettings, settings: Settings) -> str:
    """One cheap authenticated call to ``system`` through its adapter."""
    with make_client(system) as http:
        client: Any
        if isinstance(system, OnlineErpSettings):
            client = onlineerp.OnlineErpClient(
                http, system, error_overrides=settings.errors.get("onlineerp")
            )
        elif isinstance(system, PropellerSettings):
            client = propeller.PropellerClient(
                http, system, error_overrides=settings.errors.get("propeller")
            )
        elif isinstance(system, HipeSettings):
            client = hipe.HipeClient(http, system, error_overrides=settings.errors.get("hipe"))
        elif isinstance(system, AtollonSettings):
            client = atollon.AtollonClient(
                http, system, error_overrides=settings.errors.get("atollon")
            )
        else:
            raise TypeError(f"no adapter for {type(system).__name__}")
        return str(client.check())


def _why(name: str, error: SyncError) -> str:
    if isinstance(error, AuthError):
        if error.status_code is None:  # refused before any answer: TLS verification, URL
            return str(error)
        if name == "onlineerp" and error.status_code == 403:
            return "wrong company id (the licence does not hold COMPANY_ID)"
        if name == "atollon" and error.status_code == 403:
            return "unknown instance"
        return "bad credentials"
    if isinstance(error, TransientError) and error.status_code is None:
        return "unreachable"
    return str(error)


def flow_mappings(settings: Settings, sinks: Mapping[str, Sink]) -> dict[str, Any]:
    """Per flow and target: the effective field mapping and the target's known limits.

    The mapping comes from :mod:`erpsync.flows`, the table the settings validate against;
    known limits from the target's sink when it can be reconciled (:class:`ViewableSink`).
    """
    flows: dict[str, Any] = {}
    for name, flow in settings.flows.items():
        targets: dict[str, Any] = {}
        for target in flow.targets:
            routes = effective_mapping(
                flow.source,
                flow.entity,
                target,
                target_mapping(flow.mapping.get(target)),
                flow.source_fields,
            )
            sink = sinks.get(target)
            limits: list[str] = []
            if sink is not None and sink.handles(flow.entity):
                viewable: object = sink
                if isinstance(viewable, ViewableSink):
                    limits = sorted(viewable.known_limits(flow.entity))
            targets[target] = {
                "mapping": [route.as_dict() for route in routes],
                "known_limits": limits,
            }
        flows[name] = {
            "enabled": flow.enabled,
            "source": flow.source,
            "entity": flow.entity,
            "targets": targets,
        }
    return flows


def _print_mappings(flows: Mapping[str, Any]) -> None:
    for name, flow in flows.items():
        state = "" if flow["enabled"] else " (disabled)"
        for target, found in flow["targets"].items():
            table = Table(
                title=f"flow {name}{state}: {flow['entity']} {flow['source']} -> {target}",
                title_justify="left",
            )
            for column in ("source field", "canonical", f"{target} field", "from"):
                table.add_column(column, overflow="fold")
            for route in found["mapping"]:
                table.add_row(
                    route["source"] or "-", route["canonical"], route["target"], route["origin"]
                )
            console.print(table, highlight=False)
            if found["known_limits"]:
                limits = ", ".join(found["known_limits"])
                console.print(
                    f"  known limits ({target} documents no way to write or clear): {limits}",
                    highlight=False,
                )


def _checks(settings: Settings) -> list[dict[str, Any]]:
    """Redis and each configured system, one cheap call each."""
    results: list[dict[str, Any]] = []
    import redis

    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3)
        client.ping()
        client.close()
        results.append({"system": "redis", "ok": True, "detail": "answers PING"})
    except redis.RedisError as exc:
        results.append(
            {"system": "redis", "ok": False, "detail": f"unreachable ({type(exc).__name__})"}
        )
    configured = settings.systems.configured()
    for name in SYSTEM_NAMES:
        system = configured.get(name)
        if system is None:
            continue
        try:
            detail = _check(system, settings)
            results.append({"system": name, "ok": True, "detail": redact(detail)})
        except SyncError as error:
            results.append(
                {
                    "system": name,
                    "ok": False,
                    "detail": redact(_why(name, error)),
                    "error": redact(str(error)),
                }
            )
    return results


def invoice_state_checks(settings: Settings) -> list[dict[str, Any]]:
    """Every Atollon state the invoice state map names is one ``GET invoice_status`` lists.

    Runs when a billing or invoice flow is enabled and Atollon is configured: the billing
    saga records invoices in the state the map gives, and the invoice flow moves them along
    it; a name Atollon does not have would fail each of them.
    """
    atollon_settings = settings.systems.atollon
    flows = [f for f in settings.flows.values() if f.enabled]
    if atollon_settings is None or not any(f.entity in ("billing", "invoice") for f in flows):
        return []
    named = [(n, f) for n, f in settings.flows.items() if f.enabled and f.entity == "invoice"]
    where = f"flows.{named[0][0]}.mapping.atollon.fields" if named else "the default map"
    states = invoice_state_map(
        target_mapping(named[0][1].mapping.get("atollon")) if named else None
    )
    check = "atollon invoice states"
    try:
        with make_client(atollon_settings) as http:
            client = atollon.AtollonClient(
                http, atollon_settings, error_overrides=settings.errors.get("atollon")
            )
            known = [status.name for status in client.invoice_statuses()]
    except SyncError as error:
        return [{"system": check, "ok": False, "detail": redact(f"unreadable: {error}")}]
    unknown = [f"{state} = {name!r}" for state, name in states.items() if name not in known]
    if unknown:
        detail = (
            f"{where}: {', '.join(unknown)} not among Atollon's invoice states ({', '.join(known)})"
        )
        return [{"system": check, "ok": False, "detail": redact(detail)}]
    mapped = ", ".join(f"{state} -> {name}" for state, name in states.items())
    return [{"system": check, "ok": True, "detail": redact(mapped)}]


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> None:
    """Validate the configuration, show each flow's field mapping, then check each system."""
    settings = settings_or_exit()
    sinks = build_sinks(settings, None)  # no call is made: the sinks only describe themselves
    try:
        flows = flow_mappings(settings, sinks)
    finally:
        for sink in sinks.values():
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    results = _checks(settings) + invoice_state_checks(settings)
    if json_output:
        print_json({"checks": results, "flows": flows})
    else:
        for row in results:
            mark = "[green]ok[/]  " if row["ok"] else "[red]FAIL[/]"
            console.print(f"{mark} {row['system']:<10} {row['detail']}", highlight=False)
        _print_mappings(flows)
    if not all(row["ok"] for row in results):
        raise typer.Exit(1)
