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
from erpsync.settings import (
    AtollonSettings,
    HipeSettings,
    HttpSystemSettings,
    OnlineErpSettings,
    PropellerSettings,
    Settings,
)
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
    targets = {t for flow in settings.flows.values() if flow.enabled for t in flow.targets}
    systems = settings.systems
    sinks: dict[str, Sink] = {}
    if "propeller" in targets and systems.propeller is not None:
        sinks["propeller"] = _propeller_sink(settings, systems.propeller, limiter, leases)
    if "hipe" in targets and systems.hipe is not None:
        sinks["hipe"] = _hipe_sink(settings, systems.hipe, limiter, leases)
    if "atollon" in targets and systems.atollon is not None:
        sinks["atollon"] = _atollon_sink(settings, systems.atollon, limiter, leases)
    if "onlineerp" in targets and systems.onlineerp is not None:
        sinks["onlineerp"] = _onlineerp_sink(settings, systems.onlineerp, limiter, leases)
    return _adopting(settings, limiter, sinks)


def _propeller_sink(
    settings: Settings,
    system: PropellerSettings,
    limiter: RateLimiter | None,
    leases: Leases | None,
) -> Sink:
    from delivery.sinks.propeller import PropellerSink

    return PropellerSink(
        system,
        http_client("propeller", system, limiter, leases),
        mappings_for(settings, "propeller"),
        settings.errors.get("propeller"),
    )


def _hipe_sink(
    settings: Settings, system: HipeSettings, limiter: RateLimiter | None, leases: Leases | None
) -> Sink:
    """Companies; contacts beside them (a router) when a flow sends people."""
    from delivery.sinks.hipe import HipeSink
    from delivery.sinks.hipe_contacts import PERSON, HipeContactSink
    from delivery.sinks.router import route

    mappings = mappings_for(settings, "hipe")
    overrides = settings.errors.get("hipe")
    sinks: list[Sink] = [
        HipeSink(system, http_client("hipe", system, limiter, leases), mappings, overrides)
    ]
    if PERSON in mappings:
        http = http_client("hipe", system, limiter, leases)
        sinks.append(HipeContactSink(system, http, mappings, overrides))
    return route("hipe", sinks)


def _atollon_sink(
    settings: Settings, system: AtollonSettings, limiter: RateLimiter | None, leases: Leases | None
) -> Sink:
    """Customers and products; people and invoice states beside them (a router) when flows
    send them."""
    from delivery.sinks.atollon import AtollonSink
    from delivery.sinks.atollon_persons import PERSON, AtollonPersonSink
    from delivery.sinks.invoices import INVOICE_ENTITY, AtollonInvoiceSink
    from delivery.sinks.router import route

    mappings = mappings_for(settings, "atollon")
    overrides = settings.errors.get("atollon")
    sinks: list[Sink] = [
        AtollonSink(system, http_client("atollon", system, limiter, leases), mappings, overrides)
    ]
    if PERSON in mappings:
        http = http_client("atollon", system, limiter, leases)
        sinks.append(AtollonPersonSink(system, http, mappings, overrides))
    if INVOICE_ENTITY in mappings:
        sinks.append(
            AtollonInvoiceSink(
                system,
                http_client("atollon", system, limiter, leases),
                mappings[INVOICE_ENTITY],
                overrides,
            )
        )
    return route("atollon", sinks)


def _onlineerp_sink(
    settings: Settings,
    system: OnlineErpSettings,
    limiter: RateLimiter | None,
    leases: Leases | None,
) -> Sink:
    """The billing saga: invoices in the ERP, recorded in Atollon when it is configured."""
    from delivery.sinks.invoices import INVOICE_ENTITY, invoice_state_map
    from delivery.sinks.onlineerp import OnlineErpSink

    atollon = settings.systems.atollon
    return OnlineErpSink(
        system,
        http_client("onlineerp", system, limiter, leases),
        mappings_for(settings, "onlineerp"),
        settings.errors.get("onlineerp"),
        atollon=atollon,
        atollon_http=http_client("atollon", atollon, limiter, leases) if atollon else None,
        atollon_overrides=settings.errors.get("atollon"),
        invoice_states=invoice_state_map(mappings_for(settings, "atollon").get(INVOICE_ENTITY)),
    )


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
