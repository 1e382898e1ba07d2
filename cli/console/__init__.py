"""``erpsync console``: the operator's web console; ``erpsync console hash-password``."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._config import settings_or_exit
from cli._output import err_console

console_app = typer.Typer(
    name="console",
    help="The operator's web console (dead letters, replay, targets, traces).",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")


@console_app.callback()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="the port to listen on", min=0, max=65535)] = 8080,
    address: Annotated[
        str, typer.Option(help="the address to listen on; not loopback: login required")
    ] = "127.0.0.1",
) -> None:
    """Serve the console. On loopback without users it needs no login (whoever can reach
    127.0.0.1 operates); any other address refuses to start without console.users."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from cli.console.auth import StartRefusedError, check_start
    from cli.console.web import build_app
    from erpsync.logging import configure_logging

    settings = settings_or_exit()
    try:
        check_start(address, settings.console)
    except StartRefusedError as exc:
        err_console.print(f"[red]erpsync console: {exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    login = "login required" if settings.console.users else "no login (loopback)"
    err_console.print(f"erpsync console on http://{address}:{port}/ ({login})", highlight=False)
    uvicorn.run(build_app(settings), host=address, port=port, log_level="warning")


@console_app.command("hash-password")
def hash_password_command() -> None:
    """Ask for a password twice and print its hash for console.users.<user>.password_hash."""
    from cli.console.auth import hash_password

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        err_console.print("[red]erpsync console: use at least 8 characters[/]")
        raise typer.Exit(2)
    typer.echo(hash_password(password))
