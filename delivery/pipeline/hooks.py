"""Where metrics, logs, a batch's tally and (next) a per-record trace attach to the pipeline.

Modelled on dramatiq's middleware: the pipeline calls a hook at fixed points and knows
nothing of who listens. Two points:

- :meth:`Middleware.on_record`, once per record per thing that happened to it, both paths
  alike: its outcome (``final``: applied, skipped, dead-lettered, or parked with the reason:
  ``parked_circuit``, ``parked_busy``, ``retry``, ``dependency_wait``, ``circuit_opened``,
  ``auth_failed``, ``parked_conflict``, ``parked_refused``), or a step on the way, not
  final: a bulk call retried in place after a 429 (``retry``), a wait for the target's
  rate limit before one of the call's requests (``rate_limited``, told by the HTTP
  transport through :func:`rate_limit_waited` while :func:`calling` names the call's
  deliveries). This is the one place a trace writer subscribes to (detection is the
  producer's).
- :meth:`Middleware.after_call` around a sink's call (one record or one bulk call): how long
  it took, the rate limit's wait included, and whether it raised.

The engine's ``observers`` (callables ``(what, delivery, details)``, e.g. the Prometheus
counters of ``workers.metrics``) are the same record events in the older shape.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from delivery.pipeline.contract import Result, log_context
from erpsync.events import Delivery

log = structlog.get_logger("erpsync.worker")

Observer = Callable[[str, Delivery, dict[str, Any]], None]

#: what each outcome (a final record event) means as a delivery's result
RESULTS: Mapping[str, Result] = {
    "applied": "applied",
    "skipped": "skipped",
    "dead_lettered": "dead_lettered",
    "parked_circuit": "parked",
    "parked_busy": "parked",
    "parked_conflict": "parked",
    "parked_refused": "parked",
    "retry": "parked",
    "dependency_wait": "parked",
    "circuit_opened": "parked",
    "auth_failed": "parked",
}

#: how a parked outcome is named on a batch's line (``key:outcome``), when not its own name
_PARKED_AS = {
    "retry": "parked_transient",
    "dependency_wait": "parked_dependency",
    "circuit_opened": "parked_auth",
    "auth_failed": "parked_auth",
}


@dataclass(frozen=True)
class RecordEvent:
    """One thing that happened to one record's delivery."""

    what: str
    delivery: Delivery
    details: Mapping[str, Any]
    #: the delivery's outcome this time (see :data:`RESULTS`); False: a step on the way
    final: bool = True
    #: the record went in a bulk call: its line is its batch's (see :func:`outcome_line`)
    bulk: bool = False

    @property
    def result(self) -> Result:
        """The delivery's result, for an outcome."""
        return RESULTS[self.what]


class Middleware:
    """A listener of the pipeline; override the hooks it needs (each is a no-op here)."""

    def on_record(self, event: RecordEvent) -> None:
        """One record event (see the module's docstring)."""

    def after_call(
        self, target: str, deliveries: Sequence[Delivery], seconds: float, failed: bool
    ) -> None:
        """A sink's call for these deliveries ended (``failed``: it raised)."""


def outcome_line(event: str, delivery: Delivery, *, bulk: bool, **fields: Any) -> None:
    """The line of an applied or skipped delivery.

    On the single path at ``INFO``, with the delivery's bound context. A record of a bulk
    call is named with its outcome on its batch's line (``sync.batch_done``, at ``INFO``), so
    its own line is ``DEBUG``, its context given rather than bound (binding costs more than
    recording the outcome), and not even built when ``DEBUG`` is filtered out. Failures are
    not outcome lines: each keeps its own line on both paths.
    """
    if not bulk:
        log.info(event, **fields)
    elif log.is_enabled_for(logging.DEBUG):
        log.debug(event, **fields, **log_context(delivery))


class OutcomeLines(Middleware):
    """The log line of each applied or skipped record (see :func:`outcome_line`)."""

    def on_record(self, event: RecordEvent) -> None:
        details, bulk = event.details, event.bulk
        if event.what == "applied":
            outcome_line(
                "sync.applied",
                event.delivery,
                bulk=bulk,
                action=details["action"],
                target_id=details.get("target_id"),
            )
        elif event.what == "skipped":
            outcome_line("sync.skipped", event.delivery, bulk=bulk, reason=details["reason"])


