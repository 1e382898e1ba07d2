"""Everything a worker process needs, built once per process from the settings.

Built lazily on first use (after a prefork child is forked, never before, so no socket is
shared across processes). Sinks hold HTTP clients and token caches, so each worker thread
gets its own set.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from delivery.engine import Engine, Sink
from delivery.pipeline.scheduling import CpuSlots
from delivery.policy import RetryPolicy
from erpsync.settings import Settings, load_settings
from state.client import redis_client
from state.dlq import DeadLetterStore, Retention
from state.keys import Keys
from state.leases import Leases
from state.limits import Circuit, RateLimiter
from state.store import State
from state.trace import TraceBuffer, TraceStore, engine_observer


def policy_from(settings: Settings) -> RetryPolicy:
    w = settings.worker
    return RetryPolicy(
        transient_max_attempts=w.transient_max_attempts,
        transient_base_s=w.transient_base_s,
        transient_cap_s=w.transient_cap_s,
        dependency_max_waits=w.dependency_max_waits,
        dependency_base_s=w.dependency_base_s,
        dependency_cap_s=w.dependency_cap_s,
        rate_limited_max_waits=w.rate_limited_max_waits,
        lock_ttl_s=w.lock_ttl_s,
    )


@dataclass
class Runtime:
    """State, protections, dead letters, sinks and the engine of one process."""

    settings: Settings
    redis: redis.Redis
    keys: Keys
    state: State
    circuit: Circuit
    limiter: RateLimiter
    dlq: DeadLetterStore
    leases: Leases
    engine: Engine = field(init=False)
    #: the records' traces (state.trace): the engine's events, written in the background
    trace: TraceBuffer = field(init=False)
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.engine = Engine(
            state=self.state,
            circuit=self.circuit,
            dlq=self.dlq,
            sinks=self.sinks,
            policy=policy_from(self.settings),
            rng=random.Random(),
            leases=self.leases,
            cpu_slots=CpuSlots(self.settings.worker.batch_cpu_slots),
        )
        self.trace = TraceBuffer(TraceStore.of(self.redis, self.settings))
        if self.trace.store.enabled:
            self.engine.observers.append(engine_observer(self.trace))

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        client = redis_client(settings)
        keys = Keys(settings.key_prefix)
        w = settings.worker
        state = State(client, keys)
        return cls(
            settings=settings,
            redis=client,
            keys=keys,
            state=state,
            circuit=Circuit(
                client,
                keys,
                failure_threshold=w.circuit_failure_threshold,
                cooldown_s=w.circuit_cooldown_s,
                cooldown_max_s=w.circuit_cooldown_max_s,
            ),
            limiter=RateLimiter(client, keys),
            dlq=DeadLetterStore(
                client,
                keys,
                Retention(
                    max_entries=settings.dlq.max_entries,
                    max_age_s=settings.dlq.max_age_days * 86400,
                ),
            ),
            leases=Leases(state, ttl_s=w.lock_ttl_s),
        )

    def sinks(self) -> Mapping[str, Sink]:
        """This thread's sinks, one per configured target (built on first use)."""
        sinks: Mapping[str, Sink] | None = getattr(self._local, "sinks", None)
        if sinks is None:
            from delivery.sinks import build_sinks

            sinks = build_sinks(self.settings, self.limiter, self.leases)
            self._local.sinks = sinks
        return sinks

    def close(self) -> None:
        self.leases.stop()
        self.trace.close()
        sinks: Mapping[str, Sink] | None = getattr(self._local, "sinks", None)
        for sink in (sinks or {}).values():
            close = getattr(sink, "close", None)
            if callable(close):
                close()
        self.redis.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, built from ``ERPSYNC_*`` / ``ERPSYNC_CONFIG`` on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.build(load_settings())
        return _runtime


def flush_trace() -> None:
    """Write the trace events this process still buffers (at shutdown); builds nothing."""
    runtime = _runtime
    if runtime is not None:
        runtime.trace.close()


def reset_runtime() -> None:
    """Forget the runtime (after a fork, or in tests)."""
    global _runtime
    with _lock:
        _runtime = None
