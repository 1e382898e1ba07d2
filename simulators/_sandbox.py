"""The control surface every simulator shares, and the app builder that wires it in.

Every simulator app answers, besides its vendor API:

* ``POST /_sandbox/faults``: one rule object or a list of them (see :class:`FaultRule`),
  replacing the rules in force; ``GET`` shows them; ``DELETE`` clears them.
* ``GET /_sandbox/stats``: request counts by method, route template and status, and the
  number of writes (requests that change state).
* ``GET /_sandbox/records/{entity}``: every stored record of an entity as the vendor's API
  represents it.
* ``POST /_sandbox/reset``: empty state, no faults, zero stats.
* ``POST /_sandbox/seed``: load the deterministic seed data set (:mod:`simulators.seed`).
* ``POST /_sandbox/handmade``: add hand-made companies without erpsync's external id
  (:mod:`simulators.handmade`; Propeller, HIPE and Atollon), answering what each was made
  to match.
* ``POST /_sandbox/load/{entity}``: store many records at once, each given as the body the
  vendor's write call takes (HIPE ``companies``, Atollon ``contacts``), in order, as that
  call would store it, without a request each: large data sets for benchmarks. Answers the
  stored records as the API would have answered them; a body the call would refuse stops
  the load (400, with how many were stored before it).
* a simulator's own control routes (:meth:`Simulator.control_routes`), e.g. the ERP's
  ``POST /_sandbox/invoices/{NoFacture}/payment``.

Faults apply to vendor routes only, never to ``/_sandbox``. For a request whose path
matches a rule: ``latency_ms`` delays every such request; ``drop_rate`` closes the connection
without a complete answer (before the request is applied, or after it with
``drop_phase="after"``: the ambiguous case a client cannot tell from a lost request);
``rate`` answers with one of ``statuses`` or with the vendor error ``vendor_code``, with a
``Retry-After`` header when ``retry_after_s`` is set. ``count`` bounds how many requests a
rule may fail. ``max_per_s`` is a rate limit: a matching request that arrives when the rule
has already let ``max_per_s`` requests through in the last second answers 429 (the vendor's
shape, with ``Retry-After``: ``retry_after_s``, else the time until the window frees a slot)
and is not applied; a request it lets through counts even if another fault then fails it.

The simulators share no code or models with ``adapters/``: each side is written from the
vendors' documentation on its own, so a misreading shows where the two meet.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulators.handmade import Handmade, HandmadeRequest
from simulators.handmade import generate as generate_handmade

_log = logging.getLogger("simulators")

SANDBOX_PREFIX = "/_sandbox"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FaultRule(BaseModel):
    """One injected fault, as posted to ``/_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=1.0, ge=0, le=1, description="share of matching requests failed")
    statuses: list[int] = Field(default_factory=list, description="HTTP statuses to answer with")
    vendor_code: str | int | None = Field(default=None, description="a vendor error to answer with")
    retry_after_s: float | None = Field(default=None, ge=0)
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    drop_phase: Literal["before", "after"] = "before"
    path: str = Field(default="*", description="glob on the request path, e.g. /v2/companies*")
    methods: list[str] | None = None
    count: int | None = Field(default=None, ge=0, description="fail at most this many requests")
    max_per_s: int | None = Field(
        default=None, ge=1, description="answer 429 beyond this many requests in any second"
    )

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in {m.upper() for m in self.methods}:
            return False
        return fnmatch.fnmatchcase(path, self.path)


class SeedRequest(BaseModel):
    """Body of ``POST /_sandbox/seed``."""

    model_config = ConfigDict(extra="forbid")

    customers: int = Field(default=100, ge=0, le=1_000_000)
    products: int | None = Field(default=None, ge=0, le=1_000_000)
    activities: int | None = Field(default=None, ge=0, le=100_000)
    random_seed: int = 42
    #: one to four people (ERP ``Contact``) per customer; off by default, so that a seed
    #: without them holds exactly what it held before contacts existed
    contacts: bool = False


