"""The console's actions (POST): log in and out, replay, drop, edit, pause, resume, repair.

Every action but logging in needs an operator's session and the session's CSRF token
(:func:`cli.console.web.guarded`), and is audit-logged under the user's name by the
service it calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cli.console.auth import COOKIE, check_login
from cli.console.pages import dead_letter_filter
from cli.services.replay import DlqOperator, DurationError, EditError
from cli.status import pause_target, resume_target
from state.dlq import DeadLetterStore

if TYPE_CHECKING:
    from cli.console.web import Console, Handler

    Action = Callable[[Console, Request, FormData, str], Response]

log = structlog.get_logger("erpsync.console")


def back(path: str, message: str) -> Response:
    return RedirectResponse(f"{path}?msg={quote(message)}", status_code=303)


def login(console: Console) -> Handler:
    async def handler(request: Request) -> Response:
        form = await request.form()
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        role = await run_in_threadpool(check_login, console.settings.console, user, password)
        audit = DeadLetterStore(console.backend.client, console.backend.keys).audit
        if role is None:
            log.warning("console.login_failed", user=user[:64])
            await run_in_threadpool(audit, user[:64], "console.login_failed", 0)
            return console.render(
                request, "login.html", code=401, next="/", error="wrong user or password"
            )
        _, cookie = console.sessions.issue(user, role)
        target = str(form.get("next") or "/")
        local = target.startswith("/") and not target.startswith(("//", "/\\"))
        response = RedirectResponse(target if local else "/", status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        log.info("console.login", user=user, role=role)
        await run_in_threadpool(audit, user, "console.login", 0, {"role": role})
        return response

    return handler


def logout(console: Console) -> Handler:
    async def handler(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    return handler


def _selection(
    operator: DlqOperator, form: FormData
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """The entries a form names: ticked ids, else its filter (entries, missing, criteria)."""
    ids = [str(v) for v in form.getlist("ids") if str(v)]
    if ids:
        entries, missing = operator.get_many(ids)
        return entries, missing, {"ids": ids}
    flt = dead_letter_filter(form)
    if flt.empty:
        raise DurationError("name entries (tick them) or a filter: refusing to act on all")
    return operator.select(flt), [], flt.as_dict()


def replay(console: Console, request: Request, form: FormData, user: str) -> Response:
    b = console.backend
    with b.operator(user, publisher=True) as s:
        entries, missing, criteria = _selection(s.operator, form)
        plan = s.operator.plan(entries, missing)
        if form.get("dry_run"):
            return console.render(request, "plan.html", plan=plan, form=_echo(form))
        report = s.operator.replay(plan, criteria=criteria)
    return back("/dlq", f"replayed {len(report.replayed)}, {len(report.superseded)} superseded")


def drop(console: Console, request: Request, form: FormData, user: str) -> Response:
    b = console.backend
    with b.operator(user) as s:
        entries, _, criteria = _selection(s.operator, form)
        dropped = s.operator.drop(entries, criteria)
    return back("/dlq", f"dropped {dropped}")


def edit(console: Console, request: Request, form: FormData, user: str) -> Response:
    entry_id = request.path_params["entry_id"]
    try:
        payload = json.loads(str(form.get("payload", "")))
    except ValueError as exc:
        raise EditError(f"the payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EditError("the payload must be a JSON object")
    b = console.backend
    with b.operator(user) as s:
        result = s.operator.edit(entry_id, payload=payload)
    changed = ", ".join(result.changed) if result else "nothing changed"
    return back(f"/dlq/{entry_id}", f"edited: {changed}")


def target(console: Console, request: Request, form: FormData, user: str) -> Response:
    b = console.backend
    name, verb = request.path_params["name"], request.path_params["verb"]
    if name not in b.targets() or verb not in ("pause", "resume"):
        raise DurationError(f"unknown target {name!r} or action {verb!r}")
    if verb == "pause":
        pause_target(b.client, b.keys, name, user, str(form.get("reason") or "") or None)
    else:
        resume_target(b.client, b.keys, name, user)
    return back("/targets", f"{name}: {verb}d by {user}")


def repair(console: Console, request: Request, form: FormData, user: str) -> Response:
    b = console.backend
    flow = request.path_params["flow"]
    if flow not in b.settings.flows:
        raise DurationError(f"unknown flow {flow!r}")
    # The reconcile command itself (reads every record, sends the repairs, audits them);
    # its log goes where the console's goes.
    subprocess.Popen(  # noqa: S603 (our own interpreter and module, fixed arguments)
        [sys.executable, "-m", "cli", "reconcile", flow, "--repair", "--actor", user],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    return back("/reconcile", f"reconcile of {flow} with repair started by {user}")


def routes(console: Console) -> list[tuple[str, Handler]]:
    """(path, handler) of every action."""

    def action(fn: Action) -> Handler:
        async def handler(request: Request) -> Response:
            form = await request.form()
            user = request.state.session.user
            try:
                return await run_in_threadpool(fn, console, request, form, user)
            except (DurationError, EditError) as exc:
                reasons = getattr(exc, "reasons", [])
                return console.render(
                    request, "refused.html", code=400, why=str(exc), reasons=reasons
                )

        return handler

    return [
        ("/dlq/replay", action(replay)),
        ("/dlq/drop", action(drop)),
        ("/dlq/{entry_id}/edit", action(edit)),
        ("/targets/{name}/{verb}", action(target)),
        ("/reconcile/{flow}/repair", action(repair)),
    ]


def _echo(form: FormData) -> list[tuple[str, str]]:
    """A form's fields but the token and the dry run, to post again for real."""
    return [(k, str(v)) for k, v in form.multi_items() if k not in ("csrf", "dry_run")]
