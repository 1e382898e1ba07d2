"""The HIPE by Packitoo simulator (see :mod:`simulators.hipe.app`)."""

from simulators.hipe.app import HipeSimulator

__all__ = ["HipeSimulator"]
