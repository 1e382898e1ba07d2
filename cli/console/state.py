"""What the console's pages read and act through: the operator services, never copies.

Dead letters go through :func:`cli.dlq.operator_session` (:class:`cli.services.replay.DlqOperator`:
selection, supersession, validation, audit); the overview is :func:`cli.services.status.
gather_status`; pause and resume are :func:`cli.status.pause_target` / ``resume_target``;
a record's story is :func:`cli.trace.read_story`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from cli.dlq import _Session, operator_session
from cli.services.status import gather_status
from erpsync.settings import Settings
from state.client import redis_client
from state.keys import Keys

#: seconds between two samples of the live graph, and how many are kept (an hour)
SAMPLE_S = 30.0
SAMPLES = 120


@dataclass
class Backend:
    """One installation, as the console sees it."""

    settings: Settings
    client: redis.Redis = field(init=False)
    keys: Keys = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = redis_client(self.settings)
        self.keys = Keys(self.settings.key_prefix)

    @contextmanager
    def operator(self, actor: str, *, publisher: bool = False) -> Iterator[_Session]:
        """The dead-letter operator acting for ``actor`` (audit-logged under that name)."""
        with operator_session(self.settings, actor, publisher=publisher) as session:
            yield session

    def status(self) -> dict[str, Any]:
        return gather_status(self.settings, self.client)

    def targets(self) -> list[str]:
        return sorted({t for f in self.settings.flows.values() for t in f.targets})

    # -- the live graph ---------------------------------------------------------------
    def sample(self, now: float | None = None) -> dict[str, Any]:
        """Counters and lag per target now, kept for the graph (the last hour)."""
        status = self.status()
        sample = {
            "at": time.time() if now is None else now,
            "targets": {
                row["name"]: {
                    "applied": row["counters"].get("applied", 0),
                    "dead_lettered": row["counters"].get("dead_lettered", 0),
                    "retries": row["counters"].get("retries", 0),
                    "lag_s": row["lag_s"],
                }
                for row in status["targets"]
            },
        }
        with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(self.keys.console_history(), orjson.dumps(sample))
            pipe.ltrim(self.keys.console_history(), -SAMPLES, -1)
            pipe.expire(self.keys.console_history(), 3 * 3600)
            pipe.execute()
        return sample

    def history(self) -> list[dict[str, Any]]:
        raw = self.client.lrange(self.keys.console_history(), 0, -1) or []
        cutoff = time.time() - 3600
        samples = [orjson.loads(item) for item in raw]
        return [s for s in samples if float(s["at"]) >= cutoff]

    def start_sampling(self, on_error: Callable[[Exception], None]) -> None:
        """Sample every :data:`SAMPLE_S` from a daemon thread until :meth:`close`."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.sample()
                except redis.RedisError as exc:
                    on_error(exc)
                self._stop.wait(SAMPLE_S)

        threading.Thread(target=run, name="console-sampler", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.client.close()
