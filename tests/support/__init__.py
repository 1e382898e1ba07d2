"""Shared test helpers: a clock moved by hand, change events and deliveries built in one line.

Import them from here (``from tests.support import Clock, customer_event``) rather than from
another test module, so a test file can move or change without breaking its neighbours.
The builders of one area have a module each: ``engine`` (an engine on fakeredis),
``bulk`` (a scripted bulk sink), ``addresses``, ``<vendor>_api`` (an adapter over
httpx.MockTransport), ``<vendor>_sandbox`` (the sandbox over HTTP), ``<vendor>_sink`` and
``billing_sink`` (a sink against its sandbox or fakes).
"""

from tests.support.clock import Clock
from tests.support.events import customer_event, delivery_of, make_event

__all__ = ["Clock", "customer_event", "delivery_of", "make_event"]
