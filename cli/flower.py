"""``erpsync flower``: Flower on erpsync's broker, with erpsync's Celery configuration.

Safe by default:

* bound to 127.0.0.1; any other address is refused unless HTTP Basic authentication is on
  (Flower's own default is every interface, without authentication);
* read-only: Flower's control endpoints can revoke a ``sync.apply`` task (the change would
  be dropped without an outcome) or send tasks that bypass the producers' accounting, so
  they answer 403 unless ``--allow-control`` is given;
* the credentials come from ``--basic-auth`` or, better (a command line shows in ``ps``),
  ``$ERPSYNC_FLOWER_BASIC_AUTH``; they are registered as secrets, never logged or printed.
  Without authentication Flower's UI works on loopback but its HTTP API answers 401 unless
  ``FLOWER_UNAUTHENTICATED_API=true`` is set (Flower's own rule, kept).

Flower is built here rather than through ``celery flower`` so that nothing else decides
the address or the authentication: ``FLOWER_*`` variables and a ``flowerconfig.py`` in the
working directory are not read.

What Flower shows of erpsync: task events (``sync.apply`` per delivery, ``sync.noop``) with
their states, workers, and queue lengths. Its Redis broker view (``/broker``,
``/api/queues/length``) reads ``broker_transport_options["global_keyprefix"]`` (Flower 2.x,
``flower.utils.broker.RedisBase``), so the lengths of our prefixed queues are right. It
asks the workers which queues they consume; with no worker up it falls back to
``task_queues``, which is set here to every target's queue, so a backlog with no worker
is still visible. Flower keeps tasks in memory only (lost on restart) and cannot see or
replay dead letters: ``erpsync dlq`` and the worker's Prometheus metrics do that. Its own
``/metrics`` and ``/healthcheck`` endpoints are not behind authentication (Flower's choice).
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated, Any

import structlog
import typer

from cli._config import settings_or_exit
from cli._output import console, err_console
from erpsync.logging import configure_logging
from erpsync.redaction import register_secrets
from erpsync.settings import Settings, is_loopback_host

BASIC_AUTH_ENV = "ERPSYNC_FLOWER_BASIC_AUTH"

log = structlog.get_logger("erpsync.flower")


def register(app: typer.Typer) -> None:
    app.command("flower")(flower)


def parse_basic_auth(raw: str | None) -> list[str]:
    """``user:password[,user:password…]`` as Flower wants it; errors never echo the value."""
    if raw is None or not raw.strip():
        return []
    pairs = [pair.strip() for pair in raw.split(",") if pair.strip()]
    for index, pair in enumerate(pairs, start=1):
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"basic auth pair #{index} is not of the form user:password")
    return pairs


def flower_celery(settings: Settings) -> Any:
    """The Celery app Flower watches: erpsync's configuration, every target's queue known."""
    from kombu import Queue

    from state.messages import queue_for
    from workers.app import app, configure

    configure(settings, app)
    targets = sorted({t for f in settings.flows.values() if f.enabled for t in f.targets})
    app.conf.task_queues = [Queue(queue_for(t)) for t in targets]
    return app


def flower(
    port: Annotated[int, typer.Option(help="port to serve on (0: any free port)")] = 5555,
    address: Annotated[
        str, typer.Option(help="address to bind; not loopback requires --basic-auth")
    ] = "127.0.0.1",
    basic_auth: Annotated[
        str | None,
        typer.Option(
            "--basic-auth",
            envvar=BASIC_AUTH_ENV,
            show_envvar=True,
            show_default=False,
            help="user:password (comma-separated for several); prefer the environment "
            "variable, a command line is visible to other users",
        ),
    ] = None,
    allow_control: Annotated[
        bool,
        typer.Option(
            "--allow-control",
            help="enable Flower's control endpoints (revoke, shut down, send tasks)",
        ),
    ] = False,
) -> None:
    """Flower for erpsync's tasks, workers and queues (127.0.0.1, read-only by default)."""
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        credentials = parse_basic_auth(basic_auth)
    except ValueError as exc:
        err_console.print(f"[red]erpsync flower: {exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    register_secrets(pair.partition(":")[2] for pair in credentials)
    register_secrets(credentials)
    if not credentials and not is_loopback_host(address):
        err_console.print(
            f"[red]erpsync flower: refusing to serve on {address or 'every interface'!s} "
            f"without authentication: set {BASIC_AUTH_ENV}=user:password "
            "(or --basic-auth), or bind 127.0.0.1[/]",
            highlight=False,
        )
        raise typer.Exit(2)
    serve(
        flower_celery(settings),
        port=port,
        address=address,
        credentials=credentials,
        read_only=not allow_control,
    )


def serve(
    celery_app: Any, *, port: int, address: str, credentials: list[str], read_only: bool
) -> None:
    """Run Flower until SIGTERM or Ctrl-C."""
    from flower.app import Flower
    from flower.options import default_options as options
    from flower.urls import settings as flower_settings

    options.port = port
    options.address = address
    options.basic_auth = credentials
    options.read_only = read_only
    options.persistent = False
    # Flower's access log would show every poll of its dashboard: keep it quiet.
    logging.getLogger("tornado.access").addHandler(logging.NullHandler())
    logging.getLogger("tornado.access").propagate = False

    app = Flower(capp=celery_app, options=options, **{**flower_settings, "debug": False})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bound = app.start_http_server()
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{bound}/"
    log.info(
        "flower.started",
        url=url,
        authentication="basic" if credentials else "none",
        read_only=read_only,
    )
    console.print(
        f"Flower on [bold]{url}[/] ("
        f"{'basic auth' if credentials else 'no authentication'}, "
        f"{'read-only' if read_only else 'control enabled'}); Ctrl-C stops it",
        highlight=False,
    )
    try:
        app.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        app.stop()
