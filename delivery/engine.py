"""The engine: one per worker process, the state and policy every delivery is taken
through (thread-safe).

:meth:`Engine.process` takes one delivery through the pipeline's steps as a batch of one
(:mod:`delivery.pipeline.steps`); ``delivery.batch.BatchApplier`` takes a batch through the
same steps with one bulk call. Every delivery ends in exactly one of **applied**,
**skipped** or **dead-lettered**, or is parked in the delayed set to be tried again later
(retry, dependency wait, busy record, open circuit): nothing is dropped silently. How
outcomes are recorded: :mod:`delivery.pipeline.outcomes`; where metrics, logs and a trace
attach: :mod:`delivery.pipeline.hooks`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from delivery.pipeline.contract import (
    Action,
    ApplyContext,
    ApplyResult,
    InvalidSourceDataError,
    Result,
    Sink,
    invalid_source_data,
    log_context,
    missing_parent,
)
from delivery.pipeline.hooks import Hooks, Middleware, Observer, OutcomeLines, outcome_line
from delivery.pipeline.outcomes import Outcomes
from delivery.pipeline.scheduling import ChangeSignal, CpuSlots
from delivery.pipeline.steps import Pipeline
from delivery.policy import RetryPolicy
from erpsync.events import Delivery
from state.dlq import DeadLetterStore
from state.leases import Leases
from state.limits import Circuit
from state.records import Records
from state.store import State

__all__ = [
    "Action",
    "ApplyContext",
    "ApplyResult",
    "Engine",
    "InvalidSourceDataError",
    "Result",
    "Sink",
    "invalid_source_data",
    "log_context",
    "missing_parent",
    "outcome_line",
]


@dataclass
class Engine(Outcomes):
    """Takes deliveries to their outcome; one per worker process (thread-safe)."""

    state: State
    circuit: Circuit
    dlq: DeadLetterStore
    sinks: Callable[[], Mapping[str, Sink]]  # per thread: sinks hold HTTP clients
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    #: called as (what, delivery, details) for every outcome, retry, wait and park, e.g.
    #: ("applied", d, {"action": "created"}); metrics and tests observe the engine here
    #: (see delivery.pipeline.hooks)
    observers: list[Observer] = field(default_factory=list)
    #: the record locks' leases, renewed while a delivery runs, and the fencing checks
    #: before every write (state.leases); None: locks live their TTL, nothing is checked
    leases: Leases | None = None
    #: the pipeline's listeners (the outcome log lines; a trace writer)
    middleware: list[Middleware] = field(default_factory=lambda: [OutcomeLines()])
    #: how many batches of this process do their own (CPU) work at once
    cpu_slots: CpuSlots = field(default_factory=CpuSlots)
    #: bumped when a batch of this process applied records or ended (parents waiting)
    landed: ChangeSignal = field(default_factory=ChangeSignal)
    hooks: Hooks = field(init=False, repr=False)
    records: Records = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hooks = Hooks(self.observers, self.middleware)
        self.records = Records(self.state)
        self._pipeline = Pipeline(self)

    def process(self, delivery: Delivery) -> Result:
        """Apply one delivery; returns its result. Never raises for vendor failures."""
        return self._pipeline.one(delivery)