@dataclass
class VendorError:
    """An error answer in the vendor's own shape."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        if isinstance(self.body, str | bytes):
            return Response(self.body, status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


class Simulator:
    """What a vendor simulator provides; subclass and fill in the vendor's behaviour."""

    #: short name used in URLs, logs and the sandbox listing
    name: str = "simulator"
    #: (method, route template) pairs that use a mutating verb but change nothing
    non_mutating: frozenset[tuple[str, str]] = frozenset()

    def __init__(self) -> None:
        #: every simulator serialises state changes through this lock (handlers may run in
        #: a thread pool; background jobs run in threads)
        self.lock = threading.RLock()

    def routes(self) -> list[BaseRoute]:
        """The vendor API's routes."""
        raise NotImplementedError

    def control_routes(self) -> list[BaseRoute]:
        """Routes of this simulator's own under ``/_sandbox`` (what a user of the vendor's
        product does by hand, e.g. record a payment); never subject to faults."""
        return []

    def error(self, status: int, message: str) -> VendorError:
        """The vendor's error answer for a plain HTTP failure (404 route, 405, 500…)."""
        return VendorError(status, {"statusCode": status, "message": message})

    def vendor_error(self, code: str) -> VendorError:
        """The vendor's answer for an injected ``vendor_code`` fault."""
        return self.error(500, f"injected vendor error {code}")

    def records(self, entity: str) -> list[Any] | None:
        """Every record of ``entity`` as the API represents it; None for an unknown entity."""
        raise NotImplementedError

    def entities(self) -> list[str]:
        """The entity names ``/_sandbox/records/{entity}`` accepts."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every record."""
        raise NotImplementedError

    def load_handmade(self, companies: Sequence[Handmade]) -> int | None:
        """Store hand-made companies as people typed them (None: this system holds none)."""
        return None

    def seed(self, request: SeedRequest) -> dict[str, int]:
        """Load this simulator's part of the seed data set; returns counts per entity."""
        return {}

    def load(self, entity: str, bodies: Sequence[Any]) -> list[Any] | None:
        """Store ``bodies`` as the vendor's write call for ``entity`` would, in order (the
        caller holds the lock); the answers. None: this simulator loads no ``entity``.
        Raises :class:`LoadRefusedError` for a body the call would refuse."""
        return None


