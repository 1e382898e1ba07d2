"""Serve the four simulators over real HTTP on 127.0.0.1.

``serve_forever`` runs them in the foreground (``erpsync sandbox``); :class:`RunningSandbox`
runs them in a background thread for tests, benchmarks and the demo. Ports are
``port_base`` (OnlineERP), +1 (Propeller), +2 (HIPE), +3 (Atollon); ``port_base=0`` binds
four free ports.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from simulators._sandbox import SeedRequest, Simulator, _DropError, build_app
from simulators.handmade import HandmadeRequest
from simulators.handmade import generate as generate_handmade

SYSTEMS: tuple[str, ...] = ("onlineerp", "propeller", "hipe", "atollon")

# Credentials of the sandbox (issue #2); printed by `erpsync sandbox`, never real secrets.
CREDENTIALS: dict[str, dict[str, str]] = {
    "onlineerp": {"licence_code": "SANDBOX", "secret": "sandbox-secret", "company_id": "0"},
    "propeller": {"client_id": "sandbox", "client_secret": "sandbox-secret"},
    "hipe": {"access_token": "sandbox-token"},
    "atollon": {"instance": "sandbox"},
}

# The URL path under which each vendor's API lives (what a client puts in base_url).
API_ROOTS: dict[str, str] = {
    "onlineerp": "/api",
    "propeller": "",
    "hipe": "",
    "atollon": "",
}


class _DropFilter(logging.Filter):
    """Deliberate connection drops are faults we injected, not server errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, _DropError):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def make_simulators(
    *, propeller_bulk: str = "guide", atollon_match: str = "unclaimed", hipe_ids: str = "int"
) -> dict[str, Simulator]:
    """One fresh simulator per system (``propeller_bulk``: ``guide`` or ``strict``, whether
    Propeller bulk items may carry e-mail and phone; ``atollon_match``: ``unclaimed`` or
    ``name``, how Atollon matches a company whose external id it does not know;
    ``hipe_ids``: ``int`` or ``uuid``, HIPE's record ids: docs/sandbox-conventions.md)."""
    from simulators.atollon import AtollonSimulator
    from simulators.hipe import HipeSimulator
    from simulators.onlineerp import OnlineErpSimulator
    from simulators.propeller import PropellerSimulator

    return {
        "onlineerp": OnlineErpSimulator(),
        "propeller": PropellerSimulator(bulk=propeller_bulk),
        "hipe": HipeSimulator(ids="uuid" if hipe_ids == "uuid" else "int"),
        "atollon": AtollonSimulator(
            company_match="name" if atollon_match == "name" else "unclaimed"
        ),
    }


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, headers and body written separately
    # meet the client's delayed ACK and every answer takes ~40 ms more.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@dataclass
class SandboxEndpoint:
    """Where one simulator listens."""

    system: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The server's root URL (the control surface lives at ``url + '/_sandbox'``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base URL a client of the vendor API uses."""
        return self.url + API_ROOTS.get(self.system, "")


@dataclass
class RunningSandbox:
    """The four simulators served from a background thread; use as a context manager."""

    host: str = "127.0.0.1"
    port_base: int = 0
    seed: SeedRequest | None = None
    #: hand-made companies loaded into every target after the seed (simulators.handmade)
    handmade: HandmadeRequest | None = None
    log_level: str = "warning"
    simulators: dict[str, Simulator] = field(default_factory=make_simulators)
    endpoints: dict[str, SandboxEndpoint] = field(default_factory=dict)
    apps: dict[str, Starlette] = field(default_factory=dict)
    _servers: list[uvicorn.Server] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _sockets: list[socket.socket] = field(default_factory=list)

    def start(self) -> RunningSandbox:
        logging.getLogger("uvicorn.error").addFilter(_DropFilter())
        handmade = generate_handmade(self.handmade) if self.handmade is not None else []
        for system in self.simulators:
            offset = SYSTEMS.index(system) if system in SYSTEMS else len(SYSTEMS)
            port = self.port_base + offset if self.port_base else 0
            sock = bind(self.host, port)
            self._sockets.append(sock)
            self.endpoints[system] = SandboxEndpoint(system, self.host, sock.getsockname()[1])
            app = build_app(self.simulators[system])
            self.apps[system] = app
            if self.seed is not None:
                self.simulators[system].seed(self.seed)
            if handmade:
                self.simulators[system].load_handmade(handmade)
            config = uvicorn.Config(
                app,
                log_level=self.log_level,
                access_log=False,
                lifespan="off",
                timeout_keep_alive=30,
                backlog=2048,
            )
            self._servers.append(uvicorn.Server(config))
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="erpsync-sandbox", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout=30):
            raise RuntimeError("the sandbox did not start within 30 s")
        return self

    def _run(self, started: threading.Event) -> None:
        async def main() -> None:
            tasks = [
                asyncio.create_task(server.serve(sockets=[sock]))
                for server, sock in zip(self._servers, self._sockets, strict=True)
            ]
            while not all(server.started for server in self._servers):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # uvicorn exposes `started` only as a flag
            started.set()
            await asyncio.gather(*tasks)

        asyncio.run(main())

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> RunningSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port_base: int = 8800,
    seed: SeedRequest | None = None,
    handmade: HandmadeRequest | None = None,
    on_started: Callable[[dict[str, SandboxEndpoint]], None] | None = None,
    log_level: str = "warning",
    propeller_bulk: str = "guide",
    atollon_match: str = "unclaimed",
    hipe_ids: str = "int",
) -> None:
    """Run the sandbox in the foreground until interrupted (Ctrl-C)."""
    sandbox = RunningSandbox(
        host=host,
        port_base=port_base,
        seed=seed,
        handmade=handmade,
        log_level=log_level,
        simulators=make_simulators(
            propeller_bulk=propeller_bulk, atollon_match=atollon_match, hipe_ids=hipe_ids
        ),
    )
    sandbox.start()
    if on_started is not None:
        on_started(sandbox.endpoints)
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            if sandbox._thread is not None and not sandbox._thread.is_alive():
                break
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
