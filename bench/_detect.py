"""Change detection, measured in a process of its own: ``python -m bench._detect MODE``.

One process per measurement, so that its peak memory (the kernel's high-water mark of the
resident set, ``VmHWM``) belongs to that measurement alone; the peak is reset just before
the timed call where the kernel allows it (``/proc/self/clear_refs``), so imports and set-up
do not count. Modes:

* ``page``: page through every ERP customer with the OnlineERP adapter
  (``iter_customer_pages``), the bare cost of reading the source: the yardstick;
* ``prime``: one poll of the customers stream publishing nothing (no target), which fills
  the producer's snapshot as an earlier poll would have;
* ``poll``: one real poll (:meth:`producers.base.Producer.poll`) of the customers stream,
  which publishes a delivery per change and target (the publisher is warmed up first, as
  in a producer that has been running: see :func:`_warm_publisher`).

The result is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters import make_client
from adapters.onlineerp import OnlineErpClient
from erpsync.logging import configure_logging
from erpsync.settings import load_settings
from producers.onlineerp import OnlineErpCustomers
from producers.runner import ProducerService
from state.keys import Keys
from state.messages import TASK_NOOP


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` memory figure in kB (0 where there is none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    """Reset the resident-set high-water mark (Linux ≥ 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _peak_kb() -> int:
    """The peak resident set so far: ``VmHWM``, else ``ru_maxrss``."""
    peak = _status_kb("VmHWM")
    if peak:
        return peak
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measured(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run``'s figures, with its time, CPU time and memory (peak reset first) in this
    process."""
    base_kb = _status_kb("VmRSS")
    figures: dict[str, Any] = {"peak_reset": _reset_peak()}
    cpu = time.process_time()
    started = time.perf_counter()
    figures.update(run())
    figures["seconds"] = time.perf_counter() - started
    figures["cpu_s"] = time.process_time() - cpu
    figures["base_rss_kb"] = base_kb
    figures["peak_rss_kb"] = _peak_kb()
    return figures


def _warm_publisher(service: ProducerService) -> None:
    """Publish one no-op message (then drop it) before the timed poll.

    A producer is a long-running service: Celery builds its publisher, connection and
    routing on the first message once per process, not once per poll.
    """
    app = service.producer.app
    queue = f"bench.warm.{os.getpid()}"
    with app.producer_or_acquire() as producer:
        app.send_task(TASK_NOOP, queue=queue, producer=producer)
    service.producer.redis.delete(Keys(service.settings.key_prefix).queue(queue))


def measure(mode: str, config: Path, target: str) -> dict[str, Any]:
    """Run one measurement; returns its figures."""
    settings = load_settings(config)
    configure_logging(settings.log_level, settings.log_format)  # stderr: stdout is the result
    erp = settings.systems.onlineerp
    if erp is None:
        raise SystemExit("the configuration has no onlineerp system")
    result: dict[str, Any] = {"mode": mode}
    with contextlib.ExitStack() as stack:
        if mode == "page":
            http = stack.enter_context(make_client(erp))
            client = OnlineErpClient(http, erp)

            def run() -> dict[str, Any]:
                records = pages = 0
                for page in client.iter_customer_pages():
                    records += len(page)
                    pages += 1
                return {"records": records, "pages": pages}

        else:
            service = ProducerService(settings)
            stack.callback(service.close)
            streams = [s for s in service.streams if isinstance(s, OnlineErpCustomers)]
            if len(streams) != 1:
                raise SystemExit("the configuration must have one ERP customers flow")
            stream = streams[0]
            stream.targets = [] if mode == "prime" else [target]
            _warm_publisher(service)

            def run() -> dict[str, Any]:
                polled = service.producer.poll(stream)
                return {
                    "records": polled.records,
                    "changed": polled.changed,
                    "deleted": polled.deleted,
                    "events": polled.events,
                    "deliveries": polled.deliveries,
                    "skipped": polled.skipped,
                }

        result.update(measured(run))
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of the child process."""
    parser = argparse.ArgumentParser(prog="python -m bench._detect")
    parser.add_argument("mode", choices=["page", "prime", "poll"])
    parser.add_argument("--config", type=Path, default=os.environ.get("ERPSYNC_CONFIG"))
    parser.add_argument("--target", default="propeller")
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("--config (or ERPSYNC_CONFIG) is required")
    print(json.dumps(measure(args.mode, args.config, args.target)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
