"""Build the configured streams and poll them, once or in a loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from adapters import make_client
from adapters.atollon import AtollonClient
from adapters.onlineerp import OnlineErpClient
from adapters.propeller import PropellerClient
from delivery.batch import bulk_routes
from delivery.sinks.view import ViewableSink
from erpsync.settings import FlowSettings, Settings
from producers.atollon import AtollonBilling, time_sheets_option
from producers.base import PollResult, Producer, SnapshotStream
from producers.onlineerp import OnlineErpCustomers, OnlineErpProducts
from producers.onlineerp_contacts import OnlineErpContacts
from producers.onlineerp_invoices import OnlineErpInvoices
from producers.propeller import PropellerCompanies
from producers.reconcile import (
    DEFAULT_LIMIT,
    ReconcileError,
    Reconciliation,
    Report,
    last_result,
    store_failure,
    store_result,
    trace_findings,
)
from state.client import redis_client
from state.keys import Keys
from state.limits import Circuit, RateLimiter
from state.messages import create_app
from state.trace import TraceStore

log = structlog.get_logger("erpsync.producer")


@dataclass
class ProducerService:
    """The streams of every enabled flow, polled by one :class:`Producer`."""

    settings: Settings
    streams: list[SnapshotStream] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)
    #: the targets' sinks, built by the first reconcile (closed with the service)
    sinks: dict[str, Any] = field(default_factory=dict)
    producer: Producer = field(init=False)

    def __post_init__(self) -> None:
        app = create_app(self.settings)
        client = redis_client(self.settings)
        self.producer = Producer(
            app,
            client,
            Keys(self.settings.key_prefix),
            bulk=bulk_routes(self.settings),
            trace=TraceStore.of(client, self.settings),
        )
        if not self.streams:
            self.streams = self._build_streams()

    def _build_streams(self) -> list[SnapshotStream]:
        streams: list[SnapshotStream] = []
        for name, flow in self.settings.flows.items():
            if not flow.enabled:
                continue
            stream: SnapshotStream | None = None
            if flow.source == "atollon" and flow.entity == "billing":
                stream = self._billing_stream(name, flow)
            elif flow.source == "onlineerp":
                stream = self._onlineerp_stream(name, flow)
            if stream is not None:
                streams.append(stream)
        streams.extend(self._propeller_streams())
        return streams

    def _billing_stream(self, name: str, flow: FlowSettings) -> SnapshotStream | None:
        """Atollon's billable items of ``flow`` (None when Atollon is not configured)."""
        atollon = self.settings.systems.atollon
        if atollon is None:
            return None
        atollon_http = make_client(atollon)
        self.clients.append(atollon_http)
        return AtollonBilling(
            name,
            "atollon",
            "billing",
            list(flow.targets),
            client=AtollonClient(
                atollon_http,
                atollon,
                error_overrides=self.settings.errors.get("atollon"),
            ),
            time_sheets=time_sheets_option(flow.mapping),
        )

    def _onlineerp_stream(self, name: str, flow: FlowSettings) -> SnapshotStream | None:
        """The ERP's customers, contacts, products or invoices of ``flow`` (None without an ERP)."""
        erp = self.settings.systems.onlineerp
        if erp is None:
            return None
        http = make_client(erp)
        self.clients.append(http)
        client = OnlineErpClient(http, erp, error_overrides=self.settings.errors.get("onlineerp"))
        targets: list[str] = list(flow.targets)
        if flow.entity == "customer":
            return OnlineErpCustomers(
                name,
                "onlineerp",
                "customer",
                targets,
                client=client,
                source_fields=flow.source_fields,
            )
        if flow.entity == "invoice":
            return OnlineErpInvoices(name, "onlineerp", "invoice", targets, client=client)
        if flow.entity == "person":
            return OnlineErpContacts(name, "onlineerp", "person", targets, client=client)
        if flow.entity == "product":
            return OnlineErpProducts(
                name,
                "onlineerp",
                "product",
                targets,
                client=client,
                source_fields=flow.source_fields,
            )
        return None

    def _propeller_streams(self) -> list[SnapshotStream]:
        streams: list[SnapshotStream] = []
        propeller = self.settings.systems.propeller
        for name, flow in self.settings.flows.items():
            if not flow.enabled or flow.source != "propeller" or propeller is None:
                continue
            if flow.entity != "customer":
                continue
            http = make_client(propeller)
            self.clients.append(http)
            client = PropellerClient(
                http, propeller, error_overrides=self.settings.errors.get("propeller")
            )
            streams.append(
                PropellerCompanies(
                    name, "propeller", "customer", list(flow.targets),
                    client=client, source_name=propeller.source, page_size=propeller.page_size,
                )
            )  # fmt: skip
        return streams

    def poll_once(self, on_result: Callable[[PollResult], None] | None = None) -> list[PollResult]:
        """Poll every stream once; a stream that fails is logged and the others go on."""
        results = []
        for stream in self.streams:
            try:
                waiting = self._adoption_waiting(stream.flow)
                result = waiting or self.producer.poll(stream)
            except Exception as exc:  # noqa: BLE001 (one failing source must not stop the others)
                log.warning("producer.poll_failed", stream=stream.name, error=str(exc))
                result = PollResult(stream=stream.name, skipped=f"failed: {exc}")
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results

    def _adoption_waiting(self, flow: str) -> PollResult | None:
        """Before a flow's first run with match rules: its adoption tables (producers.plan);
        a poll result saying why the flow waits when they cannot be prepared."""
        from producers.plan import PlanError, prepare_adoption

        try:
            stored = prepare_adoption(self, flow)
        except (PlanError, ReconcileError) as exc:
            log.warning("producer.adoption_not_prepared", flow=flow, error=str(exc))
            return PollResult(stream=flow, skipped=f"adoption table not prepared: {exc}")
        if stored:
            log.info("producer.adoption_prepared", flow=flow, entries=stored)
        return None

    def backfill_targets(self, flow: str, targets: list[str] | None = None) -> list[str]:
        """The targets a backfill of ``flow`` sends to (all of the flow's by default).

        Raises ValueError for a flow that is unknown, disabled, or a work queue (billing:
        its items are invoiced once, there is nothing to re-send), or a target it lacks.
        """
        config = self.settings.flows.get(flow)
        if config is None or not config.enabled:
            raise ValueError(f"no enabled flow named {flow!r}")
        if config.entity == "billing":
            raise ValueError(f"flow {flow!r} is a work queue (billing): nothing to backfill")
        chosen: list[str] = list(config.targets) if not targets else list(targets)
        unknown = sorted(set(chosen) - set(config.targets))
        if unknown:
            raise ValueError(f"flow {flow!r} has no target {', '.join(unknown)}")
        return chosen

    def backfill(
        self,
        flow: str,
        *,
        targets: list[str] | None = None,
        force: bool = False,
        on_progress: Callable[[PollResult], None] | None = None,
    ) -> list[PollResult]:
        """Re-send every source record of ``flow`` to its targets (or to ``targets``).

        Raises ValueError as :meth:`backfill_targets` does.
        """
        chosen = self.backfill_targets(flow, targets)
        waiting = self._adoption_waiting(flow)
        if waiting is not None:
            raise ValueError(waiting.skipped)
        every_target = set(chosen) == set(self.settings.flows[flow].targets)
        results = []
        for stream in self.streams:
            if stream.flow != flow:
                continue
            original = stream.targets
            stream.targets = chosen
            try:
                results.append(
                    self.producer.backfill(
                        stream, force=force, update_snapshot=every_target, on_progress=on_progress
                    )
                )
            finally:
                stream.targets = original
        return results

    def billing_invoices_flow(self, flow: str) -> str:
        """The flow a reconcile of ``flow`` reads: a billing flow (a work queue) is checked
        through the enabled ``invoice`` flow, which compares the ERP invoices it made with
        Atollon's; any other flow is itself."""
        config = self.settings.flows.get(flow)
        if config is None or config.entity != "billing":
            return flow
        for name, other in self.settings.flows.items():
            if other.enabled and other.entity == "invoice" and "atollon" in other.targets:
                return name
        raise ReconcileError(
            f"flow {flow!r} is a work queue (billing): its invoices are compared with "
            "Atollon's through an enabled flow of entity 'invoice' from onlineerp to atollon; "
            "configure one"
        )

    def reconciliation(
        self,
        flow: str,
        targets: list[str] | None = None,
        *,
        limit: int | None = DEFAULT_LIMIT,
        progress: Callable[[str, str, int], None] | None = None,
    ) -> Reconciliation:
        """A reconcile of ``flow`` with its targets (or ``targets``), ready to run.

        The targets are read through their sinks' views, with the shared rate limit of each
        (the sinks' HTTP clients are the workers'). A target whose sink cannot show its
        records is reported as not checked. Raises ReconcileError for a flow that is
        unknown, disabled or a work queue, or a target the flow lacks.
        """
        from delivery.sinks import build_sinks

        flow = self.billing_invoices_flow(flow)
        try:
            chosen = self.backfill_targets(flow, targets)
        except ValueError as exc:
            raise ReconcileError(str(exc).replace("backfill", "reconcile")) from None
        streams = [s for s in self.streams if s.flow == flow]
        if len(streams) != 1:
            raise ReconcileError(f"flow {flow!r} has no source stream to read")
        stream = streams[0]
        producer = self.producer
        if not self.sinks:
            self.sinks = dict(
                build_sinks(self.settings, RateLimiter(producer.redis, producer.keys))
            )
        sinks = self.sinks
        viewable: dict[str, ViewableSink] = {}
        unviewable: dict[str, str] = {}
        for target in chosen:
            sink = sinks.get(target)
            if sink is None or not sink.handles(stream.entity):
                unviewable[target] = f"no sink applies {stream.entity} to {target}"
            elif not isinstance(sink, ViewableSink):
                unviewable[target] = f"{target} cannot show its {stream.entity} records yet"
            else:
                viewable[target] = sink
        w = self.settings.worker
        circuit = Circuit(
            producer.redis,
            producer.keys,
            failure_threshold=w.circuit_failure_threshold,
            cooldown_s=w.circuit_cooldown_s,
            cooldown_max_s=w.circuit_cooldown_max_s,
        )
        return Reconciliation(
            flow,
            stream,
            viewable,
            circuit=circuit,
            limit=limit,
            progress=progress or (lambda what, name, count: None),
            not_checked=unviewable,
        )

    def reconcile_due(self, now: float | None = None) -> list[Report]:
        """Reconcile every flow whose ``reconcile_interval_s`` has passed since its last one.

        Each runs under its stream's lock (a poll of the stream, here or on another host,
        waits for it; a stream another producer holds is left for the next round), never
        repairs, and keeps its result for ``erpsync status`` and the metrics. A failure is
        logged and kept as the result, so that it is not retried before the next interval.
        """
        now = time.time() if now is None else now
        producer = self.producer
        reports: list[Report] = []
        for name, flow in self.settings.flows.items():
            interval = flow.reconcile_interval_s
            if not flow.enabled or interval is None or flow.entity == "billing":
                continue
            last = last_result(producer.redis, producer.keys, name) or {}
            finished = (last.get("summary") or last).get("finished_at")
            if isinstance(finished, int | float) and now - finished < interval:
                continue
            lock_key = producer.keys.stream_lock(flow.source, flow.entity)
            token = producer.state.acquire(lock_key, producer.lock_ttl_s)
            if token is None:
                log.info("reconcile.skipped", flow=name, reason="another producer holds the stream")
                continue

            try:
                with (
                    producer.leases.holding({lock_key: token}),  # renewed while it runs
                    self.reconciliation(name) as reconciliation,
                ):
                    report = reconciliation.run()
                    trace_findings(reconciliation, producer.trace)
                store_result(producer.redis, producer.keys, report)
                reports.append(report)
            except Exception as exc:  # noqa: BLE001 (one failing reconcile stops nothing else)
                log.warning("reconcile.failed", flow=name, error=str(exc))
                store_failure(producer.redis, producer.keys, name, str(exc))
            finally:
                producer.state.release(lock_key, token)
        return reports

    def run(
        self,
        interval_s: float,
        stop: threading.Event,
        on_result: Callable[[PollResult], None] | None = None,
    ) -> None:
        """Poll every ``interval_s`` seconds until ``stop`` is set; reconcile flows when due."""
        while not stop.is_set():
            started = time.monotonic()
            self.poll_once(on_result)
            self.reconcile_due()
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for sink in self.sinks.values():
            close = getattr(sink, "close", None)
            if callable(close):
                close()
        self.producer.redis.close()
        self.producer.app.close()
