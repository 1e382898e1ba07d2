"""The console's pages (GET): overview, dead letters, an entry, targets, audit, trace, reconcile."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cli.console.graph import outcome_graph
from cli.services.replay import (
    DeadLetterFilter,
    DurationError,
    entry_as_dict,
    format_age,
    parse_duration,
)
from cli.trace import by_target, read_story, when
from producers.reconcile import KINDS, last_result
from state.limits import Circuit
from state.messages import TASK_APPLY

if TYPE_CHECKING:
    from cli.console.state import Backend
    from cli.console.web import Console, Handler

    Page = Callable[[Backend, Request], tuple[str, dict[str, Any]]]

FILTER_FIELDS = ("target", "code", "flow", "entity", "key")
#: dead letters listed on the page at most (the groups count them all)
LISTED = 500


def dead_letter_filter(params: Any) -> DeadLetterFilter:
    """The filter a form or query names (empty values ignored); raises DurationError."""
    older = str(params.get("older_than") or "").strip()

    def values(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in params.getlist(name) if str(v).strip())

    return DeadLetterFilter(
        targets=values("target"),
        codes=values("code"),
        flows=values("flow"),
        entities=values("entity"),
        keys=values("key"),
        older_than_s=parse_duration(older) if older else None,
    )


def login_page(console: Console) -> Handler:
    async def page(request: Request) -> Response:
        return console.render(request, "login.html", next=request.query_params.get("next", "/"))

    return page


def overview(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    status = b.status()
    return "overview.html", {
        "status": status,
        "graph": outcome_graph(b.history()),
        "age": format_age,
    }


def dead_letters(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    flt = dead_letter_filter(request.query_params)
    with b.operator("console") as s:
        entries = s.operator.select(flt)
    groups: dict[str, dict[str, Any]] = {}
    for e in entries:
        group = groups.setdefault(e.code, {"count": 0, "hint": e.hint, "targets": set()})
        group["count"] += 1
        group["targets"].add(e.target)
    query = {n: request.query_params.get(n, "") for n in (*FILTER_FIELDS, "older_than")}
    return "dlq.html", {
        "entries": entries[:LISTED],
        "total": len(entries),
        "groups": groups,
        "query": query,
        "age": format_age,
        "now": time.time(),
    }


def entry(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    entry_id = request.path_params["entry_id"]
    with b.operator("console") as s:
        found = s.operator.store.get(entry_id)
        why = s.operator.explain_missing(entry_id) if found is None else ""
    if found is None:
        return "missing.html", {"what": f"dead letter {entry_id}", "why": why}
    story = read_story(b.settings, found.key, found.flow)
    payload = json.dumps(found.delivery.event.payload, indent=2, ensure_ascii=False)
    return "entry.html", {
        "e": entry_as_dict(found),
        "payload": payload,
        "story": story,
        "when": when,
        "task_name": TASK_APPLY,
    }


def targets(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    circuit = Circuit(b.client, b.keys)
    rows = [{"name": t, **circuit.status(t).as_dict()} for t in b.targets()]
    return "targets.html", {"targets": rows}


def audit(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    with b.operator("console") as s:
        rows = s.operator.store.audit_log(limit=200)
    return "audit.html", {"rows": rows}


def trace(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    key = request.query_params.get("key", "").strip()
    flow = request.query_params.get("flow", "").strip() or None
    story = read_story(b.settings, key, flow) if key else []
    return "trace.html", {
        "key": key,
        "flow": flow or "",
        "flows": sorted(b.settings.flows),
        "groups": by_target(story) if story else {},
        "when": when,
    }


def reconcile(b: Backend, request: Request) -> tuple[str, dict[str, Any]]:
    found = {name: last_result(b.client, b.keys, name) for name in sorted(b.settings.flows)}
    return "reconcile.html", {"results": found, "kinds": KINDS, "when": when}


def routes(console: Console) -> list[tuple[str, Handler]]:
    """(path, handler) of every page."""

    def page(fn: Page) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                name, data = await run_in_threadpool(fn, console.backend, request)
            except DurationError as exc:
                return console.render(request, "refused.html", code=400, why=str(exc))
            if name == "missing.html":
                return console.render(request, name, code=404, **data)
            return console.render(request, name, **data)

        return handler

    return [
        ("/", page(overview)),
        ("/dlq", page(dead_letters)),
        ("/dlq/export", export(console)),
        ("/dlq/{entry_id}", page(entry)),
        ("/targets", page(targets)),
        ("/audit", page(audit)),
        ("/trace", page(trace)),
        ("/reconcile", page(reconcile)),
    ]


def export(console: Console) -> Handler:
    """The dead letters a filter selects, as JSON lines (audit-logged as an export)."""

    async def handler(request: Request) -> Response:
        session = request.state.session
        try:
            flt = dead_letter_filter(request.query_params)
        except DurationError as exc:
            return console.render(request, "refused.html", code=400, why=str(exc))

        def lines() -> list[str]:
            with console.backend.operator(session.user) as s:
                entries = s.operator.select(flt)
                return [line + "\n" for line in s.operator.export_lines(entries, flt.as_dict())]

        body = await run_in_threadpool(lines)

        def chunks() -> Iterator[str]:
            yield from body

        return StreamingResponse(
            chunks(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="dead-letters.jsonl"'},
        )

    return handler
