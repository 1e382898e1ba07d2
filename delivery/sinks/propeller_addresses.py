"""A customer's addresses as Propeller company addresses, keyed by their ``code``.

Written in the same bulk call as the company when the sink goes in bulk (doc 002 lists
``addresses`` among a bulk company's fields; they are upserted by code), else by the
company's address bulk endpoint (``POST …/addresses/bulk``, one call for all of them), and
only when they differ from what the ledger says was written last. An address the source
removed (or cleared whole, or left incomplete) is deleted by its id (``DELETE
…/addresses/{id}``), found by one listing of the company's addresses: only when the ledger
says a code went away, or cannot say (a first write to an existing company, a repair).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from adapters.propeller import PropellerClient
from adapters.propeller.models import PropellerAddressInput
from delivery.sinks.addresses import addresses_view, is_ours
from erpsync.models import CompanyAddress

#: what Propeller requires of an address (its ``street``, ``city`` and ``country``)
REQUIRED = ("line1", "city", "country")


def address_input(address: CompanyAddress) -> PropellerAddressInput:
    """The Propeller body of an address: every field, a cleared one as ``""``."""
    return PropellerAddressInput.model_validate(
        {
            "type": address.type,
            "code": address.code,
            "street": address.line1,
            "city": address.city,
            "country": (address.country or "").upper(),
            "postal_code": address.postal_code or "",
            "region": address.region or "",
        }
    )


def inputs(addresses: Iterable[CompanyAddress]) -> list[PropellerAddressInput]:
    return [address_input(a) for a in addresses]


def removal_due(codes: Sequence[str], previous: Sequence[str] | None, *, created: bool) -> bool:
    """Whether a listing must look for addresses to delete: a company that existed, whose
    written codes are unknown, or include one no longer wanted."""
    if created:
        return False
    return previous is None or not set(previous) <= set(codes)


def write(
    client: PropellerClient,
    key: str,
    addresses: Sequence[CompanyAddress],
    previous: Sequence[str] | None,
    *,
    created: bool,
) -> None:
    """The single path: upsert every address in one call, delete the ones gone."""
    if addresses:
        client.upsert_addresses_bulk(key, inputs(addresses))
    codes = [a.code for a in addresses]
    if removal_due(codes, previous, created=created):
        delete_others(client, key, codes)


def delete_others(client: PropellerClient, key: str, codes: Sequence[str]) -> None:
    """Delete the company's addresses with a code of erpsync's not in ``codes``."""
    wanted = set(codes)
    for found in client.list_addresses(key):
        if is_ours(found.code) and found.code not in wanted:
            client.delete_address(key, found.id)


def observed(client: PropellerClient, key: str) -> list[dict[str, Any]]:
    """The company's addresses with a code of erpsync's, as the view compares them."""
    return addresses_view(
        {
            "code": a.code,
            "type": a.type,
            "line1": a.street,
            "city": a.city,
            "region": a.region,
            "postal_code": a.postal_code,
            "country": a.country,
        }
        for a in client.list_addresses(key)
        if is_ours(a.code)
    )


def expected(addresses: Iterable[CompanyAddress]) -> list[dict[str, Any]]:
    """What Propeller shows of the addresses the sink writes (country in capitals)."""
    return addresses_view(
        {**a.model_dump(), "country": (a.country or "").upper()} for a in addresses
    )