class LoadRefusedError(Exception):
    """A body of ``POST /_sandbox/load`` that the vendor's call would refuse."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"body {index} refused: {reason}")
        self.loaded = index


class _DropError(Exception):
    """Raised inside the ASGI app to make the server close the connection mid-answer."""


@dataclass
class _State:
    rules: list[FaultRule] = field(default_factory=list)
    remaining: list[int | None] = field(default_factory=list)
    #: per rule, arrival times (monotonic) of the requests its ``max_per_s`` let through
    windows: list[deque[float]] = field(default_factory=list)
    stats: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    writes: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_rules(self, rules: list[FaultRule]) -> None:
        """Replace the rules in force (their counts and rate windows start afresh)."""
        with self.lock:
            self.rules = rules
            self.remaining = [r.count for r in rules]
            self.windows = [deque() for _ in rules]

    def clear_stats(self) -> None:
        with self.lock:
            self.stats.clear()
            self.faults_injected.clear()
            self.writes = 0


class SandboxMiddleware:
    """Pure ASGI middleware: stats for every vendor request, and fault injection."""

    def __init__(
        self, app: ASGIApp, simulator: Simulator, state: _State, routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.simulator = simulator
        self.state = state
        self.routes = routes

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", scope["path"]))
        return str(scope["path"])

    def _pick(self, method: str, path: str) -> tuple[int, list[FaultRule]]:
        with self.state.lock:
            matching = [(i, r) for i, r in enumerate(self.state.rules) if r.matches(method, path)]
        return len(matching), [r for _, r in matching]

    def _take(self, rule: FaultRule) -> bool:
        """Consume one use of ``rule``'s count; False when it is used up."""
        with self.state.lock:
            index = next((i for i, r in enumerate(self.state.rules) if r is rule), None)
            if index is None:
                return False
            left = self.state.remaining[index]
            if left is None:
                return True
            if left <= 0:
                return False
            self.state.remaining[index] = left - 1
            return True

    def _over_limit(self, rule: FaultRule, now: float) -> float | None:
        """None when ``rule`` lets a request arriving ``now`` through, else seconds to wait.

        A request let through is counted in the rule's one-second window.
        """
        limit = rule.max_per_s
        if limit is None:
            return None
        with self.state.lock:
            index = next((i for i, r in enumerate(self.state.rules) if r is rule), None)
            if index is None:
                return None
            window = self.state.windows[index]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) < limit:
                window.append(now)
                return None
            return max(0.0, window[0] + 1.0 - now)

    def _roll(self, probability: float) -> bool:
        with self.state.lock:
            return probability > 0 and self.state.rng.random() < probability

    def _record(self, method: str, template: str, status: str) -> None:
        with self.state.lock:
            self.state.stats[(method, template, status)] += 1
            if (
                method in MUTATING_METHODS
                and status.isdigit()
                and int(status) < 400
                and (method, template) not in self.simulator.non_mutating
            ):
                self.state.writes += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started: dict[str, bool] = {"started": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["started"] = True
            await send(message)

        try:
            await self._handle(scope, receive, tracking_send)
        except _DropError:
            raise
        except Exception:
            # A bug in a simulator answers in the vendor's error shape, never a traceback.
            _log.exception("sandbox.%s.unhandled_error", self.simulator.name)
            if started["started"]:
                raise
            await self.simulator.error(500, "Internal Server Error").response()(
                scope, receive, send
            )

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        template = self._template(scope)
        _, rules = self._pick(method, path)

        arrived = time.monotonic()
        limited: tuple[FaultRule, float] | None = None
        for rule in rules:
            wait = self._over_limit(rule, arrived)
            if wait is not None:
                limited = (rule, wait)
                break

        latency_ms = max((r.latency_ms for r in rules), default=0)
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)

        if limited is not None:
            rule, wait = limited
            error = self.simulator.error(429, "injected fault: rate limit exceeded")
            retry_after = rule.retry_after_s if rule.retry_after_s is not None else wait
            error.headers["Retry-After"] = f"{math.ceil(retry_after * 1000) / 1000:g}"
            with self.state.lock:
                self.state.faults_injected["429"] += 1
            self._record(method, template, "429")
            await error.response()(scope, receive, send)
            return

        drop_after = False
        for rule in rules:
            if rule.drop_rate and self._roll(rule.drop_rate) and self._take(rule):
                with self.state.lock:
                    self.state.faults_injected["drop"] += 1
                if rule.drop_phase == "before":
                    self._record(method, template, "dropped")
                    await _drop(send)
                    return
                drop_after = True
                break

        if not drop_after:
            for rule in rules:
                if not (rule.statuses or rule.vendor_code is not None):
                    continue
                if not self._roll(rule.rate) or not self._take(rule):
                    continue
                error = self._injected(rule)
                with self.state.lock:
                    self.state.faults_injected[str(rule.vendor_code or error.status)] += 1
                self._record(method, template, str(error.status))
                await error.response()(scope, receive, send)
                return

        status_holder: dict[str, int] = {}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                if drop_after:
                    return
            if drop_after:
                return
            await send(message)

        await self.app(scope, receive, recording_send)
        status = status_holder.get("status", 500)
        if drop_after:
            self._record(method, template, "dropped")
            await _drop(send)
            return
        self._record(method, template, str(status))

    def _injected(self, rule: FaultRule) -> VendorError:
        if rule.vendor_code is not None:
            error = self.simulator.vendor_error(str(rule.vendor_code))
        else:
            with self.state.lock:
                status = self.state.rng.choice(rule.statuses)
            error = self.simulator.error(status, f"injected fault: HTTP {status}")
        if rule.retry_after_s is not None:
            error.headers["Retry-After"] = f"{rule.retry_after_s:g}"
        return error


