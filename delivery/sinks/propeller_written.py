"""What the Propeller sink last wrote that the API cannot tell it cheaply, in the ledger.

The lifecycle marker, the parent, a digest of e-mail and phone, and a digest of the
addresses with their codes ride in the ledger's ``extra``; when it is unknown (a first
write, a ledger from before, a write interrupted, a reconcile's forced repair), the sink
writes everything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from state.store import LedgerEntry


def digest_contact(*values: str | None) -> str:
    """A short digest of what was written (e-mail and phone), for the ledger."""
    return hashlib.sha1(json.dumps(values).encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass(frozen=True)
class Written:
    """What the sink last wrote to a company that the API cannot tell cheaply."""

    inactive: bool
    parent: str | None
    contact: str
    #: a digest of the addresses written and their codes (None: unknown, all written)
    addresses: str | None = None
    codes: tuple[str, ...] | None = None

    def extra(self) -> str:
        return json.dumps(
            {
                "inactive": self.inactive,
                "parent": self.parent,
                "contact": self.contact,
                "addresses": self.addresses,
                "codes": None if self.codes is None else list(self.codes),
            },
            sort_keys=True,
        )

    @classmethod
    def of(cls, ledger: LedgerEntry | None) -> Written | None:
        """The ledger's record of it; None when unknown (then everything is written)."""
        if ledger is None or ledger.deleted or not ledger.fingerprint or not ledger.extra:
            return None
        try:
            data = json.loads(ledger.extra)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        inactive, parent, contact = data.get("inactive"), data.get("parent"), data.get("contact")
        if not isinstance(inactive, bool) or not isinstance(contact, str):
            return None
        if parent is not None and not isinstance(parent, str):
            return None
        written, codes = data.get("addresses"), data.get("codes")
        if not isinstance(written, str) or not (
            isinstance(codes, list) and all(isinstance(c, str) for c in codes)
        ):
            return cls(inactive, parent, contact)  # a ledger from before addresses
        return cls(inactive, parent, contact, written, tuple(codes))
