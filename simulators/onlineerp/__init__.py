"""The OnlineERP / ERPConnector simulator (see :mod:`simulators.onlineerp.simulator`)."""

from simulators.onlineerp.simulator import OnlineErpSimulator

__all__ = ["OnlineErpSimulator"]
