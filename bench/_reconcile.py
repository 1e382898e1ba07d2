"""Reconcile, measured in a process of its own: ``python -m bench._reconcile MODE``.

One process per measurement, so that its peak memory (``VmHWM``, reset just before the
timed call where the kernel allows it) belongs to that measurement alone. The configuration
names one ``customers`` flow from the ERP to its targets. Modes:

* ``seed``: fill every target with the ERP's customers as the sinks write them, so that a
  reconcile finds them in sync; not timed as a figure. Propeller through the sink's bulk
  calls; HIPE and Atollon through the sandbox's ``POST /_sandbox/load/{entity}``, which
  stores the bodies the sinks build (HIPE's single-path company, parents' ids filled in a
  level at a time; Atollon's contact) as the vendor's call would, without a request each
  (100,000 customers through the single calls took a quarter of an hour); HIPE's addresses,
  records of their own, then through the sink's address calls, on a few threads;
* ``page``: read the source (the flow's stream, as a poll reads it) and every target
  (its sink's :meth:`~delivery.sinks.view.ViewableSink.observed`) at once, one thread each,
  as reconcile reads them, and only count what was read: the yardstick;
* ``reconcile``: one reconcile of the flow (:meth:`producers.runner.ProducerService.
  reconciliation`), which reads the same way, spills, merges and compares.

The result is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench._detect import measured
from delivery.engine import ApplyContext
from delivery.sinks import build_sinks
from delivery.sinks.view import ViewableSink
from erpsync.events import ChangeEvent
from erpsync.logging import configure_logging
from erpsync.settings import Settings, load_settings
from producers.base import SnapshotStream, SourceRecord, UncheckedRecord
from producers.runner import ProducerService

FLOW = "customers"
#: records per bulk call when seeding (the bulk sinks may still PATCH some fields after)
SEED_BULK = {"propeller": 200, "hipe": 1000}
#: threads (each with its own sink) writing to each target at once when seeding
SEED_LANES = 8
#: bodies per ``POST /_sandbox/load`` call (targets loaded without their write calls)
LOAD_CHUNK = 5_000
#: targets seeded through the sandbox's load route: (entity it loads, the body of a record)
LOADED = {"hipe": "companies", "atollon": "contacts"}


def _stream(service: ProducerService) -> SnapshotStream:
    (stream,) = [s for s in service.streams if s.flow == FLOW]
    return stream


def _events(stream: SnapshotStream) -> Iterator[ChangeEvent]:
    """Every source record as the producer would publish it (validated and mapped)."""
    version = 0
    for page in stream.pages():
        unchecked = [r for r in page if isinstance(r, UncheckedRecord)]
        records: list[SourceRecord] = [r for r in page if isinstance(r, SourceRecord)]
        records += stream.confirm(unchecked) if unchecked else []
        for record in sorted(records, key=lambda r: r.key):
            version += 1
            yield ChangeEvent.create(
                flow=FLOW, source=stream.source, entity=stream.entity, key=record.key,
                operation="upsert", payload=record.payload, source_version=version,
                parent_key=record.parent_key,
            )  # fmt: skip


def _context() -> ApplyContext:
    return ApplyContext(ledger=None, parent=None, lookup=lambda entity, key: None)


def _levels(events: list[ChangeEvent]) -> list[list[ChangeEvent]]:
    """The events by depth in the hierarchy: roots, then their children, and so on."""
    parent = {e.key: e.parent_key for e in events}
    depth: dict[str, int] = {}

    def level(key: str) -> int:
        if key not in depth:
            above = parent.get(key)
            depth[key] = 0 if above is None or above not in parent else 1 + level(above)
        return depth[key]

    levels: list[list[ChangeEvent]] = []
    for event in events:
        at = level(event.key)
        while len(levels) <= at:
            levels.append([])
        levels[at].append(event)
    return levels


def _seed(sinks: list[Any], events: list[ChangeEvent], bulk: int | None) -> int:
    """Write ``events`` a level of the hierarchy at a time (parents before children), on one
    thread per sink (each holds its own HTTP client): ``bulk`` records per bulk call, or
    one call a record."""
    lanes = len(sinks)
    written = 0

    def write(index: int, chunks: list[list[ChangeEvent]]) -> int:
        sink, done = sinks[index], 0
        for chunk in chunks[index::lanes]:
            if bulk is None:
                for event in chunk:
                    sink.apply(event, _context())
                done += len(chunk)
                continue
            items = [(e, sink.bulk_item(e, _context())) for e in chunk]
            for event, item in items:
                if item is None:  # the sink wants its single path for this one
                    sink.apply(event, _context())
            results = sink.apply_bulk([i for _, i in items if i is not None], lambda: None)
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                raise RuntimeError(f"seeding {sink.target} failed: {failed[0]}")
            done += len(chunk)
        return done

    size = bulk or 1
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for level in _levels(events):
            chunks = [level[i : i + size] for i in range(0, len(level), size)]
            written += sum(pool.map(write, range(lanes), [chunks] * lanes))
    return written


def _load(settings: Settings, target: str, control: str, events: list[ChangeEvent]) -> int:
    """Store ``events`` in the sink's target through the sandbox's load route: the body
    the sink's single path sends for each record, a level of the hierarchy at a time."""
    sink: Any = build_sinks(settings, None)[target]
    entity = LOADED[sink.target]
    ids: dict[str, int] = {}  # HIPE links a parent by its id
    loaded = 0
    with httpx.Client(base_url=control, timeout=600) as client:
        for level in _levels(events):
            for start in range(0, len(level), LOAD_CHUNK):
                bodies = [_body(sink, e, ids) for e in level[start : start + LOAD_CHUNK]]
                answer = client.post(f"/_sandbox/load/{entity}", json=bodies)
                if answer.status_code != 200:
                    raise RuntimeError(f"seeding {sink.target} failed: {answer.text[:500]}")
                for record in answer.json()["records"]:
                    if sink.target == "hipe":
                        ids[str(record["externalId"])] = int(record["id"])
                loaded += len(bodies)
    if target == "hipe":
        _hipe_addresses(settings, events, ids)
    return loaded


