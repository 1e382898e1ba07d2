"""``erpsync sandbox``: serve the four vendor simulators on 127.0.0.1."""

from __future__ import annotations

import enum
import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli._config import write_sandbox_config
from cli._output import console, err_console, print_json
from simulators._sandbox import SeedRequest
from simulators.handmade import HandmadeRequest
from simulators.handmade import generate as generate_handmade
from simulators.server import CREDENTIALS, SandboxEndpoint, serve_forever


class PropellerBulk(enum.StrEnum):
    """The two readings of Propeller's docs about e-mail and phone in bulk items."""

    guide = "guide"
    strict = "strict"


class AtollonMatch(enum.StrEnum):
    """How Atollon matches a company whose external id it does not know, by its name."""

    unclaimed = "unclaimed"
    name = "name"


class HipeIds(enum.StrEnum):
    """The record ids the HIPE sandbox serves."""

    int = "int"
    uuid = "uuid"


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)


# long: 14 typer parameters, one per flag (the body is 30 lines)
def sandbox(
    port_base: Annotated[
        int,
        typer.Option("--port-base", help="OnlineERP on P, Propeller P+1, HIPE P+2, Atollon P+3"),
    ] = 8800,
    host: Annotated[str, typer.Option(help="address to bind; keep it on loopback")] = "127.0.0.1",
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="fill the ERP with N customers (and products, billing)"),
    ] = None,
    products: Annotated[int | None, typer.Option(help="products to seed (default N/5)")] = None,
    activities: Annotated[
        int | None, typer.Option(help="Atollon activities to invoice (default up to 50)")
    ] = None,
    random_seed: Annotated[int, typer.Option(help="seed of the data generator")] = 42,
    contacts: Annotated[
        bool,
        typer.Option(
            "--contacts", help="with --seed: one to four people (ERP contacts) per customer"
        ),
    ] = False,
    handmade: Annotated[
        int,
        typer.Option(
            "--handmade",
            min=0,
            help="with --seed: N companies typed in by hand in Propeller, HIPE and Atollon "
            "(no external id of ours), each matching one ERP customer by tax number, e-mail "
            "or a differently written name (README: Going live)",
        ),
    ] = 0,
    handmade_ambiguous: Annotated[
        int | None,
        typer.Option(
            "--handmade-ambiguous",
            min=0,
            help="ambiguous hand-made cases besides (default N/15): two records for one "
            "customer, one record for two customers",
        ),
    ] = None,
    propeller_bulk: Annotated[
        PropellerBulk,
        typer.Option(
            "--propeller-bulk",
            help="guide: Propeller bulk items may carry email and phone (the integration "
            "guide's example); strict: refused with 10007 (the endpoint reference's list)",
        ),
    ] = PropellerBulk.guide,
    atollon_match: Annotated[
        AtollonMatch,
        typer.Option(
            "--atollon-match",
            help="unclaimed: an Atollon company is matched by name only among those without "
            "an id of ours; name: any company of that name (the crawler page's words), so "
            "two ERP customers of one name meet in one contact (erpsync dead-letters it)",
        ),
    ] = AtollonMatch.unclaimed,
    hipe_ids: Annotated[
        HipeIds,
        typer.Option(
            "--hipe-ids",
            help="int: HIPE companies and users have integer ids; uuid: UUIDs, as the HIPE "
            "guide shows them (erpsync works with either)",
        ),
    ] = HipeIds.int,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the endpoints as JSON")
    ] = False,
    write_config: Annotated[
        Path | None,
        typer.Option(
            "--write-config",
            help="write a flow file pointing at the sandbox (every flow on) and exit",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the OnlineERP, Propeller, HIPE and Atollon simulators until Ctrl-C."""
    if write_config is not None:
        write_sandbox_config(write_config, host=host, port_base=port_base)
        console.print(f"wrote {write_config}: use it with ERPSYNC_CONFIG={write_config}")
        return
    seed_request = (
        SeedRequest(
            customers=seed,
            products=products,
            activities=activities,
            random_seed=random_seed,
            contacts=contacts,
        )
        if seed is not None
        else None
    )

    handmade_request = _handmade_request(seed, handmade, handmade_ambiguous, random_seed)
    serve_forever(
        host=host,
        port_base=port_base,
        seed=seed_request,
        handmade=handmade_request,
        on_started=functools.partial(_print_endpoints, json_output=json_output),
        propeller_bulk=propeller_bulk.value,
        atollon_match=atollon_match.value,
        hipe_ids=hipe_ids.value,
    )


def _handmade_request(
    seed: int | None, handmade: int, ambiguous: int | None, random_seed: int
) -> HandmadeRequest | None:
    """The hand-made records asked for, generated once here so that bad numbers exit 2."""
    if not (handmade or ambiguous):
        return None
    if seed is None:
        err_console.print("[red]erpsync sandbox: --handmade needs --seed[/]")
        raise typer.Exit(2)
    request = HandmadeRequest(
        customers=max(seed, 1),
        random_seed=random_seed,
        matches=handmade,
        ambiguous=handmade // 15 if ambiguous is None else ambiguous,
    )
    try:
        generate_handmade(request)
    except ValueError as exc:
        err_console.print(f"[red]erpsync sandbox: {exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    return request


def _print_endpoints(endpoints: dict[str, SandboxEndpoint], *, json_output: bool) -> None:
    """Each simulator's API base URL and credentials, and where its control surface is."""
    listing = {
        name: {"url": ep.api_url, "control": ep.url + "/_sandbox", **CREDENTIALS[name]}
        for name, ep in endpoints.items()
    }
    if json_output:
        print_json(listing)
        return
    table = Table(title="erpsync sandbox (Ctrl-C to stop)")
    table.add_column("system")
    table.add_column("API base URL")
    table.add_column("credentials")
    for name, info in listing.items():
        creds = ", ".join(f"{k}={v}" for k, v in CREDENTIALS[name].items())
        table.add_row(name, str(info["url"]), creds)
    console.print(table)
    console.print(
        "Control surface: <url>/_sandbox/{faults,stats,records/<entity>,reset,seed,handmade}"
    )
