"""The sinks and the shared table of supported flows (erpsync.flows) agree exactly.

The settings refuse a flow by the table, the sinks decide by ``handles()``: were the two to
drift, a flow would pass validation and dead-letter every event, or be refused though a
sink could apply it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from delivery.engine import Sink
from delivery.sinks.atollon import AtollonSink
from delivery.sinks.atollon_persons import AtollonPersonSink
from delivery.sinks.hipe import HipeSink
from delivery.sinks.hipe_contacts import HipeContactSink
from delivery.sinks.invoices import AtollonInvoiceSink
from delivery.sinks.onlineerp import OnlineErpSink
from delivery.sinks.propeller import PropellerSink
from delivery.sinks.router import route
from erpsync.flows import TARGETS
from erpsync.mapping import TargetMapping
from erpsync.settings import (
    FLOW_ENTITIES,
    SYSTEM_NAMES,
    AtollonSettings,
    HipeSettings,
    OnlineErpSettings,
    PropellerSettings,
)

URL = "http://127.0.0.1:1"


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"handles() must not call {request.url}")


@pytest.fixture
def sinks() -> Iterator[dict[str, Sink]]:
    """Every real sink, told a mapping for every entity (so only its own rule decides)."""
    http = httpx.Client(transport=httpx.MockTransport(_refuse))
    every = {entity: TargetMapping() for entity in FLOW_ENTITIES}
    atollon = AtollonSettings(base_url=URL, instance="i")
    hipe = HipeSettings(base_url=URL, access_token="t")  # type: ignore[arg-type]
    built: dict[str, Sink] = {
        "propeller": PropellerSink(
            PropellerSettings(base_url=URL, client_id="c", client_secret="s"),  # type: ignore[arg-type]
            http,
            every,
        ),
        # as build_sinks makes it: contacts beside companies
        "hipe": route("hipe", [HipeSink(hipe, http, every), HipeContactSink(hipe, http, every)]),
        # as build_sinks makes it: people and invoice states beside contacts and products
        "atollon": route(
            "atollon",
            [
                AtollonSink(atollon, http, every),
                AtollonPersonSink(atollon, http, every),
                AtollonInvoiceSink(atollon, http, every["invoice"]),
            ],
        ),
        "onlineerp": OnlineErpSink(
            OnlineErpSettings(base_url=URL, licence_code="L", secret="s"),  # type: ignore[arg-type]
            http,
            every,
            atollon=atollon,
            atollon_http=http,
        ),
    }
    yield built
    http.close()


def test_there_is_a_sink_for_every_system(sinks: dict[str, Sink]) -> None:
    assert set(sinks) == set(SYSTEM_NAMES)
    assert all(sink.target == name for name, sink in sinks.items())


@pytest.mark.parametrize("target", SYSTEM_NAMES)
@pytest.mark.parametrize("entity", sorted(FLOW_ENTITIES))
def test_handles_agrees_with_the_table(sinks: dict[str, Sink], target: str, entity: str) -> None:
    assert sinks[target].handles(entity) is ((entity, target) in TARGETS)