async def _drop(send: Send) -> None:
    """Start an answer and abort it: the server closes the connection mid-response."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]}
    )
    raise _DropError("connection dropped by the sandbox")


def build_app(simulator: Simulator) -> Starlette:
    """The simulator's vendor routes plus the ``/_sandbox`` control surface."""
    state = _State()
    vendor_routes = simulator.routes()

    async def set_faults(request: Request) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        items = payload if isinstance(payload, list) else [payload]
        try:
            rules = [FaultRule.model_validate(item) for item in items]
        except ValidationError as exc:
            return JSONResponse(
                {"error": "invalid fault rule", "details": exc.errors(include_url=False)},
                status_code=400,
            )
        for rule in rules:
            if not (
                rule.statuses
                or rule.vendor_code
                or rule.latency_ms
                or rule.drop_rate
                or rule.max_per_s
            ):
                return JSONResponse(
                    {
                        "error": "a rule needs statuses, vendor_code, latency_ms, drop_rate "
                        "or max_per_s"
                    },
                    status_code=400,
                )
            if any(s < 100 or s > 599 for s in rule.statuses):
                return JSONResponse({"error": "statuses must be HTTP statuses"}, status_code=400)
        state.set_rules(rules)
        return JSONResponse({"rules": [r.model_dump() for r in rules]})

    async def get_faults(request: Request) -> Response:
        with state.lock:
            return JSONResponse(
                {
                    "rules": [r.model_dump() for r in state.rules],
                    "remaining": list(state.remaining),
                    "injected": dict(state.faults_injected),
                }
            )

    async def clear_faults(request: Request) -> Response:
        state.set_rules([])
        return JSONResponse({"rules": []})

    async def stats(request: Request) -> Response:
        with state.lock:
            rows = [
                {"method": m, "route": r, "status": s, "count": c}
                for (m, r, s), c in sorted(state.stats.items())
            ]
            by_method: Counter[str] = Counter()
            by_status: Counter[str] = Counter()
            for (m, _, s), c in state.stats.items():
                by_method[m] += c
                by_status[s] += c
            body = {
                "simulator": simulator.name,
                "total": sum(state.stats.values()),
                "writes": state.writes,
                "by_method": dict(by_method),
                "by_status": dict(by_status),
                "faults_injected": dict(state.faults_injected),
                "requests": rows,
            }
        return JSONResponse(body)

    async def clear_stats(request: Request) -> Response:
        state.clear_stats()
        return JSONResponse({"cleared": True})

    async def records(request: Request) -> Response:
        entity = request.path_params["entity"]
        with simulator.lock:
            found = simulator.records(entity)
        if found is None:
            return JSONResponse(
                {"error": f"unknown entity {entity!r}", "entities": simulator.entities()},
                status_code=404,
            )
        return JSONResponse(found)

    async def reset(request: Request) -> Response:
        with simulator.lock:
            simulator.reset()
        state.set_rules([])
        state.clear_stats()
        return JSONResponse({"reset": True})

    async def seed(request: Request) -> Response:
        raw = await request.body()
        try:
            params = SeedRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            return JSONResponse(
                {"error": "invalid seed request", "details": exc.errors(include_url=False)},
                status_code=400,
            )
        with simulator.lock:
            counts = simulator.seed(params)
        return JSONResponse({"seeded": counts})

    async def handmade(request: Request) -> Response:
        raw = await request.body()
        try:
            params = HandmadeRequest.model_validate_json(raw or b"{}")
            companies = generate_handmade(params)
        except ValidationError as exc:
            return JSONResponse(
                {"error": "invalid handmade request", "details": exc.errors(include_url=False)},
                status_code=400,
            )
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with simulator.lock:
            loaded = simulator.load_handmade(companies)
        if loaded is None:
            return JSONResponse(
                {"error": f"{simulator.name} holds no hand-made companies"}, status_code=404
            )
        return JSONResponse({"loaded": loaded, "manifest": [c.as_dict() for c in companies]})

    async def load(request: Request) -> Response:
        entity = request.path_params["entity"]
        try:
            bodies = json.loads(await request.body() or b"[]")
        except ValueError:
            bodies = None
        if not isinstance(bodies, list):
            return JSONResponse({"error": "the body must be a JSON list of records"}, 400)
        with simulator.lock:
            try:
                answers = simulator.load(entity, bodies)
            except LoadRefusedError as exc:
                return JSONResponse({"error": str(exc), "loaded": exc.loaded}, status_code=400)
        if answers is None:
            return JSONResponse({"error": f"{simulator.name} loads no {entity!r}"}, status_code=404)
        return JSONResponse({"loaded": len(answers), "records": answers})

    control = [
        Route(f"{SANDBOX_PREFIX}/faults", set_faults, methods=["POST"]),
        Route(f"{SANDBOX_PREFIX}/faults", get_faults, methods=["GET"]),
        Route(f"{SANDBOX_PREFIX}/faults", clear_faults, methods=["DELETE"]),
        Route(f"{SANDBOX_PREFIX}/stats", stats, methods=["GET"]),
        Route(f"{SANDBOX_PREFIX}/stats", clear_stats, methods=["DELETE"]),
        Route(f"{SANDBOX_PREFIX}/records/{{entity}}", records, methods=["GET"]),
        Route(f"{SANDBOX_PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{SANDBOX_PREFIX}/seed", seed, methods=["POST"]),
        Route(f"{SANDBOX_PREFIX}/handmade", handmade, methods=["POST"]),
        Route(f"{SANDBOX_PREFIX}/load/{{entity}}", load, methods=["POST"]),
        *simulator.control_routes(),
    ]

    def vendor_handler(
        status: int, message: str
    ) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, exc: Exception) -> Response:
            detail = getattr(exc, "detail", None) or message
            return simulator.error(getattr(exc, "status_code", status), str(detail)).response()

        return handle

    app = Starlette(
        routes=[*control, *vendor_routes],
        exception_handlers={
            404: vendor_handler(404, "Not Found"),
            405: vendor_handler(405, "Method Not Allowed"),
        },
    )
    app.add_middleware(SandboxMiddleware, simulator=simulator, state=state, routes=vendor_routes)
    app.state.simulator = simulator
    app.state.sandbox = state
    return app