def _hipe_addresses(settings: Settings, events: list[ChangeEvent], ids: Mapping[str, int]) -> None:
    """Each loaded company's addresses, as the sink's single path writes them after its
    create (HIPE keeps them as records of their own), on a few threads."""
    lanes: list[Any] = [build_sinks(settings, None)["hipe"] for _ in range(SEED_LANES)]

    def write(lane: int) -> None:
        sink = lanes[lane]
        for event in events[lane::SEED_LANES]:
            # the addresses HIPE can hold, as the sink picks them
            addresses = sink._addresses(event.key, event.payload)
            if addresses:
                sink.addresses.write(ids[event.key], addresses, None, created=True)

    with ThreadPoolExecutor(max_workers=SEED_LANES) as pool:
        list(pool.map(write, range(SEED_LANES)))
    for sink in lanes:
        sink.close()


def _body(sink: Any, event: ChangeEvent, ids: Mapping[str, int]) -> dict[str, Any]:
    """What the sink sends for a record HIPE or Atollon does not have yet."""
    if sink.target == "atollon":
        body: dict[str, Any] = sink.contact_input(event.payload).to_json()
        return body
    # HIPE: its single path creates the company (under its parent), then archives an
    # inactive one
    body = sink.company_input(event, ids.get(event.parent_key or "")).to_json()
    if not event.payload.get("active", True):
        body["archived"] = True
    return body


