"""A customer's addresses in the targets: what is written, what is compared, what is erpsync's.

The canonical customer carries every address of the ERP customer (:attr:`Company.addresses`),
each keyed by a ``code`` stable for that customer (``invoice``, ``delivery:<ERP code>``).
The targets match addresses on that code (Propeller's address ``code``; HIPE documents no
key for an address, so its ``name`` carries the code) and delete those whose code the
source no longer has. Only addresses with a code of erpsync's shape are touched: an address
a user added by hand in the target (another code, or none) is left alone and not compared.

An address lacking what a target requires (Propeller: street, city and a two-letter
country; HIPE: address, city, country and zip code) cannot exist there: it is left out of
what the sink writes (an earlier complete version is deleted), and out of what reconcile
expects, and a warning names it when written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from erpsync.models import DELIVERY_ADDRESS_PREFIX, INVOICE_ADDRESS_CODE, CompanyAddress

log = structlog.get_logger("erpsync.worker")

#: the canonical fields of an address, as the view shows them (``code`` and ``type`` first)
VIEW_FIELDS = ("code", "type", "line1", "city", "region", "postal_code", "country")


def is_ours(code: str | None) -> bool:
    """True for a code erpsync writes (an address it owns in the target)."""
    return code is not None and (
        code == INVOICE_ADDRESS_CODE or code.startswith(DELIVERY_ADDRESS_PREFIX)
    )


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def address_view(fields: Mapping[str, Any]) -> dict[str, Any]:
    """One address as the view compares it: every field, text stripped, blank None."""
    return {name: _clean(fields.get(name)) for name in VIEW_FIELDS}


def addresses_view(addresses: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Addresses as the view compares them: sorted by code (order is not compared)."""
    return sorted((address_view(a) for a in addresses), key=lambda a: str(a["code"]))


def complete(address: CompanyAddress, required: Sequence[str]) -> bool:
    """True when the address has every field ``required`` (a two-letter ``country``)."""
    for name in required:
        value = getattr(address, name)
        if value is None or not str(value).strip():
            return False
        if name == "country" and len(str(value).strip()) != 2:
            return False
    return True


def split(
    addresses: Sequence[CompanyAddress], required: Sequence[str]
) -> tuple[tuple[CompanyAddress, ...], tuple[str, ...]]:
    """The addresses a target can hold, and the codes of those it cannot."""
    kept = tuple(a for a in addresses if complete(a, required))
    dropped = tuple(a.code for a in addresses if not complete(a, required))
    return kept, dropped


def warn_incomplete(target: str, key: str, dropped: Sequence[str], required: Sequence[str]) -> None:
    """Name, when writing, the addresses a target cannot hold (never left out silently)."""
    if dropped:
        log.warning(
            "sync.address_incomplete",
            target=target,
            key=key,
            codes=list(dropped),
            required=list(required),
            hint=f"{target} requires these fields of an address: the address is left out "
            "(deleted there if it was written before) until the source completes it",
        )


def digest(addresses: Iterable[Mapping[str, Any]]) -> str:
    """A short digest of the addresses written, for the ledger's ``extra``."""
    text = json.dumps(addresses_view(addresses), sort_keys=True)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def canonical(addresses: Sequence[CompanyAddress]) -> list[dict[str, Any]]:
    """Canonical addresses as plain dicts (what :func:`digest` and the views take)."""
    return [a.model_dump() for a in addresses]
