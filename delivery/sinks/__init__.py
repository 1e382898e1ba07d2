"""Sinks: apply canonical changes to one target system through its adapter.

``build_sinks`` makes one sink per configured target of an enabled flow, each with its own
HTTP client (rate-limited through Redis when the target has ``rate_limit_per_s``).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters import make_client, tls_verification
from delivery.engine import Sink
from delivery.http import RateLimitedTransport
from erpsync.mapping import TargetMapping, target_mapping
from erpsync.settings import HttpSystemSettings, Settings
from state.leases import FencedTransport, Leases
from state.limits import RateLimiter


def http_client(
    target: str,
    system: HttpSystemSettings,
    limiter: RateLimiter | None,
    leases: Leases | None = None,
) -> httpx.Client:
    """The target's HTTP client, with the shared rate limit when one is configured, and
    every write checked against the worker's leases (see state.leases)."""
    if not (system.rate_limit_per_s and limiter is not None) and leases is None:
        return make_client(system)
    transport: httpx.BaseTransport = httpx.HTTPTransport(
        verify=tls_verification(system.verify_tls),
        limits=httpx.Limits(
            max_connections=system.max_connections,
            max_keepalive_connections=system.max_connections,
        ),
    )
    if system.rate_limit_per_s and limiter is not None:
        transport = RateLimitedTransport(
            transport, limiter, target, system.rate_limit_per_s, system.rate_limit_burst
        )
    if leases is not None:
        transport = FencedTransport(transport, leases)
    return make_client(system, transport=transport)


def mappings_for(settings: Settings, target: str) -> dict[str, TargetMapping]:
    """Per entity: the flow file's mapping for this target."""
    found: dict[str, TargetMapping] = {}
    for flow in settings.flows.values():
        if flow.enabled and target in flow.targets:
            found[flow.entity] = target_mapping(flow.mapping.get(target))
    return found


def build_sinks(
    settings: Settings, limiter: RateLimiter | None, leases: Leases | None = None
) -> Mapping[str, Sink]:
    """One sink per configured target that an enabled flow sends to (``leases``: every
    write checked against the worker's leases)."""
    from delivery.sinks.atollon import AtollonSink
    from delivery.sinks.hipe import HipeSink
    from delivery.sinks.invoices import INVOICE_ENTITY, AtollonInvoiceSink, invoice_state_map
    from delivery.sinks.onlineerp import OnlineErpSink
    from delivery.sinks.propeller import PropellerSink
    from delivery.sinks.router import route

    targets = {t for flow in settings.flows.values() if flow.enabled for t in flow.targets}
    systems = settings.systems
    overrides = settings.errors
    sinks: dict[str, Sink] = {}
    if "propeller" in targets and systems.propeller is not None:
        sinks["propeller"] = PropellerSink(
            systems.propeller,
            http_client("propeller", systems.propeller, limiter, leases),
            mappings_for(settings, "propeller"),
            overrides.get("propeller"),
        )
    if "hipe" in targets and systems.hipe is not None:
        sinks["hipe"] = HipeSink(
            systems.hipe,
            http_client("hipe", systems.hipe, limiter, leases),
            mappings_for(settings, "hipe"),
            overrides.get("hipe"),
        )
    atollon_mappings = mappings_for(settings, "atollon")
    if "atollon" in targets and systems.atollon is not None:
        atollon_sinks: list[Sink] = [
            AtollonSink(
                systems.atollon,
                http_client("atollon", systems.atollon, limiter, leases),
                atollon_mappings,
                overrides.get("atollon"),
            )
        ]
        if INVOICE_ENTITY in atollon_mappings:
            atollon_sinks.append(
                AtollonInvoiceSink(
                    systems.atollon,
                    http_client("atollon", systems.atollon, limiter, leases),
                    atollon_mappings[INVOICE_ENTITY],
                    overrides.get("atollon"),
                )
            )
        sinks["atollon"] = route("atollon", atollon_sinks)
    if "onlineerp" in targets and systems.onlineerp is not None:
        sinks["onlineerp"] = OnlineErpSink(
            systems.onlineerp,
            http_client("onlineerp", systems.onlineerp, limiter, leases),
            mappings_for(settings, "onlineerp"),
            overrides.get("onlineerp"),
            atollon=systems.atollon,
            atollon_http=(
                http_client("atollon", systems.atollon, limiter, leases)
                if systems.atollon
                else None
            ),
            atollon_overrides=overrides.get("atollon"),
            invoice_states=invoice_state_map(atollon_mappings.get(INVOICE_ENTITY)),
        )
    return _adopting(settings, limiter, sinks)


def _adopting(
    settings: Settings, limiter: RateLimiter | None, sinks: dict[str, Sink]
) -> dict[str, Sink]:
    """Each sink behind the adoption tables of the flows with match rules for its target
    (delivery.sinks.adopting); as it is without a Redis (``limiter``) or such flows."""
    from delivery.sinks.adopting import adopting
    from state.adoption import AdoptionTable

    if limiter is None:
        return sinks
    table = AdoptionTable(limiter.redis, limiter.keys)
    for target, sink in sinks.items():
        rules = {
            name: flow.match_rules()[target]
            for name, flow in settings.flows.items()
            if flow.enabled and target in flow.match_rules()
        }
        sinks[target] = adopting(sink, table, rules)
    return sinks
