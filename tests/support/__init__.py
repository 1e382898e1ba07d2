"""Shared test helpers: a clock moved by hand, change events and deliveries built in one line.

Import them from here (``from tests.support import Clock, customer_event``) rather than from
another test module, so a test file can move or change without breaking its neighbours.
"""

from tests.support.clock import Clock
from tests.support.events import customer_event, delivery_of, make_event

__all__ = ["Clock", "customer_event", "delivery_of", "make_event"]