def seed(
    settings: Settings, service: ProducerService, controls: Mapping[str, str]
) -> dict[str, Any]:
    """Every target filled with the ERP's customers, as the sinks write them.

    ``controls``: the sandbox control URL of each target seeded through its load route.
    """
    events = list(_events(_stream(service)))
    targets = list(settings.flows[FLOW].targets)
    written: dict[str, int] = {}

    seconds: dict[str, float] = {}

    def fill(target: str) -> None:
        started = time.perf_counter()
        _fill(target)
        seconds[target] = round(time.perf_counter() - started, 2)

    def _fill(target: str) -> None:
        if target in LOADED and target in controls:
            written[target] = _load(settings, target, controls[target], events)
            return
        lanes = [build_sinks(settings, None)[target] for _ in range(SEED_LANES)]
        written[target] = _seed(lanes, events, SEED_BULK.get(target))

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for future in [pool.submit(fill, t) for t in targets]:
            future.result()  # a failure is raised here
    return {"records": len(events), "written": written, "target_seconds": seconds}


def page(settings: Settings, service: ProducerService) -> Callable[[], dict[str, Any]]:
    """Read the source and every target at once, counting records only."""
    stream = _stream(service)
    sinks = build_sinks(settings, None)
    targets: Mapping[str, ViewableSink] = {
        t: s for t, s in sinks.items() if t in settings.flows[FLOW].targets and
        isinstance(s, ViewableSink)
    }  # fmt: skip

    def run() -> dict[str, Any]:
        seconds: dict[str, float] = {}
        counts: dict[str, int] = {}

        def read_source() -> None:
            started, count = time.perf_counter(), 0
            stream.load_bookmark(None)
            for records in stream.pages():
                count += len(records)
            seconds["source"], counts["source"] = time.perf_counter() - started, count

        def read_target(target: str) -> None:
            started, count = time.perf_counter(), 0
            for _ in targets[target].observed("customer"):
                count += 1
            seconds[target], counts[target] = time.perf_counter() - started, count

        with ThreadPoolExecutor(max_workers=1 + len(targets)) as pool:
            futures = [pool.submit(read_source)]
            futures += [pool.submit(read_target, t) for t in targets]
            for future in futures:
                future.result()
        return {"counts": counts, "stream_seconds": seconds}

    return run


def reconcile(settings: Settings, service: ProducerService) -> Callable[[], dict[str, Any]]:
    """One reconcile of the flow; its counts per target."""

    reconciliation = service.reconciliation(FLOW)  # sinks and clients built, as in page

    def run() -> dict[str, Any]:
        with reconciliation:
            report = reconciliation.run()
        return {
            "source_records": report.source_records,
            "targets": {t: r.summary() for t, r in report.targets.items()},
            "drift": report.drift,
            "read_s": report.read_s,
            "compare_s": report.compare_s,
        }

    return run


def measure(mode: str, config: Path, controls: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement; returns its figures."""
    settings = load_settings(config)
    configure_logging("WARNING", "json")  # stderr: stdout is the result
    result: dict[str, Any] = {"mode": mode}
    with contextlib.ExitStack() as stack:
        service = ProducerService(settings)
        stack.callback(service.close)
        if mode == "seed":
            started = time.perf_counter()
            result.update(seed(settings, service, controls or {}))
            result["seconds"] = time.perf_counter() - started
            return result
        run = page(settings, service) if mode == "page" else reconcile(settings, service)
        result.update(measured(run))
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of the child process."""
    parser = argparse.ArgumentParser(prog="python -m bench._reconcile")
    parser.add_argument("mode", choices=["seed", "page", "reconcile"])
    parser.add_argument("--config", type=Path, default=os.environ.get("ERPSYNC_CONFIG"))
    parser.add_argument(
        "--control",
        action="append",
        default=[],
        metavar="TARGET=URL",
        help="seed: a target's sandbox control URL, to load it without its write calls",
    )
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("--config (or ERPSYNC_CONFIG) is required")
    controls = dict(c.split("=", 1) for c in args.control)
    print(json.dumps(measure(args.mode, args.config, controls)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
