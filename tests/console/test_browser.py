"""The operator's console in a real headless Chromium, against a real worker and the sandbox.

One record goes through a retry (503), a dead letter (Propeller 40005), and a replay from
the console after the fault is cleared; the test logs in (a wrong password first), reads
the dead letter and its hint, replays it and sees it applied, reads the record's story in
order on the page and from ``erpsync trace``, pauses and resumes the target, and sees a
form without its CSRF token and a viewer's action refused. Every page is screenshot (under
the test's tmp dir) and its HTML checked for the sandbox's secrets.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from playwright.sync_api import Browser, BrowserContext, Page
from typer.testing import CliRunner

from bench.stack import REPO, Pipeline
from bench.verify import erp_customers
from cli.app import app
from cli.console.auth import hash_password
from tests.integration.operations.test_dlq_replay import PROPELLER_ONLY, seed_flat

pytestmark = pytest.mark.integration

SECRETS = ("sandbox-secret", "sandbox-token", "Bearer ", "Basic ", "scrypt:")
PASSWORDS = {"alice": "alice-pass-1", "victor": "victor-pass-1"}
STORY = ["detected", "sent", "attempt_failed", "dead_lettered", "replayed", "applied"]
COMPANIES = "/v2/companies*"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_console(p: Pipeline, directory: Path) -> Iterator[Callable[[], str]]:
    """``erpsync console`` on a free loopback port, with an operator and a viewer.

    Yields a function that waits until it answers and returns its URL (it starts while the
    test does other things).
    """
    config = {
        **p.config,
        "console": {
            "users": {
                "alice": {"password_hash": hash_password(PASSWORDS["alice"]), "role": "operator"},
                "victor": {"password_hash": hash_password(PASSWORDS["victor"]), "role": "viewer"},
            },
            "flower_url": "http://127.0.0.1:5555",
        },
    }
    path = directory / "console.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    port = free_port()
    log = (directory / "console.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "console", "--port", str(port)],
        cwd=REPO,
        env=p.env(path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> str:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/login", timeout=2).raise_for_status()
            except httpx.HTTPError:
                assert process.poll() is None, (directory / "console.log").read_text()
                assert time.monotonic() < deadline, "the console did not start in 60 s"
                time.sleep(0.2)
            else:
                return url

    try:
        yield ready
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


class Visits:
    """Each page seen: its screenshot saved, its HTML kept for the secrets check."""

    def __init__(self, page: Page, directory: Path) -> None:
        self.page, self.directory, self.html = page, directory, {}  # type: ignore[var-annotated]
        directory.mkdir(exist_ok=True)

    def __call__(self, name: str) -> None:
        self.html[name] = self.page.content()
        self.page.screenshot(path=str(self.directory / f"{name}.png"), full_page=True)


def log_in(page: Page, user: str, password: str) -> int:
    page.goto("/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        page.click("button[type=submit]")
    return answer.value.status


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.25)


def dead_letter_one_record(p: Pipeline) -> str:
    """One customer: its create answered 503 (retried), then 40005 (dead-lettered)."""
    seed_flat(p, 1)
    (key,) = erp_customers(p)
    write = {"path": COMPANIES, "methods": ["POST", "PATCH"], "count": 1}
    p.faults("propeller", [{**write, "statuses": [503]}, {**write, "vendor_code": 40005}])
    p.start_worker()
    p.wait_workers(1)
    p.produce()
    p.wait_converged(targets=("propeller",))
    assert p.flow_counters("customers", "propeller").get("dead_lettered") == 1
    return str(key)


def story_on_page(page: Page, key: str) -> list[str]:
    page.goto(f"/trace?key={key}&flow=customers")
    classes: list[str] = page.locator("table.story tr[class^='ev-']").evaluate_all(
        "rows => rows.map(r => r.className.slice(3))"
    )
    return classes


def operate(page: Page, visit: Visits, p: Pipeline, key: str) -> None:
    """As alice: the dead letter, its hint, a dry run, the replay, the story, pause/resume."""
    page.goto("/")
    visit("overview")
    page.goto("/dlq")
    group = page.locator("#groups tr", has_text="40005")
    assert "duplicate" in group.inner_text()
    visit("dead_letters")
    page.locator("#entries tr", has_text=key).locator("a").first.click()
    assert "remove the duplicate" in page.inner_text("#hint")
    visit("dead_letter")

    p.faults("propeller", None)  # the operator fixed the cause
    page.click("#replay-one button[name=dry_run]")
    assert page.inner_text("#plan-summary") == "would replay 1, skip 0 superseded"
    visit("dry_run")
    page.click("#replay")
    assert page.inner_text("#message") == "replayed 1, 0 superseded"
    wait_for(lambda: p.flow_counters("customers", "propeller").get("applied") == 1, "applied")
    assert p.flow_counters("customers", "propeller").get("dead_lettered", 0) == 0
    seen: list[list[str]] = [[]]

    def story_told() -> bool:
        seen[0] = story_on_page(page, key)
        return seen[0] == STORY

    wait_for(story_told, f"the story {STORY} on the page (seen: {seen})")
    assert "applied: created (replay)" in page.inner_text("table.story")
    visit("trace")

    page.goto("/targets")
    page.click("#target-propeller button")
    assert page.inner_text("#target-propeller .state") == "paused"
    visit("targets_paused")
    page.click("#target-propeller button")
    assert page.inner_text("#target-propeller .state") == "closed"
    page.goto("/audit")
    audit = page.inner_text("#audit")
    for action in (
        "console.login_failed",
        "console.login",
        "replay",
        "target.pause",
        "target.resume",
    ):
        assert f"alice\t{action}" in audit, audit
    visit("audit")
    page.goto("/reconcile")
    visit("reconcile")


def refusals(context: BrowserContext, page: Page, url: str, p: Pipeline) -> None:
    """A form without its token, then a viewer's action with one: both refused."""
    circuit = p.keys.circuit("propeller")
    no_token = context.request.post(f"{url}/targets/propeller/pause", form={"reason": "x"})
    assert no_token.status == 403
    assert "CSRF" in no_token.text()
    page.click("nav button")  # log out
    assert log_in(page, "victor", PASSWORDS["victor"]) == 303
    page.goto("/targets")
    assert page.locator("#target-propeller button").count() == 0, "no buttons for a viewer"
    token = page.get_attribute("nav input[name=csrf]", "value")
    refused = context.request.post(f"{url}/targets/propeller/pause", form={"csrf": token or ""})
    assert refused.status == 403
    assert "victor is a viewer" in refused.text()
    assert p.redis.hget(circuit, "state") in (None, "closed"), "nothing was paused"