class Tally(Middleware, Counter[str]):
    """A batch's results counted (the task's answer), and each record's outcome by its key.

    At ``INFO`` a batch logs one line, ``sync.batch_done``, whose ``outcomes`` name every
    record as ``"key:outcome"`` (``created``, ``updated``, ``skipped_unchanged``,
    ``parked_transient``, ``dead_lettered``, ``single_applied``...), so that grepping a log for
    a key finds what became of it; a failure also has its own line, with the key and the
    reason. It listens only while its batch runs (:meth:`Hooks.listening`).
    """

    def __init__(self) -> None:
        Counter.__init__(self)
        self.outcomes: list[str] = []
        #: the batch's records go the single path now: named ``single_<result>``
        self.single = False

    def on_record(self, event: RecordEvent) -> None:
        if not event.final:
            return
        result = event.result
        if self.single:
            name = f"single_{result}"
        elif event.what == "applied":
            name = str(event.details["action"])
        elif event.what == "skipped":
            name = f"skipped_{event.details['reason']}"
        else:
            name = _PARKED_AS.get(event.what, event.what)
        self[result] += 1
        self.outcomes.append(f"{event.delivery.event.key}:{name}")


#: the sink call running in this thread: the hooks to tell, its deliveries, bulk or not
_CALL: contextvars.ContextVar[tuple[Hooks, Sequence[Delivery], bool] | None] = (
    contextvars.ContextVar("erpsync_pipeline_call", default=None)
)


@contextlib.contextmanager
def calling(hooks: Hooks, deliveries: Sequence[Delivery], *, bulk: bool) -> Iterator[None]:
    """A sink's call for ``deliveries`` runs in this thread for the block (what
    :func:`rate_limit_waited` names). A sink that makes its requests from other threads
    (a pool) leaves them unnamed."""
    token = _CALL.set((hooks, deliveries, bulk))
    try:
        yield
    finally:
        _CALL.reset(token)


def rate_limit_waited(seconds: float) -> None:
    """The HTTP transport waited ``seconds`` for the target's rate limit before a request:
    each delivery of the call running in this thread hears ``rate_limited`` (not final)."""
    current = _CALL.get()
    if current is None or seconds <= 0:
        return
    hooks, deliveries, bulk = current
    for delivery in deliveries:
        hooks.record(
            RecordEvent("rate_limited", delivery, {"wait_s": seconds}, final=False, bulk=bulk)
        )


#: listeners of the batch running in this thread (its tally)
_LISTENING: contextvars.ContextVar[tuple[Middleware, ...]] = contextvars.ContextVar(
    "erpsync_pipeline_listening", default=()
)


@dataclass
class Hooks:
    """The pipeline's listeners: the engine's observers and middleware, and the running
    batch's own (its tally)."""

    observers: list[Observer] = field(default_factory=list)
    middleware: list[Middleware] = field(default_factory=lambda: [OutcomeLines()])

    def record(self, event: RecordEvent) -> None:
        """Tell every listener; a listener's failure is only logged (never breaks a
        delivery)."""
        for listener in (*self.middleware, *_LISTENING.get()):
            try:
                listener.on_record(event)
            except Exception as exc:  # noqa: BLE001 (a listener must never break a delivery)
                log.warning("sync.observer_failed", error=str(exc))
        if not self.observers:
            return
        details = dict(event.details)
        for observer in self.observers:
            try:
                observer(event.what, event.delivery, details)
            except Exception as exc:  # noqa: BLE001 (an observer must never break a delivery)
                log.warning("sync.observer_failed", error=str(exc))

    def after_call(
        self, target: str, deliveries: Sequence[Delivery], seconds: float, failed: bool
    ) -> None:
        """Tell the middleware that a sink's call ended."""
        for listener in self.middleware:
            try:
                listener.after_call(target, deliveries, seconds, failed)
            except Exception as exc:  # noqa: BLE001 (a listener must never break a delivery)
                log.warning("sync.observer_failed", error=str(exc))

    @staticmethod
    @contextlib.contextmanager
    def listening(listener: Middleware) -> Iterator[None]:
        """``listener`` hears this thread's record events for the block (a batch's tally)."""
        token = _LISTENING.set((*_LISTENING.get(), listener))
        try:
            yield
        finally:
            _LISTENING.reset(token)
