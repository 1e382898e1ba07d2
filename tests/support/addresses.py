"""Canonical customer addresses for the sinks' address tests (HIPE and Propeller alike)."""

from __future__ import annotations

from typing import Any


def address(code: str, kind: str = "delivery", **fields: Any) -> dict[str, Any]:
    """A complete canonical address named ``code``, with ``fields`` changed."""
    found: dict[str, Any] = {
        "code": code,
        "type": kind,
        "line1": f"{len(code)} rue {code}",
        "city": "Laval",
        "region": "QC",
        "postal_code": "H7A 1A1",
        "country": "CA",
    }
    found.update(fields)
    return found


INVOICE = address("invoice", "invoice", line1="1 boul. Facture", city="Montréal")
D1 = address("delivery:D1")
D2 = address("delivery:D2", city="Québec", postal_code="G1A 1A1")
