"""The workers' Celery application, configured from :class:`erpsync.settings.Settings`.

Task names, queues and the configuration publishers share are in :mod:`state.messages`;
this module holds the app the worker runs (its tasks in :mod:`workers.tasks`) and the
worker's consumer.

For Flower and the ``celery`` command: ``celery --app workers.app:app ...`` (configured from
``ERPSYNC_*`` and ``ERPSYNC_CONFIG`` on import of the worker runtime).
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer

from erpsync.settings import Settings
from state import messages

app = Celery("erpsync")


#: a worker's attempts to reach the broker again: first wait, step, longest wait (seconds)
RECONNECT_S = (0.5, 0.5, 2.0)


class Consumer(CeleryConsumer):
    """Celery's consumer, trying a lost broker again every 2 s at most: Celery's waits
    (2, 4, 6 … 30 s) left a worker idle up to 30 s after Redis came back."""

    def ensure_connected(self, conn: Any) -> Any:
        first, step, most = RECONNECT_S
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=first, interval_step=step, interval_max=most
        )
        return super().ensure_connected(conn)


def configure(settings: Settings, celery_app: Celery = app) -> Celery:
    """Apply erpsync's Celery configuration to ``celery_app`` (the worker's app by default)."""
    return messages.configure(settings, celery_app)
