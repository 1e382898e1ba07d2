"""A customer's addresses as HIPE company addresses (the address guide).

HIPE documents no key for an address: erpsync writes its code in the address's ``name``
and matches on it. A new company gets all its addresses in one create call (the guide's
JSON array); a known one, whose addresses differ from what the ledger says was written (or
it cannot say), is listed once, then each address that differs is PATCHed by id, the new
ones created in one call and the ones gone deleted by id (the n8n node's calls). Addresses
with another name (added by hand in HIPE) are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.hipe import HipeClient
from adapters.hipe.addresses import HipeAddresses
from adapters.hipe.models import HipeAddress, HipeAddressInput, HipeId
from delivery.sinks.addresses import addresses_view, canonical, digest, is_ours
from erpsync.models import CompanyAddress

#: what HIPE requires of an address (``address``, ``city``, ``country``, ``zipCode``)
REQUIRED = ("line1", "city", "country", "postal_code")


def address_input(address: CompanyAddress) -> HipeAddressInput:
    """The HIPE body of an address: every field set (``None`` clears ``state``)."""
    return HipeAddressInput(
        name=address.code,
        address=address.line1,
        city=address.city,
        state=address.region,
        zip_code=address.postal_code,
        country=address.country,
    )


def _view(address: HipeAddress, kind: str | None) -> dict[str, Any]:
    return {
        "code": address.name,
        "type": kind,
        "line1": address.address,
        "city": address.city,
        "region": address.state,
        "postal_code": address.zip_code,
        "country": address.country,
    }


def _kind(code: str | None) -> str:
    """The type of an address, from its code (HIPE keeps no type)."""
    return "invoice" if code == "invoice" else "delivery"


def expected(addresses: Iterable[CompanyAddress]) -> list[dict[str, Any]]:
    return addresses_view(canonical(list(addresses)))


def written_digest(addresses: Sequence[CompanyAddress]) -> str:
    return digest(canonical(addresses))


def ledger_extra(addresses: Sequence[CompanyAddress]) -> str:
    """The ledger's ``extra`` of a HIPE company: the digest of the addresses written."""
    return json.dumps({"addresses": written_digest(addresses)})


def previous_digest(ledger_extra: str | None) -> str | None:
    """The digest the ledger remembers; None when it cannot say (then all is checked)."""
    if not ledger_extra:
        return None
    try:
        data = json.loads(ledger_extra)
    except ValueError:
        return None
    found = data.get("addresses") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


class AddressWriter:
    """Writes a company's addresses, in as few calls as the documented endpoints allow."""

    def __init__(self, client: HipeClient) -> None:
        self.calls = HipeAddresses(client)

    def write(
        self,
        company_id: HipeId,
        addresses: Sequence[CompanyAddress],
        previous: str | None,
        *,
        created: bool,
    ) -> None:
        """Make the company's addresses of erpsync's be ``addresses`` (nothing when the
        ledger's digest says they already are)."""
        if previous is not None and previous == written_digest(addresses):
            return
        if created:
            self.calls.create(company_id, [address_input(a) for a in addresses])
            return
        ours: dict[str, list[HipeAddress]] = {}
        for found in self.calls.list(company_id):
            if is_ours(found.name):
                ours.setdefault(str(found.name), []).append(found)
        new: list[HipeAddressInput] = []
        for address in addresses:
            body = address_input(address)
            same = ours.pop(address.code, [])
            if not same:
                new.append(body)
                continue
            first, *extra_copies = same
            if _differs(first, body):
                self.calls.update(first.id, body)
            for copy in extra_copies:  # a create whose answer was lost, then retried
                self.calls.delete(copy.id)
        for gone in ours.values():
            for found in gone:
                self.calls.delete(found.id)
        self.calls.create(company_id, new)

    def observed(self, company_id: HipeId) -> list[dict[str, Any]]:
        """The company's addresses of erpsync's, as the view compares them."""
        return addresses_view(
            _view(a, _kind(a.name)) for a in self.calls.list(company_id) if is_ours(a.name)
        )


def _differs(found: HipeAddress, body: HipeAddressInput) -> bool:
    sent: Mapping[str, Any] = body.model_dump(by_alias=False)
    return any(
        (getattr(found, name) or None) != (value or None)
        for name, value in sent.items()
        if name != "name"
    )
