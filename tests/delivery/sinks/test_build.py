"""How a worker assembles its sinks (``build_sinks``) and their HTTP clients (``http_client``).

One sink per target that an enabled flow sends to and the configuration describes; Atollon's
customers and products beside its invoice states behind one router; each entity told its
own flow's mapping. Each target's client takes a token from the shared rate limit before
every request when the target has ``rate_limit_per_s`` (a 429's ``Retry-After`` holds the
bucket for every worker), and checks the worker's leases before every write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from delivery.sinks import build_sinks, http_client, mappings_for
from delivery.sinks.atollon import AtollonSink
from delivery.sinks.hipe import HipeSink
from delivery.sinks.invoices import AtollonInvoiceSink
from delivery.sinks.onlineerp import OnlineErpSink
from delivery.sinks.propeller import PropellerSink
from delivery.sinks.router import ViewableSinkRouter
from erpsync.mapping import TargetMapping
from erpsync.settings import HipeSettings, Settings
from state.leases import LeaseLostError, Leases
from state.limits import RateLimiter

LOCAL = "http://127.0.0.1:9"
SYSTEMS: dict[str, Any] = {
    "onlineerp": {"base_url": LOCAL, "licence_code": "L", "secret": "s"},
    "propeller": {"base_url": LOCAL, "client_id": "c", "client_secret": "s"},
    "hipe": {"base_url": LOCAL, "access_token": "t"},
    "atollon": {"base_url": LOCAL, "instance": "i"},
}
CUSTOMERS: dict[str, Any] = {
    "source": "onlineerp",
    "entity": "customer",
    "targets": ["propeller", "hipe", "atollon"],
    "mapping": {"hipe": {"custom_fields": {"segment": "custom.segment"}}},
    "source_fields": {"segment": "Secteur"},
}
PRODUCTS: dict[str, Any] = {"source": "onlineerp", "entity": "product", "targets": ["atollon"]}
INVOICES: dict[str, Any] = {"source": "onlineerp", "entity": "invoice", "targets": ["atollon"]}
BILLING: dict[str, Any] = {"source": "atollon", "entity": "billing", "targets": ["onlineerp"]}


def settings(flows: dict[str, Any], systems: dict[str, Any] | None = None) -> Settings:
    return Settings.model_validate(
        {"key_prefix": "bs", "systems": SYSTEMS if systems is None else systems, "flows": flows}
    )


def test_one_sink_per_target_an_enabled_flow_sends_to() -> None:
    config = settings(
        {"customers": CUSTOMERS, "products": PRODUCTS, "invoices": INVOICES, "billing": BILLING}
    )
    sinks = build_sinks(config, limiter=None)
    assert list(sinks) == ["propeller", "hipe", "atollon", "onlineerp"]
    assert isinstance(sinks["propeller"], PropellerSink)
    assert isinstance(sinks["hipe"], HipeSink)
    assert isinstance(sinks["onlineerp"], OnlineErpSink)
    atollon = sinks["atollon"]
    assert isinstance(atollon, ViewableSinkRouter)
    assert isinstance(atollon.sink_for("customer"), AtollonSink)
    assert isinstance(atollon.sink_for("product"), AtollonSink)
    assert isinstance(atollon.sink_for("invoice"), AtollonInvoiceSink)
    assert sinks["onlineerp"].atollon == config.systems.atollon, "the saga records in Atollon"
    for sink in sinks.values():
        sink.close()  # type: ignore[attr-defined]


def test_atollon_without_invoice_states_is_its_contact_sink_alone() -> None:
    sinks = build_sinks(settings({"customers": CUSTOMERS, "products": PRODUCTS}), limiter=None)
    assert isinstance(sinks["atollon"], AtollonSink)
    assert set(sinks) == {"propeller", "hipe", "atollon"}
    for sink in sinks.values():
        sink.close()  # type: ignore[attr-defined]


def test_no_sink_for_a_disabled_flows_target_nor_for_an_unconfigured_system() -> None:
    without_propeller = {name: system for name, system in SYSTEMS.items() if name != "propeller"}
    customers = {**CUSTOMERS, "targets": ["hipe"]}
    config = settings(
        {"customers": customers, "billing": {**BILLING, "enabled": False}},
        systems=without_propeller,
    )
    sinks = build_sinks(config, limiter=None)
    assert list(sinks) == ["hipe"]
    sinks["hipe"].close()  # type: ignore[attr-defined]


def test_each_entity_gets_its_enabled_flows_mapping_for_the_target() -> None:
    config = settings(
        {
            "customers": CUSTOMERS,
            "products": {**PRODUCTS, "enabled": False},
            "invoices": INVOICES,
        }
    )
    hipe = mappings_for(config, "hipe")
    assert hipe == {"customer": TargetMapping(custom_fields={"segment": "custom.segment"})}
    assert set(mappings_for(config, "atollon")) == {"customer", "invoice"}, "products is off"
    assert mappings_for(config, "onlineerp") == {}


# -- the target's HTTP client ----------------------------------------------------------------


class Server(ThreadingHTTPServer):
    """Answers ``/busy`` with a 429 (Retry-After 3) and anything else with 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        busy = self.path == "/busy"
        self.send_response(429 if busy else 200)
        if busy:
            self.send_header("Retry-After", "3")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


class CountingLimiter(RateLimiter):
    """The shared limit's calls, answered at once."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def acquire(
        self, target: str, rate_per_s: float, burst: int = 1, *, max_wait_s: float = 60.0
    ) -> float:
        self.calls.append(("acquire", target, rate_per_s, burst))
        return 0.0

    def hold(self, target: str, rate_per_s: float, seconds: float, burst: int = 1) -> None:
        self.calls.append(("hold", target, rate_per_s, seconds, burst))


class LostLeases(Leases):
    """A worker whose locks were taken over: every guarded write must be refused."""

    def __init__(self) -> None:
        self.guarded = 0

    def guard(self) -> None:
        self.guarded += 1
        raise LeaseLostError("the record's lock is held by another worker now")


def test_a_limited_target_takes_a_token_before_every_request_and_a_429_holds_it(
    server: Server,
) -> None:
    hipe = HipeSettings.model_validate(
        {"base_url": server.url, "access_token": "t", "rate_limit_per_s": 5, "rate_limit_burst": 2}
    )
    limiter = CountingLimiter()
    with http_client("hipe", hipe, limiter) as client:
        assert client.get("/ok").status_code == 200
        assert client.get("/busy").status_code == 429
    assert limiter.calls == [
        ("acquire", "hipe", 5, 2),
        ("acquire", "hipe", 5, 2),
        ("hold", "hipe", 5, 3.0, 2),
    ]
    assert server.seen == [("GET", "/ok"), ("GET", "/busy")]


def test_an_unlimited_target_never_asks_the_limiter(server: Server) -> None:
    hipe = HipeSettings.model_validate({"base_url": server.url, "access_token": "t"})
    limiter = CountingLimiter()
    with http_client("hipe", hipe, limiter) as client:
        assert client.get("/ok").status_code == 200
    assert limiter.calls == []


def test_a_write_under_lost_leases_never_reaches_the_target_and_a_read_does(
    server: Server,
) -> None:
    hipe = HipeSettings.model_validate({"base_url": server.url, "access_token": "t"})
    leases = LostLeases()
    with http_client("hipe", hipe, None, leases) as client:
        assert client.get("/ok").status_code == 200
        with pytest.raises(LeaseLostError):
            client.post("/companies", json={"name": "Acme"})
    assert server.seen == [("GET", "/ok")], "the refused write was never sent"
    assert leases.guarded == 1
