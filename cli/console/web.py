"""The console's Starlette application: sessions, CSRF, roles, templates and routes.

Pages (GET) live in :mod:`cli.console.pages`, actions (POST) in :mod:`cli.console.actions`;
both get a :class:`Request` whose ``state.session`` is set here. Blocking work (Redis, the
broker) runs in Starlette's thread pool.
"""

from __future__ import annotations

import getpass
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
import structlog
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from cli.console.auth import COOKIE, Session, Sessions
from cli.console.state import Backend
from erpsync.redaction import redact
from erpsync.settings import Settings

log = structlog.get_logger("erpsync.console")
TEMPLATES = Path(__file__).with_name("templates")
Handler = Callable[[Request], Awaitable[Response]]
#: no framing (clickjacking), no caching of pages that show payloads, no referrer outside
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _finalize(value: Any) -> Any:
    """Every value a template prints passes the redaction of registered secrets (markup
    made by a macro or the graph is built of values that already did)."""
    if isinstance(value, Markup):
        return value
    return redact(value) if isinstance(value, str) else value


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["redact"] = redact
    return env


class Console:
    """Everything the handlers share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = Backend(settings)
        self.env = environment()
        secret = settings.console.session_secret
        key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        self.sessions = Sessions(key, settings.console.session_hours)
        self.open = not settings.console.users  # loopback only, checked at start

    def render(self, request: Request, name: str, code: int = 200, **data: Any) -> Response:
        session: Session | None = getattr(request.state, "session", None)
        html = self.env.get_template(name).render(
            session=session,
            flower=self.settings.console.flower_url,
            login=not self.open,
            message=request.query_params.get("msg"),
            **data,
        )
        return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)

    def refuse(self, request: Request, status: int, why: str) -> Response:
        log.warning("console.refused", path=request.url.path, status=status, why=why)
        return self.render(request, "refused.html", code=status, why=why)

    def local_session(self) -> tuple[Session, str]:
        """Without users (loopback only): whoever runs the console's machine operates."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "local"
        return self.sessions.issue(f"{name} (local)", "operator")


def guarded(console: Console, handler: Handler, *, action: bool) -> Handler:
    """The session (or the login page), the operator role and the CSRF token of a POST."""

    async def endpoint(request: Request) -> Response:
        session = console.sessions.read(request.cookies.get(COOKIE))
        cookie = None
        if session is None and console.open:
            session, cookie = console.local_session()
        if session is None:
            if action:
                return console.refuse(request, 401, "log in first")
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        request.state.session = session
        if action:
            form = await request.form()
            token = str(form.get("csrf") or "")
            if not secrets.compare_digest(token.encode(), session.csrf.encode()):
                return console.refuse(request, 403, "the form's CSRF token is missing or wrong")
            if not session.operator:
                return console.refuse(request, 403, f"{session.user} is a viewer: operators only")
        response = await handler(request)
        if cookie is not None:
            response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        return response

    return endpoint


def build_app(settings: Settings, *, sample: bool = True) -> Starlette:
    """The console of the installation ``settings`` describe."""
    from cli.console import actions, pages

    console = Console(settings)
    routes = [
        Route("/login", pages.login_page(console), methods=["GET"]),
        Route("/login", actions.login(console), methods=["POST"]),
        Route("/logout", actions.logout(console), methods=["POST"]),
    ]
    for path, handler in pages.routes(console):
        routes.append(Route(path, guarded(console, handler, action=False), methods=["GET"]))
    for path, handler in actions.routes(console):
        routes.append(Route(path, guarded(console, handler, action=True), methods=["POST"]))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if sample:
            console.backend.start_sampling(
                lambda exc: log.warning("console.sample_failed", error=str(exc))
            )
        yield
        await run_in_threadpool(console.backend.close)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    return app
