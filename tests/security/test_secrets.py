"""Issue #8, item 4: secrets never leave erpsync, TLS is verified, Flower is never open.

The first test runs a short but complete sync (real workers, the sandbox, Redis, Flower)
in which things go wrong on purpose: HIPE is configured with a wrong token (its circuit
opens, deliveries wait), Propeller answers some calls 401 (tokens are refreshed, then
refused) and some 400 (dead letters with the vendor's answer), Atollon is unavailable for
a while (retries) and two ERP customers cannot be mapped (dead letters). Then EVERYTHING
it produced is scanned for the credentials in use: the worker logs, the producer's output,
every Redis key of the run (ledger, dead letters, delayed set, circuits, and the Celery
queues with their base64 message bodies decoded), ``erpsync status``, ``erpsync dlq list``,
``show`` and ``export``, ``erpsync doctor``, and the task arguments Flower shows.

Celery task arguments carry the Delivery JSON (the event's business payload, the target,
the attempt history): the scan also checks that each one is a Delivery and no more.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import tomli_w
import yaml
from pydantic import SecretStr, ValidationError

from adapters import make_client
from adapters.hipe import HipeClient
from bench._util import key_values
from bench.stack import REPO, Pipeline
from erpsync.errors import ConfigError, SyncError
from erpsync.events import Delivery
from erpsync.settings import (
    AtollonSettings,
    HipeSettings,
    OnlineErpSettings,
    PropellerSettings,
    load_settings,
)
from simulators.onlineerp import OnlineErpSimulator
from simulators.propeller import PropellerSimulator
from simulators.server import CREDENTIALS
from tests.integration.conftest import make_pipeline  # noqa: F401 (the fixture)

WRONG_HIPE_TOKEN = "wrong-hipe-token-Qx81"
BASIC = base64.b64encode(b"SANDBOX:sandbox-secret").decode()
SANDBOX_SECRETS = ("sandbox-secret", "sandbox-token", BASIC, WRONG_HIPE_TOKEN)


def base64_forms(secret: str) -> list[str]:
    """What ``secret`` looks like inside any base64 text, whatever its alignment."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        start = (offset * 4 + 2) // 3  # characters still mixed with the padding bytes
        forms.append(encoded[start:-4])
    return [f for f in forms if len(f) >= 8]


def leaks(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text]


# -- what a run leaves behind --------------------------------------------------------------


def decoded(value: str) -> list[str]:
    """``value`` and every Celery message body inside it, decoded (they are base64)."""
    texts = [value]
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and item.startswith(("[", "{")):
            try:
                pending.append(json.loads(item))
            except ValueError:
                continue
        elif isinstance(item, dict):
            props = item.get("properties")
            body = item.get("body")
            if isinstance(props, dict) and props.get("body_encoding") == "base64":
                assert isinstance(body, str)
                text = base64.b64decode(body).decode("utf-8", errors="replace")
                texts.append(text)
                pending.append(text)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return texts


def redis_dump(client: redis.Redis, prefix: str) -> dict[str, list[str]]:
    """Every key of the run with every value it holds, as text (message bodies decoded)."""
    dump: dict[str, list[str]] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        name = str(key)
        _, values = key_values(client, name)
        dump[name] = [text for v in values if v is not None for text in decoded(str(v))]
    return dump


def celery_deliveries(dump: dict[str, list[str]]) -> list[Any]:
    """The deliveries the Celery messages carry: single ones, and batches (inline or stored)."""
    found: list[Any] = []
    for key, texts in dump.items():
        name = key.rsplit(":", 1)[-1]
        for text in texts:
            try:
                body = json.loads(text)
            except ValueError:
                continue
            if ":batch:" in key and isinstance(body, list):
                found.extend(body)  # a stored batch (its message carries the reference)
            elif name.startswith("sync.") and isinstance(body, list) and body:
                args = body[0]
                if isinstance(args, list) and args and not isinstance(args[0], str):
                    found.extend(args[0] if isinstance(args[0], list) else [args[0]])
    return found


