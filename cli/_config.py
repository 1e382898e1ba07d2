"""Loading settings for a command, and the flow file that points at the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli._output import err_console
from erpsync.errors import ConfigError
from erpsync.settings import Settings, load_settings
from simulators.server import API_ROOTS, CREDENTIALS, SYSTEMS


def settings_or_exit() -> Settings:
    """The validated settings, or every problem printed and exit code 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        err_console.print(f"[bold red]erpsync: {exc}[/]", highlight=False)
        raise typer.Exit(2) from None


def sandbox_config(
    host: str = "127.0.0.1", port_base: int = 8800, redis_url: str | None = None
) -> dict[str, Any]:
    """A flow file pointing at the sandbox, with every flow on."""
    systems: dict[str, Any] = {}
    for offset, name in enumerate(SYSTEMS):
        url = f"http://{host}:{port_base + offset}{API_ROOTS[name]}"
        systems[name] = {"base_url": url, **CREDENTIALS[name]}
    systems["atollon"]["erp_system"] = "onlineerp"
    config: dict[str, Any] = {
        "key_prefix": "erpsync",
        "systems": systems,
        "flows": {
            "customers": {
                "source": "onlineerp",
                "entity": "customer",
                "targets": ["propeller", "hipe", "atollon"],
                "poll_interval_s": 10.0,
                "mapping": {
                    "hipe": {"custom_fields": {}},
                    "propeller": {},
                    "atollon": {},
                },
            },
            "contacts": {
                "source": "onlineerp",
                "entity": "person",
                "targets": ["hipe", "atollon"],
                "poll_interval_s": 10.0,
                "mapping": {"hipe": {}, "atollon": {}},
            },
            "products": {
                "source": "onlineerp",
                "entity": "product",
                "targets": ["atollon"],
                "poll_interval_s": 30.0,
            },
            "billing": {
                "source": "atollon",
                "entity": "billing",
                "targets": ["onlineerp"],
                "poll_interval_s": 30.0,
                "mapping": {"onlineerp": {}},
            },
        },
    }
    if redis_url:
        config["redis_url"] = redis_url
    return config


def write_sandbox_config(path: Path, **kwargs: Any) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(sandbox_config(**kwargs)), encoding="utf-8")
