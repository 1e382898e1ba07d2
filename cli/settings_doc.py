"""``erpsync settings``: every setting, its TOML key, environment variable and default.

The README's configuration table is this command's ``--markdown`` output (a test keeps the
two equal), so the documentation cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

import typer
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.table import Table

from cli._output import console, print_json
from erpsync import flows
from erpsync.settings import (
    SYSTEM_NAMES,
    ConsoleSettings,
    ConsoleUser,
    FlowSettings,
    Settings,
    SystemsSettings,
)


def register(app: typer.Typer) -> None:
    app.command("settings")(settings)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is not None and get_args(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        name = " | ".join(_type_name(a) for a in args) if origin is not dict else "table"
        return name + (" (optional)" if type(None) in get_args(annotation) else "")
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else "—"
    if field.default is None:
        return ""
    return repr(field.default) if isinstance(field.default, str) else str(field.default)


def rows() -> Iterator[dict[str, str]]:
    """One row per setting, nested ones flattened (systems and flows shown once each)."""

    def walk(model: type[BaseModel], toml: list[str]) -> Iterator[dict[str, str]]:
        for name, field in model.model_fields.items():
            path = [*toml, name]
            if model is Settings and name == "flows":
                yield from walk(FlowSettings, ["flows", "<name>"])
                continue
            if model is Settings and name == "errors":
                yield {
                    "toml": "errors.<system>.<code>",
                    "env": "",
                    "type": "transient | dependency | conflict | permanent | auth",
                    "default": "",
                    "description": "override the class of a vendor code or http-<status>",
                }
                continue
            if model is ConsoleSettings and name == "users":
                for sub_name, user_field in ConsoleUser.model_fields.items():
                    yield {
                        "toml": f"console.users.<user>.{sub_name}",
                        "env": f"ERPSYNC_CONSOLE__USERS__<USER>__{sub_name.upper()}",
                        "type": _type_name(user_field.annotation),
                        "default": _default(user_field),
                        "description": (user_field.description or "").replace("|", "/"),
                    }
                continue
            nested = _model_of(field.annotation)
            if nested is not None and model is not FlowSettings:
                if nested is SystemsSettings:
                    for system in SYSTEM_NAMES:
                        sub = _model_of(SystemsSettings.model_fields[system].annotation)
                        if sub is not None:
                            yield from walk(sub, ["systems", system])
                    continue
                yield from walk(nested, path)
                continue
            in_flow = "<name>" in path
            yield {
                "toml": ".".join(path),
                "env": "" if in_flow else "ERPSYNC_" + "__".join(p.upper() for p in path),
                "type": _type_name(field.annotation),
                "default": _default(field),
                "description": (field.description or "").replace("|", "/"),
            }

    yield from walk(Settings, [])


def markdown() -> str:
    lines = [
        "| TOML key | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in rows():
        env = f"`{row['env']}`" if row["env"] else ""
        kind = row["type"].replace("|", "/")
        lines.append(
            f"| `{row['toml']}` | {env} | {kind} | {row['default']} | {row['description']} |"
        )
    return "\n".join(lines)


def settings(
    json_output: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
    as_markdown: Annotated[bool, typer.Option("--markdown", help="print a Markdown table")] = False,
    supported: Annotated[
        bool, typer.Option("--flows", help="the supported flows and mapping keys (Markdown)")
    ] = False,
) -> None:
    """Every setting: TOML key in the flow file, environment variable, type and default."""
    if supported:
        print(flows.markdown(), end="")
        return
    if json_output:
        print_json(list(rows()))
        return
    if as_markdown:
        print(markdown())
        return
    table = Table(title="erpsync settings (ERPSYNC_CONFIG names the TOML file)")
    for column in ("TOML key", "environment variable", "type", "default"):
        table.add_column(column, overflow="fold")
    for row in rows():
        table.add_row(row["toml"], row["env"], row["type"], row["default"])
    console.print(table)
