"""The console's pages and actions over HTTP (uvicorn in a thread), on a real Redis.

No browser and no worker: what a form sends and what comes back. The browser test
(test_browser.py) drives the same pages end to end.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from cli.console.auth import verify_password
from cli.console.web import build_app
from erpsync.settings import load_settings
from tests.cli.test_dlq import Installation
from tests.console.test_browser import free_port

pytest_plugins = ["tests.cli.test_dlq"]  # its fixtures: inst, installations, client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def web(inst: Installation) -> Iterator[httpx.Client]:
    """The console of ``inst`` on a free loopback port, and a client keeping its cookie."""
    app = build_app(load_settings(inst.config), sample=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def test_loopback_without_users_operates_with_a_token(
    inst: Installation, web: httpx.Client
) -> None:
    entry = inst.dead_letter("C1")
    page = web.get("/dlq")
    assert page.status_code == 200
    assert "remove the duplicate, then replay" in page.text
    assert "s3cr3t-x" not in page.text
    token = csrf_of(page.text)
    refused = web.post("/dlq/drop", data={"ids": entry.id})
    assert refused.status_code == 403
    assert inst.store.get(entry.id) is not None, "nothing dropped without the token"

    bad = web.post(f"/dlq/{entry.id}/edit", data={"csrf": token, "payload": '{"name": 5}'})
    assert bad.status_code == 400
    assert "name" in bad.text
    unchanged = inst.store.get(entry.id)
    assert unchanged is not None
    assert unchanged.delivery.event.payload["name"] == "Company C1"

    payload = {**entry.delivery.event.payload, "name": "Company C1 fixed"}
    edited = web.post(f"/dlq/{entry.id}/edit", data={"csrf": token, "payload": json.dumps(payload)})
    assert edited.status_code == 303
    assert edited.headers["location"] == f"/dlq/{entry.id}?msg=edited%3A%20name"
    stored = inst.store.get(entry.id)
    assert stored is not None
    assert stored.delivery.event.payload["name"] == "Company C1 fixed"

    exported = web.get("/dlq/export", params={"code": "40005"})
    assert [json.loads(line)["id"] for line in exported.text.splitlines()] == [entry.id]
    actions = [(r["action"], r["who"].endswith("(local)")) for r in inst.store.audit_log()]
    assert ("edit", True) in actions
    assert ("export", True) in actions


def test_a_public_address_without_users_does_not_start(inst: Installation) -> None:
    refused = inst.cli("console", "--address", "0.0.0.0", "--port", "0")  # noqa: S104
    assert refused.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in refused.output


def test_hash_password_prints_a_hash_of_what_was_typed_twice(inst: Installation) -> None:
    made = inst.cli("console", "hash-password", input_text="long-enough-pw\nlong-enough-pw\n")
    assert made.exit_code == 0, made.output
    stored = made.stdout.strip().splitlines()[-1]
    assert verify_password("long-enough-pw", stored)
    assert "long-enough-pw" not in made.stdout
    short = inst.cli("console", "hash-password", input_text="short\nshort\n")
    assert short.exit_code == 2
    assert "at least 8 characters" in short.output
