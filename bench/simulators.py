"""Loopback benchmark of the vendor simulators: are they ever the bottleneck?

Run ``uv run python -m bench.simulators [--json] [--quick] [--clients N]``.

The four simulators are served by :class:`simulators.server.RunningSandbox` in a child
process, next to two yardsticks served the same way (uvicorn on a pre-bound socket, driven
by ``asyncio.run`` in a background thread, same uvicorn settings):

* ``bare``: a plain Starlette app, no sandbox middleware: the cost of HTTP + JSON alone;
* ``sandbox no-op``: a one-route simulator built by ``build_app``: what the shared
  ``/_sandbox`` machinery (stats, fault matching) adds before any vendor logic.

The clients run in this process (threads, each with its own ``httpx.Client``), so the
server and the clients have a GIL each, and the CPU each side used is measured separately
(the child reports its own ``time.process_time``): a side using a whole core is the limit.

Measured, each figure next to the bare server's in the same run and shown as a ratio:

1. requests/s of a cheap authenticated GET on each simulator, 1 client and N clients;
2. a Propeller bulk upsert of 100 companies per call (``POST /v2/companies/bulk/sourceId``),
   creates and updates, against a bare endpoint that parses the same body and answers the
   same outcome list;
3. paging OnlineERP customers at ``$top=1000`` (100,000 seeded; 10,000 with ``--quick``),
   against a bare endpoint slicing the same seed records: the time issue 9's change
   detection is compared with.

Rounds alternate the targets, so a neighbour's burst of CPU on the shared machine falls on a
simulator and its yardstick alike, and the best round of each is kept (a burst only ever
slows a round down).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import io
import itertools
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bench._util import (
    SATURATED_CORE_SHARE,
    CpuMeter,
    CpuSample,
    CpuUse,
    LoadResult,
    best_of,
    machine_info,
    print_json,
    ratio,
    rounded,
    run_load,
)
from simulators._sandbox import Simulator
from simulators.seed import customer_key, generate
from simulators.server import CREDENTIALS, RunningSandbox, bind, make_simulators

ROOT = Path(__file__).resolve().parents[1]
BULK_SIZE = 100
PAGE_SIZE = 1000
PROPELLER_SOURCE = "ERP"
PROPELLER_LANGUAGE = "EN"
#: companies a Propeller GET rotates over (created in one bulk call before the runs)
PROPELLER_GET_COMPANIES = 100
#: externalIds a HIPE search rotates over, spread across the imported companies
HIPE_PROBES = 50
#: OnlineERP keys a GET rotates over
ONLINEERP_PROBES = 1000

GET_TARGETS = ("bare", "sandbox no-op", "onlineerp", "propeller", "hipe", "atollon")
BULK_TARGETS = ("bare", "propeller create", "propeller update")
PAGING_TARGETS = ("bare", "onlineerp")


@dataclass(frozen=True)
class Settings:
    """How much to measure; ``--quick`` shrinks every knob for the smoke test."""

    quick: bool
    clients: int
    rounds: int
    duration_s: float
    paging_rounds: int
    customers: int
    hipe_companies: int

    @staticmethod
    def of(quick: bool, clients: int | None) -> Settings:
        if quick:
            return Settings(True, clients or 4, 1, 0.3, 1, 10_000, 1_000)
        return Settings(False, clients or 8, 3, 1.0, 2, 100_000, 3_000)


# --- the server side (child process) ---------------------------------------------------------


def _bare_app() -> Starlette:
    """The yardstick: trivial Starlette endpoints with no sandbox machinery."""
    customers: list[dict[str, Any]] = []

    async def ping(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def bulk(request: Request) -> Response:
        body = json.loads(await request.body())
        outcomes = [
            {
                "action": "update",
                "id": index + 1,
                "key": item["sourceId"],
                "lookupKey": "sourceId",
                "success": True,
            }
            for index, item in enumerate(body["companies"])
        ]
        return JSONResponse({"data": outcomes, "messages": ["Completed"], "total": len(outcomes)})

    async def load(request: Request) -> Response:
        count = int(json.loads(await request.body())["customers"])
        customers[:] = generate(count).customers
        return JSONResponse({"loaded": len(customers)})

    async def page(request: Request) -> Response:
        top = min(int(request.query_params.get("$top", PAGE_SIZE)), PAGE_SIZE)
        skip = int(request.query_params.get("$skip", 0))
        return JSONResponse(customers[skip : skip + top])

    async def cpu(request: Request) -> Response:
        return JSONResponse({"cpu_s": time.process_time()})

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/bulk", bulk, methods=["POST"]),
            Route("/_load", load, methods=["POST"]),
            Route("/customers", page, methods=["GET"]),
            Route("/_cpu", cpu, methods=["GET"]),
        ]
    )


class NoopSimulator(Simulator):
    """A simulator with one trivial route, served through ``build_app`` like the vendors."""

    name = "noop"

    def routes(self) -> list[BaseRoute]:
        async def ping(request: Request) -> Response:
            return JSONResponse({"ok": True})

        return [Route("/ping", ping, methods=["GET"])]

    def records(self, entity: str) -> list[Any] | None:
        return None

    def entities(self) -> list[str]:
        return []

    def reset(self) -> None:
        return None


def serve() -> None:
    """Child process: serve everything, print the URLs as one JSON line, stop at stdin EOF."""
    sandbox = RunningSandbox(simulators={**make_simulators(), "noop": NoopSimulator()})
    sandbox.start()
    sock = bind("127.0.0.1", 0)
    # The same uvicorn settings and loop as RunningSandbox, so only the app differs.
    server = uvicorn.Server(
        uvicorn.Config(
            _bare_app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            backlog=2048,
        )
    )
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="bare", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the bare server did not start within 30 s")
        time.sleep(0.01)
    urls = {system: endpoint.url for system, endpoint in sandbox.endpoints.items()}
    urls["bare"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(json.dumps(urls), flush=True)
    try:
        sys.stdin.read()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        sandbox.stop()


@contextlib.contextmanager
def served() -> Iterator[dict[str, str]]:
    """Start the server child process; yields the URL of each simulator and of ``bare``."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.simulators", "--serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout is not None else ""
        if not line:
            raise RuntimeError(f"the server process exited early (code {child.wait()})")
        yield json.loads(line)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


