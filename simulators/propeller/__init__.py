"""Propeller (B2B commerce) simulator: a target of companies and company addresses."""

from simulators.propeller.simulator import TOKEN_TTL_S, PropellerSimulator

__all__ = ["TOKEN_TTL_S", "PropellerSimulator"]
