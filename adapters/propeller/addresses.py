"""Propeller addresses of a company: list, create, bulk upsert by ``code``, delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.propeller._transport import BULK_MAX_ITEMS, PropellerTransport
from adapters.propeller.models import BulkOutcome, PropellerAddress, PropellerAddressInput


class AddressCalls(PropellerTransport):
    """The address operations of :class:`adapters.propeller.client.PropellerClient`."""

    def list_addresses(self, source_id: str, *, type: str | None = None) -> list[PropellerAddress]:
        """The company's addresses, optionally only ``delivery`` or ``invoice`` ones."""
        operation = "list_addresses"
        params = self._lookup_params()
        if type is not None:
            params["type"] = type
        path = f"{self._company_path(source_id)}/addresses"

        def fetch(page: int) -> Any:
            paged = params if page == 1 else {**params, "page": page}
            return self._call("GET", path, operation=operation, params=paged)

        return [
            self._validate(PropellerAddress, item, operation)
            for item in self._pages(fetch, operation, None)
        ]

    def create_address(self, source_id: str, address: PropellerAddressInput) -> PropellerAddress:
        """Add an address to the company; the reply carries the new address ``id``."""
        operation = "create_address"
        body = address.to_json()
        payload = self._call(
            "POST",
            f"{self._company_path(source_id)}/addresses",
            operation=operation,
            params=self._lookup_params(),
            body=body,
        )
        data = self._data_object(payload, operation)
        return self._validate(PropellerAddress, {**body, **data}, operation)

    def upsert_addresses_bulk(
        self, source_id: str, addresses: Sequence[PropellerAddressInput]
    ) -> list[BulkOutcome]:
        """Create or update the company's addresses by ``code`` (no code: create), in order.

        The body is ``{"addresses": [...]}``, by analogy with ``{"companies": [...]}``:
        the docs name the endpoint but not its body.
        """
        operation = "upsert_addresses_bulk"
        outcomes: list[BulkOutcome] = []
        size = min(self._settings.bulk_batch_size, BULK_MAX_ITEMS)
        path = f"{self._company_path(source_id)}/addresses/bulk"
        for start in range(0, len(addresses), size):
            batch = addresses[start : start + size]
            payload = self._call(
                "POST",
                path,
                operation=operation,
                params=self._lookup_params(),
                body={"addresses": [a.to_json() for a in batch]},
            )
            keys: list[str | None] = [a.code for a in batch]
            outcomes.extend(self._outcomes(payload, keys, start, operation, "code"))
        return outcomes

    def delete_address(self, source_id: str, address_id: int) -> None:
        """Delete one address; an unknown one raises RecordMissingError (90006)."""
        self._call(
            "DELETE",
            f"{self._company_path(source_id)}/addresses/{address_id}",
            operation="delete_address",
            params=self._lookup_params(),
        )