def test_console_replays_a_dead_letter_and_tells_its_story_in_a_browser(
    make_pipeline: Callable[..., Pipeline], browser: Browser, tmp_path: Path
) -> None:
    p = make_pipeline(flows=PROPELLER_ONLY)
    with running_console(p, tmp_path) as ready:
        key = dead_letter_one_record(p)
        url = ready()
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.goto("/")
        assert page.url == f"{url}/login?next=/", "no page without a login"
        visit = Visits(page, tmp_path / "screenshots")
        visit("login")
        assert log_in(page, "alice", "wrong password") == 401
        assert page.inner_text("#error") == "wrong user or password"
        assert log_in(page, "alice", PASSWORDS["alice"]) == 303
        assert page.url == f"{url}/"
        operate(page, visit, p, key)
        refusals(context, page, url, p)
        context.close()

    told = CliRunner().invoke(app, ["--config", str(p.config_path), "trace", key, "--json"])
    assert told.exit_code == 0, told.output
    events: list[dict[str, Any]] = json.loads(told.stdout)
    assert [e["what"] for e in events] == STORY
    assert [e.get("target") for e in events] == [None, *["propeller"] * 5]
    assert (events[2]["status"], events[2]["class"]) == (503, "transient")
    assert (events[3]["code"], events[3]["class"]) == ("40005", "permanent")
    assert events[4]["actor"] == "alice"
    assert events[5]["action"] == "created"

    assert set(visit.html) >= {
        "login",
        "overview",
        "dead_letters",
        "dead_letter",
        "trace",
        "targets_paused",
        "audit",
        "reconcile",
        "dry_run",
    }
    for name, html in visit.html.items():
        for secret in (*SECRETS, *PASSWORDS.values()):
            assert secret not in html, f"{secret!r} on the {name} page"
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == len(visit.html)
