"""The messages erpsync sends through Celery: task names, queues and the configuration every
publisher (producers, the pump, replay, the demo) and every worker share.

One task does the work, ``sync.apply`` (one delivery: one change for one target), on one
queue per target (``sync.<target>``), so a slow or failing target never holds back the
others and workers can be scaled per target. ``sync.apply_batch`` carries many deliveries
of one target for its bulk endpoint (Propeller bulk upserts, HIPE CSV imports; see
:mod:`delivery.batch`), on the same queue. ``sync.noop`` exists for benchmarks.

Delivery is at-least-once: ``acks_late`` with ``reject_on_worker_lost``, so a message is
acknowledged only after its outcome is recorded, and a worker killed mid-task gives the
message back. Broker keys share erpsync's key prefix (kombu's ``global_keyprefix``), so
several installations or test runs can share one Redis. The worker's own app (and its
tasks) is :mod:`workers.app`; the configuration names it by string only.
"""

from __future__ import annotations

from celery import Celery

from erpsync.settings import Settings

TASK_APPLY = "sync.apply"
TASK_APPLY_BATCH = "sync.apply_batch"
TASK_NOOP = "sync.noop"


def queue_for(target: str) -> str:
    """The queue of a target's deliveries."""
    return f"sync.{target}"


def create_app(settings: Settings) -> Celery:
    """A new Celery app configured from ``settings`` (publishers: producers, replay, demo).

    Publishers get their own app rather than reconfiguring the worker's one, because Celery
    caches broker connections with their transport options (the key prefix among them).
    """
    return configure(settings, Celery("erpsync", set_as_current=False))


def configure(settings: Settings, celery_app: Celery) -> Celery:
    """Apply erpsync's Celery configuration to ``celery_app`` (idempotent)."""
    worker = settings.worker
    celery_app.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        # a lost broker is tried again for as long as it takes (Celery's default gives up
        # after 100 attempts and the worker exits), every 2 s at most (workers.app.Consumer)
        broker_connection_max_retries=None,
        worker_consumer="workers.app:Consumer",
        broker_transport_options={
            "global_keyprefix": f"{settings.key_prefix}:",
            "visibility_timeout": worker.visibility_timeout_s,
            "unacked_restore_interval": worker.unacked_restore_interval_s,
            "unacked_restore_throttle": 1,
            # kombu restores unacked messages under a lock held for one pass (milliseconds);
            # a worker killed inside a pass leaves it held until it expires (kombu: 5 min, so
            # no message of a dead worker came back for as long). Two passes at once are
            # safe: each restore is a transaction on the unacked hash.
            "unacked_mutex_expire": 30,
            # a Redis gone without closing the connection (a partition) must not hang a
            # publish for ever: BRPOP waits 1 s, so 30 s is only ever a dead connection
            "socket_timeout": 30,
            "socket_connect_timeout": 5,
        },
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=queue_for("default"),
        task_create_missing_queues=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_prefetch_multiplier=worker.prefetch_multiplier,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        imports=("workers.tasks",),
    )
    return celery_app