# --- the client side -------------------------------------------------------------------------


@dataclass
class Target:
    """How to issue one kind of request: a client factory and a one-request function."""

    name: str
    open: Callable[[int], httpx.Client]
    request: Callable[[httpx.Client, int, int], bool]


def _client(base_url: str, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def _close(client: httpx.Client) -> None:
    client.close()


def _get_ok(paths: list[str]) -> Callable[[httpx.Client, int, int], bool]:
    """A GET rotating over ``paths`` (pre-encoded, so the client does no query building)."""

    def request(client: httpx.Client, index: int, n: int) -> bool:
        return client.get(paths[(index * 7919 + n) % len(paths)]).status_code == 200

    return request


def _propeller_token(url: str) -> str:
    credentials = CREDENTIALS["propeller"]
    answer = httpx.post(
        f"{url}/oauth2/token",
        data={"grant_type": "client_credentials", **credentials},
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def _propeller_client(url: str) -> httpx.Client:
    """A client with its own bearer token, as each worker process would hold."""
    return _client(url, Authorization=f"Bearer {_propeller_token(url)}")


def _company(source_id: str) -> dict[str, Any]:
    """One Propeller company as the sync sends it."""
    return {
        "source": PROPELLER_SOURCE,
        "sourceId": source_id,
        "language": PROPELLER_LANGUAGE,
        "name": f"Emballages Côté & Fils inc. {source_id}",
        "email": f"compta.{source_id.lower()}@exemple.qc.ca",
        "phone": "+1 514 555 0199",
        "taxNumber": "123456789RT0001",
        "debtorId": source_id,
    }


def _bulk_ok(answer: httpx.Response, action: str | None) -> bool:
    """Every item succeeded, with ``action`` (``None``: either create or update)."""
    if answer.status_code != 200:
        return False
    outcomes = answer.json()["data"]
    return len(outcomes) == BULK_SIZE and all(
        item["success"] and action in (None, item["action"]) for item in outcomes
    )


def get_targets(urls: dict[str, str], settings: Settings) -> list[Target]:
    """The cheap authenticated GET of each simulator, and the two yardsticks."""
    erp = CREDENTIALS["onlineerp"]
    basic = base64.b64encode(f"{erp['licence_code']}:{erp['secret']}".encode()).decode()
    erp_paths = [
        f"/api/Entity/Customer/{customer_key(i * (settings.customers // ONLINEERP_PROBES))}"
        for i in range(ONLINEERP_PROBES)
    ]
    query = urlencode({"source": PROPELLER_SOURCE, "language": PROPELLER_LANGUAGE})
    propeller_paths = [
        f"/v2/companies/sourceId/G{i:04d}?{query}" for i in range(PROPELLER_GET_COMPANIES)
    ]
    step = max(1, settings.hipe_companies // HIPE_PROBES)
    hipe_paths = [
        "/api/companies?s=" + quote(json.dumps({"externalId": {"$eq": _hipe_id(i * step)}}))
        for i in range(HIPE_PROBES)
    ]
    token = CREDENTIALS["hipe"]["access_token"]
    instance = CREDENTIALS["atollon"]["instance"]
    return [
        Target("bare", lambda i: _client(urls["bare"]), _get_ok(["/ping"])),
        Target("sandbox no-op", lambda i: _client(urls["noop"]), _get_ok(["/ping"])),
        Target(
            "onlineerp",
            lambda i: _client(
                urls["onlineerp"], Authorization=f"Basic {basic}", COMPANY_ID=erp["company_id"]
            ),
            _get_ok(erp_paths),
        ),
        Target(
            "propeller", lambda i: _propeller_client(urls["propeller"]), _get_ok(propeller_paths)
        ),
        Target(
            "hipe",
            lambda i: _client(urls["hipe"], **{"X-ACCESS-TOKEN": token}),
            _get_ok(hipe_paths),
        ),
        Target(
            "atollon",
            lambda i: _client(urls["atollon"]),
            _get_ok([f"/crab/crawler/invoice_status?instance={quote(instance)}"]),
        ),
    ]


def bulk_targets(urls: dict[str, str]) -> list[Target]:
    """Propeller bulk upserts (creates: fresh sourceIds each call; updates: the same 100)."""
    calls = itertools.count()

    def bare(client: httpx.Client, index: int, n: int) -> bool:
        body = {"companies": [_company(f"U{index}-{k}") for k in range(BULK_SIZE)]}
        return _bulk_ok(client.post("/bulk", json=body), "update")

    def create(client: httpx.Client, index: int, n: int) -> bool:
        call = next(calls)
        body = {"companies": [_company(f"N{call}-{k}") for k in range(BULK_SIZE)]}
        return _bulk_ok(client.post("/v2/companies/bulk/sourceId", json=body), "create")

    def update(client: httpx.Client, index: int, n: int) -> bool:
        body = {"companies": [_company(f"U{index}-{k}") for k in range(BULK_SIZE)]}
        answer = client.post("/v2/companies/bulk/sourceId", json=body)
        # The first warm-up call of a thread index creates its companies; timed calls update.
        return _bulk_ok(answer, "update" if n >= 0 else None)

    propeller = urls["propeller"]
    return [
        Target("bare", lambda i: _client(urls["bare"]), bare),
        Target("propeller create", lambda i: _propeller_client(propeller), create),
        Target("propeller update", lambda i: _propeller_client(propeller), update),
    ]


def _hipe_id(index: int) -> str:
    return f"ERP-{index:06d}"


def prepare(urls: dict[str, str], settings: Settings) -> None:
    """Fill the simulators the runs read: ERP customers, HIPE companies, Propeller companies."""
    with httpx.Client(timeout=120) as client:
        seeded = client.post(
            f"{urls['onlineerp']}/_sandbox/seed", json={"customers": settings.customers}
        )
        seeded.raise_for_status()
        if seeded.json()["seeded"].get("Customer") != settings.customers:
            raise RuntimeError(f"OnlineERP seeded {seeded.json()} customers")
        loaded = client.post(f"{urls['bare']}/_load", json={"customers": settings.customers})
        loaded.raise_for_status()

        headers = {"X-ACCESS-TOKEN": CREDENTIALS["hipe"]["access_token"]}
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["externalId", "name", "email", "phone", "vat"])
        for index in range(settings.hipe_companies):
            writer.writerow(
                [
                    _hipe_id(index),
                    f"Imprimerie Lévesque « {index} » ltée",
                    f"info{index}@exemple.qc.ca",
                    "+1 418 555 0100",
                    f"{100000000 + index}RT0001",
                ]
            )
        started = client.post(
            f"{urls['hipe']}/api/imports",
            headers=headers,
            data={"type": "16", "delimiter": ","},
            files={"csv": ("companies.csv", rows.getvalue().encode(), "text/csv")},
        )
        started.raise_for_status()
        job = started.json()
        deadline = time.monotonic() + 120
        while job["status"] not in (4, 7, 8):  # 4: SENT, the result notified (ended)
            if time.monotonic() > deadline:
                raise RuntimeError("the HIPE import did not finish within 120 s")
            time.sleep(0.05)
            job = client.get(f"{urls['hipe']}/api/imports/{job['id']}", headers=headers).json()
        if job["status"] not in (4, 8) or job["created"] != settings.hipe_companies:
            raise RuntimeError(f"the HIPE import ended with status {job['status']}")

        with _propeller_client(urls["propeller"]) as propeller:
            body = {"companies": [_company(f"G{i:04d}") for i in range(PROPELLER_GET_COMPANIES)]}
            answer = propeller.post("/v2/companies/bulk/sourceId", json=body)
            answer.raise_for_status()
            if not all(item["success"] for item in answer.json()["data"]):
                raise RuntimeError("the Propeller companies for the GET run were not created")


def _probe(target: Target) -> None:
    """One request of each target must succeed before anything is timed."""
    client = target.open(0)
    try:
        if not target.request(client, 0, 0):
            raise RuntimeError(f"{target.name}: the benchmark request is not answered as expected")
    finally:
        client.close()


def load_rounds(
    targets: list[Target], settings: Settings, meter: CpuMeter, warmup: int = 3
) -> dict[tuple[str, int], list[LoadResult]]:
    """Every (target, clients) pair, ``settings.rounds`` times, targets alternating."""
    results: dict[tuple[str, int], list[LoadResult]] = {}
    for _ in range(settings.rounds):
        for clients in (1, settings.clients):
            for target in targets:
                result = run_load(
                    clients=clients,
                    duration_s=settings.duration_s,
                    open_client=target.open,
                    request=target.request,
                    close_client=_close,
                    meter=meter,
                    warmup=warmup,
                )
                results.setdefault((target.name, clients), []).append(result)
    return results


@dataclass
class PagingResult:
    """One full pass over the seeded customers."""

    records: int
    pages: int
    seconds: float
    cpu: CpuUse

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def page_through(client: httpx.Client, path: str, meter: CpuMeter) -> PagingResult:
    """Read every customer, ``$top=1000`` at a time, parsing each page as a producer would."""
    records = pages = 0
    start: CpuSample = meter.sample()
    while True:
        answer = client.get(path, params={"$top": PAGE_SIZE, "$skip": records})
        answer.raise_for_status()
        page = answer.json()
        pages += 1
        records += len(page)
        if len(page) < PAGE_SIZE:
            break
    end = meter.sample()
    return PagingResult(records, pages, end.wall_s - start.wall_s, CpuUse.between(start, end))


def paging_rounds(
    urls: dict[str, str], settings: Settings, meter: CpuMeter
) -> dict[str, list[PagingResult]]:
    """Bare slicing and OnlineERP paging, alternating, ``settings.paging_rounds`` times."""
    erp = CREDENTIALS["onlineerp"]
    results: dict[str, list[PagingResult]] = {name: [] for name in PAGING_TARGETS}
    with (
        _client(urls["bare"]) as bare,
        httpx.Client(
            base_url=urls["onlineerp"],
            auth=(erp["licence_code"], erp["secret"]),
            headers={"COMPANY_ID": erp["company_id"]},
            timeout=60,
        ) as onlineerp,
    ):
        for _ in range(settings.paging_rounds):
            results["bare"].append(page_through(bare, "/customers", meter))
            results["onlineerp"].append(page_through(onlineerp, "/api/Entity/Customer", meter))
    for name, passes in results.items():
        for result in passes:
            if result.records != settings.customers:
                raise RuntimeError(f"{name}: paged {result.records} of {settings.customers}")
    return results


# --- the report ------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> float | None:
    """A finite figure rounded for output, or None."""
    if value is None or not math.isfinite(value):
        return None
    return rounded(value, digits)


def _ratio(value: float | None, yardstick: float | None) -> float | None:
    if value is None or yardstick is None:
        return None
    return _num(ratio(value, yardstick))


def _load_row(result: LoadResult, yardstick: LoadResult, machine_cores: int) -> dict[str, Any]:
    cost = result.server_s_per_request
    return {
        "clients": result.clients,
        "requests": result.requests,
        "errors": result.errors,
        "first_error": result.first_error,
        "seconds": _num(result.elapsed_s),
        "per_s": _num(result.rate),
        "ratio_to_bare": _num(ratio(result.rate, yardstick.rate)),
        "p50_ms": _num(result.latency_ms(50)),
        "p99_ms": _num(result.latency_ms(99)),
        "server_us_per_request": None if cost is None else _num(cost * 1e6),
        "server_capacity_per_s": _num(result.server_capacity),
        "server_capacity_ratio_to_bare": _ratio(result.server_capacity, yardstick.server_capacity),
        **result.cpu.as_dict(),
        "limit": result.cpu.limit(result.clients, machine_cores),
    }


def _best_pass(passes: list[PagingResult]) -> PagingResult:
    return min(passes, key=lambda result: result.seconds)


def _get_rows(
    gets: dict[tuple[str, int], list[LoadResult]], settings: Settings, machine_cores: int
) -> list[dict[str, Any]]:
    rows = []
    for clients in (1, settings.clients):
        yardstick = best_of(gets[("bare", clients)])
        for name in GET_TARGETS:
            row = _load_row(best_of(gets[(name, clients)]), yardstick, machine_cores)
            rows.append({"target": name, **row})
    return rows


def _bulk_rows(
    bulks: dict[tuple[str, int], list[LoadResult]], settings: Settings, machine_cores: int
) -> list[dict[str, Any]]:
    rows = []
    for clients in (1, settings.clients):
        yardstick = best_of(bulks[("bare", clients)])
        for name in BULK_TARGETS:
            result = best_of(bulks[(name, clients)])
            row = _load_row(result, yardstick, machine_cores)
            capacity = result.server_capacity
            row["calls_per_s"] = row.pop("per_s")
            row["records_per_s"] = _num(result.rate * BULK_SIZE)
            row["server_us_per_call"] = row.pop("server_us_per_request")
            row.pop("server_capacity_per_s")
            row["server_capacity_records_per_s"] = _num(
                None if capacity is None else capacity * BULK_SIZE
            )
            rows.append({"target": name, **row})
    return rows


def _server_cpu_s(result: PagingResult) -> float | None:
    return None if result.cpu.server is None else result.cpu.server * result.cpu.wall_s


def _paging_rows(paging: dict[str, list[PagingResult]], machine_cores: int) -> list[dict[str, Any]]:
    bare = _best_pass(paging["bare"])
    rows = []
    for name in PAGING_TARGETS:
        result = _best_pass(paging[name])
        rows.append(
            {
                "target": name,
                "records": result.records,
                "pages": result.pages,
                "seconds": _num(result.seconds),
                "records_per_s": _num(result.records_per_s),
                "ratio_to_bare": _num(ratio(result.records_per_s, bare.records_per_s)),
                "server_cpu_s": _num(_server_cpu_s(result)),
                "server_cpu_ratio_to_bare": _ratio(_server_cpu_s(result), _server_cpu_s(bare)),
                **result.cpu.as_dict(),
                "limit": result.cpu.limit(1, machine_cores),
            }
        )
    return rows


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headroom each simulator leaves: its server capacity against what a client reaches.

    One Python process of httpx clients tops out near the bare server's N-client rate, so
    ``client_processes_served`` says how many such processes one simulator core can keep up
    with before the simulator, not the client, becomes the limit.
    """
    clients = report["settings"]["clients"]
    gets = report["cheap_get"]
    client_max = next(r["per_s"] for r in gets if r["target"] == "bare" and r["clients"] == clients)
    simulators = [r for r in gets if r["target"] in GET_TARGETS[2:]]
    slowest = min(simulators, key=lambda r: r["server_capacity_per_s"] or math.inf)
    bulk = [r for r in report["propeller_bulk"] if r["target"] != "bare"]
    slowest_bulk = min(bulk, key=lambda r: r["server_capacity_records_per_s"] or math.inf)
    paging = next(r for r in report["paging"] if r["target"] == "onlineerp")
    return {
        "client_max_get_per_s": client_max,
        "slowest_get": {
            "target": slowest["target"],
            "clients": slowest["clients"],
            "server_us_per_request": slowest["server_us_per_request"],
            "server_capacity_per_s": slowest["server_capacity_per_s"],
            "server_capacity_ratio_to_bare": slowest["server_capacity_ratio_to_bare"],
            "client_processes_served": _ratio(slowest["server_capacity_per_s"], client_max),
        },
        "slowest_bulk": {
            "target": slowest_bulk["target"],
            "clients": slowest_bulk["clients"],
            "server_capacity_records_per_s": slowest_bulk["server_capacity_records_per_s"],
        },
        "onlineerp_paging_ratio_to_bare": paging["ratio_to_bare"],
        "onlineerp_paging_seconds": paging["seconds"],
    }


def build_report(
    settings: Settings,
    machine: dict[str, Any],
    gets: dict[tuple[str, int], list[LoadResult]],
    bulks: dict[tuple[str, int], list[LoadResult]],
    paging: dict[str, list[PagingResult]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """Everything measured, as one JSON-able document (the best round of each)."""
    machine_cores = machine["cores"]
    report: dict[str, Any] = {
        "benchmark": "simulators",
        "machine": machine,
        "settings": {
            "quick": settings.quick,
            "clients": settings.clients,
            "rounds": settings.rounds,
            "seconds_per_run": settings.duration_s,
            "paging_rounds": settings.paging_rounds,
            "bulk_size": BULK_SIZE,
            "page_size": PAGE_SIZE,
            "customers": settings.customers,
            "hipe_companies": settings.hipe_companies,
            "server": "one child process: RunningSandbox + bare app, uvicorn, asyncio loop",
            "client": "this process: threads, one httpx.Client each",
        },
        "cheap_get": _get_rows(gets, settings, machine_cores),
        "propeller_bulk": _bulk_rows(bulks, settings, machine_cores),
        "paging": _paging_rows(paging, machine_cores),
        "timings_s": {name: _num(value) for name, value in timings.items()},
    }
    report["summary"] = _summary(report)
    return report


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int) and not isinstance(value, bool):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{rounded(float(value), digits):g}"
    return str(value)


def _cores(row: dict[str, Any]) -> str:
    return "/".join(
        _fmt(None if row[key] is None else round(row[key], 2))
        for key in ("client_cores", "server_cores", "other_cores")
    )


def _clients(count: int) -> str:
    return f"{count} client" if count == 1 else f"{count} clients"


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in ("target", "limit") else "right")
    return table


def print_tables(report: dict[str, Any], console: Console) -> None:
    """The report as Rich tables."""
    machine = report["machine"]
    settings = report["settings"]
    console.print(
        f"[bold]Simulators loopback benchmark[/bold]: {machine['cores']} cores "
        f"({machine['cpu_model']}), load average {machine['load_average_1m_at_start']} at "
        f"start, Python {machine['python']}{', --quick' if settings['quick'] else ''}"
    )
    console.print(
        f"server: {settings['server']}; client: {settings['client']}; "
        f"{settings['rounds']} round(s) of {settings['seconds_per_run']} s per figure, "
        "targets alternating, best round kept."
    )
    cores = "cores c/s/o"
    table = _table(
        "Cheap authenticated GET",
        [
            "target", "clients", "req/s", "× bare", "p50 ms", "p99 ms",
            "server µs/req", "server cap./s", "cap. × bare", cores, "limit", "errors",
        ],
    )  # fmt: skip
    for row in report["cheap_get"]:
        table.add_row(
            row["target"],
            _fmt(row["clients"]),
            _fmt(row["per_s"]),
            _fmt(row["ratio_to_bare"], 2),
            _fmt(row["p50_ms"], 2),
            _fmt(row["p99_ms"], 2),
            _fmt(row["server_us_per_request"]),
            _fmt(row["server_capacity_per_s"]),
            _fmt(row["server_capacity_ratio_to_bare"], 2),
            _cores(row),
            row["limit"],
            _fmt(row["errors"]),
        )
    console.print(table)

    table = _table(
        f"Propeller bulk upsert, {settings['bulk_size']} companies per call "
        "(bare: parses the same body, answers the same outcome list)",
        [
            "target", "clients", "calls/s", "records/s", "× bare", "p50 ms",
            "server µs/call", "server cap. rec/s", "cap. × bare", cores, "limit", "errors",
        ],
    )  # fmt: skip
    for row in report["propeller_bulk"]:
        table.add_row(
            row["target"],
            _fmt(row["clients"]),
            _fmt(row["calls_per_s"]),
            _fmt(row["records_per_s"]),
            _fmt(row["ratio_to_bare"], 2),
            _fmt(row["p50_ms"], 2),
            _fmt(row["server_us_per_call"]),
            _fmt(row["server_capacity_records_per_s"]),
            _fmt(row["server_capacity_ratio_to_bare"], 2),
            _cores(row),
            row["limit"],
            _fmt(row["errors"]),
        )
    console.print(table)

    table = _table(
        f"Paging {settings['customers']:,} customers, $top={settings['page_size']}, 1 client "
        "parsing every page (bare: slices the same seed records)",
        [
            "target", "records", "pages", "seconds", "records/s", "× bare",
            "server CPU s", "CPU × bare", cores, "limit",
        ],
    )  # fmt: skip
    for row in report["paging"]:
        table.add_row(
            row["target"],
            _fmt(row["records"]),
            _fmt(row["pages"]),
            _fmt(row["seconds"]),
            _fmt(row["records_per_s"]),
            _fmt(row["ratio_to_bare"], 2),
            _fmt(row["server_cpu_s"]),
            _fmt(row["server_cpu_ratio_to_bare"], 2),
            _cores(row),
            row["limit"],
        )
    console.print(table)
    summary = report["summary"]
    slowest = summary["slowest_get"]
    console.print(
        f"[bold]Headroom[/bold]: one client process reaches {_fmt(summary['client_max_get_per_s'])}"
        f" GET/s (bare, {settings['clients']} clients). The slowest simulator GET "
        f"({slowest['target']}, {_clients(slowest['clients'])}) costs "
        f"{_fmt(slowest['server_us_per_request'])} µs of server CPU: "
        f"{_fmt(slowest['server_capacity_per_s'])}/s per server core, "
        f"{_fmt(slowest['server_capacity_ratio_to_bare'], 2)} × bare, enough for "
        f"{_fmt(slowest['client_processes_served'], 2)} such client processes. Propeller bulk: "
        f"≥ {_fmt(summary['slowest_bulk']['server_capacity_records_per_s'])} records/s per "
        f"server core. OnlineERP paging: {_fmt(summary['onlineerp_paging_seconds'])} s, "
        f"{_fmt(summary['onlineerp_paging_ratio_to_bare'], 2)} × bare."
    )
    timings = report["timings_s"]
    console.print(
        "× bare: the simulator's rate ÷ the bare server's, same clients, same run. "
        "server cap.: what the server would answer with one core busy (1 ÷ its CPU per "
        "request), which holds even when the client is the limit. cores c/s/o: cores kept "
        "busy by the client process, the server process and the rest of the machine; a side "
        f"at ≥ {SATURATED_CORE_SHARE} is CPU-bound. Setup {_fmt(timings['setup'])} s, "
        f"total {_fmt(timings['total'])} s."
    )


def run(settings: Settings) -> dict[str, Any]:
    """Serve, prepare, measure; returns the report."""
    started = time.perf_counter()
    machine = machine_info()
    with served() as urls, httpx.Client(base_url=urls["bare"], timeout=30) as control:

        def server_cpu_s() -> float:
            value: float = control.get("/_cpu").json()["cpu_s"]
            return value

        meter = CpuMeter(server_cpu_s)
        setup_started = time.perf_counter()
        prepare(urls, settings)
        setup_s = time.perf_counter() - setup_started
        targets = get_targets(urls, settings)
        for target in targets:
            _probe(target)
        gets = load_rounds(targets, settings, meter)
        bulks = load_rounds(bulk_targets(urls), settings, meter, warmup=2)
        paging = paging_rounds(urls, settings, meter)
    timings = {"setup": setup_s, "total": time.perf_counter() - started}
    return build_report(settings, machine, gets, bulks, paging, timings)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.simulators", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (N)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    if args.clients is not None and args.clients < 2:
        parser.error("--clients must be at least 2 (1 client is always measured)")
    settings = Settings.of(args.quick, args.clients)
    report = run(settings)
    if args.json:
        print_json(report)
    else:
        console = Console()
        print_tables(report, console if console.is_terminal else Console(width=170))
    return 0


if __name__ == "__main__":
    sys.exit(main())
