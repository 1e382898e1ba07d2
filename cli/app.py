"""The ``erpsync`` command line: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import typer

from cli import sandbox

app = typer.Typer(
    name="erpsync",
    help="Keep ERP, commerce and CRM records consistent: sandbox, workers, producers, DLQ.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)

sandbox.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