def run_cli(p: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env={**p.env(), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.3)


@pytest.fixture
def flower_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def break_customers(p: Pipeline, keys: list[str]) -> None:
    """Customers saved without a name (the ERP simulator's API would refuse them)."""
    erp = p.sandbox.simulators["onlineerp"]
    assert isinstance(erp, OnlineErpSimulator)
    with erp.lock:
        store = erp._stores["Customer"]
        for key in keys:
            record = dict(store.get(key) or {})
            del record["NomClient"]
            store.put(record)


def seed_with_failures(p: Pipeline) -> None:
    """36 customers (two of them unnamed, for dead letters) and 6 products; Propeller refuses
    tokens then companies a few times, Atollon is unavailable a few times."""
    with p.control("onlineerp") as control:
        control.post("/_sandbox/seed", json={"customers": 36, "products": 6}).raise_for_status()
    customers = sorted(c["NoClient"] for c in p.records("onlineerp", "Customer"))
    parents = {c["NoClientParent"] for c in p.records("onlineerp", "Customer")}
    broken = [k for k in customers if k not in parents][:2]
    break_customers(p, broken)
    p.faults(
        "propeller",
        [
            {"statuses": [401], "count": 4, "path": "/v2/companies*"},
            {"statuses": [400], "count": 2, "path": "/v2/companies*", "methods": ["POST"]},
        ],
    )
    p.faults("atollon", [{"statuses": [503], "retry_after_s": 1, "count": 6}])


def start_flower(
    p: Pipeline, started: list[subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], httpx.Client, str, Path]:
    """Flower with a fresh password, answering and listening; its process (also added to
    ``started``), an API client, the password and its log file."""
    password = secrets.token_urlsafe(18)
    port = free_port()
    flower_log = p.directory / "flower.log"
    with flower_log.open("wb") as log:
        flower = subprocess.Popen(
            [sys.executable, "-m", "cli", "flower", "--port", str(port)],
            cwd=REPO,
            env={**p.env(), "ERPSYNC_FLOWER_BASIC_AUTH": f"ops:{password}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(flower)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("ops", password), timeout=30)

    def flower_up() -> bool:
        assert flower.poll() is None, flower_log.read_text(errors="replace")
        try:
            return api.get("/healthcheck").status_code == 200
        except httpx.TransportError:
            return False

    wait_for("Flower answers", flower_up)
    time.sleep(2)  # its event receiver connects right after the web server
    return flower, api, password, flower_log


def capture_the_cli(p: Pipeline, captured: dict[str, str]) -> None:
    """What an operator reads after the run: dead letters (list, one per code, export),
    status (JSON and table) and doctor, each checked for what it must show."""
    listed = run_cli(p, "dlq", "list", "--json")
    captured["dlq list"] = output(listed)
    dlq = json.loads(listed.stdout)
    assert {e["code"] for e in dlq} >= {"invalid-source-data", "http-400"}, dlq
    one_per_code = {e["code"]: e["id"] for e in dlq}
    for entry_id in one_per_code.values():
        captured[f"dlq show {entry_id}"] = output(run_cli(p, "dlq", "show", entry_id))
    captured["dlq export"] = output(run_cli(p, "dlq", "export"))
    status = run_cli(p, "status", "--json")
    assert status.returncode == 0, output(status)
    captured["status"] = output(status)
    captured["status table"] = output(run_cli(p, "status"))
    doctor = run_cli(p, "doctor", "--json")
    captured["doctor"] = output(doctor)
    assert {r["system"]: r["ok"] for r in json.loads(doctor.stdout)["checks"]}["hipe"] is False


def assert_no_secret_in(captured: dict[str, str], secrets_: list[str]) -> None:
    """No secret, in clear or base64, and no bearer token left unmasked, in anything captured
    (and enough captured to mean something)."""
    needles = list(secrets_)
    needles += [form for secret in needles for form in base64_forms(secret)]
    found = {name: leaks(text, needles) for name, text in captured.items()}
    assert not {name: hits for name, hits in found.items() if hits}
    bearer = re.compile(r"(?i)bearer\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}")
    assert not [name for name, text in captured.items() if bearer.search(text)]
    assert sum(len(t) for t in captured.values()) > 100_000, "a run leaves a lot to scan"


def assert_only_a_delivery(raw: dict[str, Any]) -> None:
    """A task argument is a Delivery and no more, its payload canonical fields only."""
    delivery = Delivery.model_validate(raw)
    assert set(raw) <= set(Delivery.model_fields)
    assert set(delivery.event.payload) <= {
        "key", "name", "parent_key", "email", "phone", "tax_number", "language",
        "active", "address", "addresses", "custom", "price", "currency", "vat_rate",
        "units", "group",
    }  # fmt: skip


def capture_flower_tasks(api: httpx.Client, captured: dict[str, str]) -> None:
    """Flower's task list (once it shows every task with its arguments) and one task."""

    def flower_has_tasks() -> bool:
        tasks = api.get("/api/tasks").json()
        return len(tasks) >= 3 * 36 and all(t.get("args") for t in tasks.values())

    wait_for("Flower shows the tasks with their arguments", flower_has_tasks)
    tasks = api.get("/api/tasks").json()
    captured["flower tasks"] = json.dumps(tasks)
    some = next(iter(tasks))
    captured["flower task"] = api.get(f"/api/task/info/{some}").text
    api.close()


def tokens_issued(p: Pipeline) -> list[str]:
    """The tokens Propeller issued during the run (at least one refreshed after a 401)."""
    propeller = p.sandbox.simulators["propeller"]
    assert isinstance(propeller, PropellerSimulator)
    with propeller.lock:
        issued = list(propeller._tokens)
    assert len(issued) >= 2, "tokens were issued, and refreshed after a 401"
    return issued


@pytest.mark.integration
def test_nothing_a_full_run_leaves_behind_carries_a_secret(
    make_pipeline: Callable[..., Pipeline],  # noqa: F811
    flower_process: list[subprocess.Popen[bytes]],
) -> None:
    p = make_pipeline(
        systems={"hipe": {"access_token": WRONG_HIPE_TOKEN}},
        # A child of a company Propeller refused gives up waiting for it soon.
        worker={"dependency_max_waits": 4, "dependency_cap_s": 1.0},
    )
    p.config["log_level"] = "DEBUG"  # every line a worker can write
    p.config_path.write_text(tomli_w.dumps(p.config), encoding="utf-8")
    seed_with_failures(p)

    # Flower first, so that it hears every task from its first event.
    flower, api, password, flower_log = start_flower(p, flower_process)

    captured: dict[str, str] = {}
    produced = run_cli(p, "produce", "--once", "--json")
    assert produced.returncode == 0, output(produced)
    captured["producer"] = output(produced)
    queued = redis_dump(p.redis, p.prefix)
    deliveries = celery_deliveries(queued)
    assert len(deliveries) >= 3 * 36, "the queues held the deliveries"
    for raw in deliveries:
        assert_only_a_delivery(raw)

    p.start_worker()
    p.wait_workers(1)

    def others_done() -> bool:
        return all(p.settled(t) for t in ("propeller", "atollon")) and bool(
            p.counters("hipe").get("auth_failures")
        )

    wait_for("Propeller and Atollon settle, HIPE refuses the token", others_done, 180)
    capture_the_cli(p, captured)
    settled = redis_dump(p.redis, p.prefix)
    assert any(":dlq:" in k or "dlq" in k for k in settled), "dead letters were stored"
    assert p.redis.zcard(p.keys.delayed()) > 0, "HIPE's deliveries wait behind its circuit"

    capture_flower_tasks(api, captured)

    for path in sorted(p.directory.glob("worker-*.log")):
        captured[path.name] = path.read_text(errors="replace")
    assert "sync.dead_lettered" in "".join(captured.values())
    assert "circuit_opened" in "".join(captured.values())
    for key, texts in {**queued, **settled}.items():
        captured[f"redis {key}"] = "\n".join(texts)

    issued = tokens_issued(p)

    flower.send_signal(signal.SIGTERM)
    flower.wait(timeout=30)
    captured["flower output"] = flower_log.read_text(errors="replace")

    assert_no_secret_in(captured, [*SANDBOX_SECRETS, *issued, password])


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store knows (made by openssl)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class _Me(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"email": "me@hipe.test"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def https_server(self_signed: tuple[Path, Path]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Me)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_tls_certificates_are_verified_by_default(https_server: str) -> None:
    for settings_type, required in (
        (OnlineErpSettings, {"licence_code": "L", "secret": SecretStr("s3cret-x")}),
        (PropellerSettings, {"client_id": "c", "client_secret": SecretStr("s3cret-x")}),
        (HipeSettings, {"access_token": SecretStr("s3cret-x")}),
        (AtollonSettings, {"instance": "i"}),
    ):
        assert settings_type(base_url="https://x.example", **required).verify_tls is True

    strict = HipeSettings(base_url=https_server, access_token=SecretStr("tok-123456"))
    with make_client(strict) as http, pytest.raises(SyncError) as caught:
        HipeClient(http, strict).check()
    assert "tok-123456" not in str(caught.value)

    trusting = strict.model_copy(update={"verify_tls": False})
    with make_client(trusting) as http:
        assert "me@hipe.test" in HipeClient(http, trusting).check(), "the server itself works"


# -- plain http ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://erp.example.com/api",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.attacker.example",
        "http://localhost.attacker.example",
        "http://0x7f000001",
        "HTTP://erp.example.com",
    ],
)
def test_plain_http_is_refused_for_a_host_that_is_not_loopback(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HipeSettings(base_url=url, access_token=SecretStr("tok-123456"))
    assert "allow_insecure_http" in str(caught.value)
    allowed = HipeSettings(
        base_url=url, access_token=SecretStr("tok-123456"), allow_insecure_http=True
    )
    assert allowed.base_url.lower().startswith("http://")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8801",
        "http://127.8.9.10",
        "http://localhost:8080/api",
        "http://[::1]:8080",
        "https://erp.example.com/api",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert OnlineErpSettings(base_url=url, licence_code="L", secret=SecretStr("s3cret-x"))


def test_the_config_file_names_the_insecure_system_without_its_secret(tmp_path: Path) -> None:
    config = tmp_path / "erpsync.toml"
    config.write_text(
        '[systems.propeller]\nbase_url = "http://propeller.example.com"\n'
        'client_id = "id"\nclient_secret = "very-secret-value-9"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    (problem,) = caught.value.problems
    assert problem.startswith("systems.propeller.base_url:")
    assert "allow_insecure_http" in problem
    assert "very-secret-value-9" not in str(caught.value)
    config.write_text(
        config.read_text(encoding="utf-8") + "allow_insecure_http = true\n", encoding="utf-8"
    )
    assert load_settings(config).systems.propeller is not None


# -- Flower in the shipped compose file ------------------------------------------------------


def test_flower_in_the_compose_file_requires_authentication_and_binds_loopback() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services: dict[str, Any] = compose["services"]
    flowers = {name: s for name, s in services.items() if "flower" in (s.get("command") or [])}
    assert list(flowers) == ["flower"]
    flower = flowers["flower"]
    command = flower["command"]
    assert "--basic-auth" not in command, "a password on a command line shows in ps"
    assert "--allow-control" not in command
    environment = flower.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    auth = environment.get("ERPSYNC_FLOWER_BASIC_AUTH", "")
    # ${VAR:?message}: compose refuses to start when the variable is unset or empty.
    assert re.fullmatch(r"\$\{ERPSYNC_FLOWER_BASIC_AUTH:\?[^}]+\}", auth), auth
    assert not any(k.startswith("FLOWER_") for k in environment), "no Flower override"
    assert flower.get("network_mode") != "host"
    ports = flower.get("ports") or []
    assert ports, "Flower is published (on loopback)"
    for port in ports:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", port
        else:
            assert str(port).startswith("127.0.0.1:"), port
    for name, service in services.items():  # nothing else is open to the network either
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


def test_the_scan_sees_a_secret_inside_a_celery_message_and_inside_any_base64() -> None:
    """The scan above would see a leak where it hides: message bodies, base64 text."""
    body = json.dumps([[{"note": "sandbox-secret"}], {}, {}]).encode()
    message = json.dumps(
        {"body": base64.b64encode(body).decode(), "properties": {"body_encoding": "base64"}}
    )
    assert any("sandbox-secret" in text for text in decoded(json.dumps([message, "x"])))
    for prefix in ("", "a", "ab", "abc"):
        hidden = base64.b64encode(f"{prefix}sandbox-secret!".encode()).decode()
        assert leaks(hidden, base64_forms("sandbox-secret")), prefix


def test_the_sandbox_credentials_scanned_for_are_those_the_sandbox_uses() -> None:
    """The scan above looks for the right values: the sandbox's own credentials."""
    assert CREDENTIALS["onlineerp"]["secret"] == "sandbox-secret"
    assert CREDENTIALS["propeller"]["client_secret"] == "sandbox-secret"
    assert CREDENTIALS["hipe"]["access_token"] == "sandbox-token"
    licence = CREDENTIALS["onlineerp"]["licence_code"]
    assert base64.b64encode(f"{licence}:sandbox-secret".encode()).decode() == BASIC
