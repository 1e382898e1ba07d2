"""The README, the deployment files and the CLI agree with each other."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import typer.main
import yaml

from cli.app import app
from cli.settings_doc import markdown, rows

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def fenced_blocks(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S)]


def test_quickstart_gives_the_demo_then_the_tests_as_single_lines() -> None:
    quickstart = README.split("## Quickstart", 1)[1]
    demo, tests = fenced_blocks(quickstart)[:2]
    assert demo == "scripts/demo"
    assert tests == "scripts/check"
    for script in (demo, tests):
        path = REPO / script
        assert path.exists(), script
        assert os.access(path, os.X_OK), f"{script} is not executable"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^scripts/check\b", ci, re.M), "CI must run what a new user runs"


def test_readme_settings_table_is_the_generated_one() -> None:
    start, end = "<!-- settings:start -->", "<!-- settings:end -->"
    documented = README.split(start, 1)[1].split(end, 1)[0].strip()
    assert documented == markdown(), "run: erpsync settings --markdown, paste into README"


def cli_commands() -> dict[str, Any]:
    """Every command and sub-command of ``erpsync`` (Typer's groups expose ``commands``)."""
    root: Any = typer.main.get_command(app)
    found: dict[str, Any] = {}
    for name, command in root.commands.items():
        found[name] = command
        for sub, sub_command in getattr(command, "commands", {}).items():
            found[f"{name} {sub}"] = sub_command
    return found


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_every_compose_service_runs_a_real_command_with_real_options() -> None:
    commands = cli_commands()
    services = compose()["services"]
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("erpsync")}
    assert {"producer", "flower", "sandbox"} <= set(ours)
    assert sum(1 for n in ours if n.startswith("worker-")) == 4, "a worker per target queue"
    for name, service in ours.items():
        argv = list(service["command"])
        command = commands.get(argv[0])
        assert command is not None, f"{name}: erpsync has no command {argv[0]!r}"
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in argv[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{name}: {argv[0]} has no option {word}"


def test_every_variable_compose_uses_is_documented() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    for service in compose()["services"].values():
        used |= set((service.get("environment") or {}).keys())
    env_example = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^(\w+)=", env_example, re.M))
    settings_vars = {row["env"] for row in rows() if row["env"]}
    for variable in used:
        assert variable in documented or variable in settings_vars, f"{variable} is undocumented"
        assert variable in README or variable in env_example, f"{variable} missing from docs"
    for variable in documented:
        assert variable in settings_vars or variable in used, f".env.example: {variable} is unused"


def test_flower_needs_authentication_and_redis_persists() -> None:
    services = compose()["services"]
    flower = services["flower"]
    assert "ERPSYNC_FLOWER_BASIC_AUTH" in flower["environment"]
    assert ":?" in str(flower["environment"]["ERPSYNC_FLOWER_BASIC_AUTH"]), "required, no default"
    assert all(str(p).startswith("127.0.0.1:") for p in flower.get("ports", []))
    assert "--appendonly" in services["redis"]["command"]
    assert services["sandbox"]["profiles"] == ["sandbox"]


def test_the_console_needs_a_login_and_listens_on_loopback() -> None:
    console = compose()["services"]["console"]
    environment = console["environment"]
    assert ":?" in str(environment["ERPSYNC_CONSOLE__USERS__ADMIN__PASSWORD_HASH"])
    assert ":?" in str(environment["ERPSYNC_CONSOLE__SESSION_SECRET"])
    assert environment["ERPSYNC_CONSOLE__USERS__ADMIN__ROLE"] in {"viewer", "operator"}
    assert all(str(p).startswith("127.0.0.1:") for p in console.get("ports", []))
