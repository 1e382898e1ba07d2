"""Atollon CRM crawler import service simulator (``POST /crab/crawler/<type>?instance=``).

Contacts, products, folders, projects, tracking codes, billing items and issued invoices
in memory, following the vendor's crawler page point by point and
``docs/sandbox-conventions.md`` where the page is silent.
"""

from simulators.atollon.simulator import AtollonSimulator

__all__ = ["AtollonSimulator"]
