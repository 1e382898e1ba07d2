"""The ``erpsync`` command line: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli import (
    adopt,
    backfill,
    console,
    demo,
    diagnose,
    dlq,
    engine,
    flower,
    plan,
    reconcile,
    sandbox,
    settings_doc,
    status,
    trace,
)

app = typer.Typer(
    name="erpsync",
    help="Keep ERP, commerce and CRM records consistent: sandbox, workers, producers, DLQ.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


@app.callback()
def _options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="the flow file (TOML); default $ERPSYNC_CONFIG",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    if config is not None:
        # Through the environment, so that worker processes started from here see it too.
        os.environ["ERPSYNC_CONFIG"] = str(config)


sandbox.register(app)
engine.register(app)
diagnose.register(app)
flower.register(app)
demo.register(app)
settings_doc.register(app)
dlq.register(app)
status.register(app)
backfill.register(app)
reconcile.register(app)
trace.register(app)
console.register(app)
plan.register(app)
adopt.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
