"""HIPE company addresses: the address guide's create and list, the n8n node's update and
delete by id (VENDORS §1.3)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters._http import unexpected_shape
from adapters.hipe.client import COMPANIES, HipeClient
from adapters.hipe.models import HipeAddress, HipeAddressInput, HipeId

ADDRESSES = "/api/addresses"


class HipeAddresses:
    """The address calls, over a :class:`HipeClient` (its errors, token and transport)."""

    def __init__(self, client: HipeClient) -> None:
        self.client = client

    def list(self, company_id: HipeId) -> list[HipeAddress]:
        """The company's addresses (``GET /api/companies/{id}/addresses``); a removed
        company is RecordMissingError."""
        operation = "list_addresses"
        response = self.client._request(
            "GET", f"{COMPANIES}/{company_id}/addresses", operation=operation,
            record_operation=True,
        )  # fmt: skip
        body = self.client._json(response, operation)
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            body = body["data"]  # a paged envelope, should HIPE answer one
        if not isinstance(body, list):
            raise unexpected_shape(self.client.error_table, operation, "not a list of addresses")
        return [self.client._model(HipeAddress, item, operation) for item in body]

    def create(self, company_id: HipeId, addresses: Sequence[HipeAddressInput]) -> None:
        """Create addresses in one call: the guide's JSON array, each with ``companyId``."""
        if not addresses:
            return
        body = [{"companyId": company_id, **a.to_json()} for a in addresses]
        self.client._request(
            "POST", f"{COMPANIES}/{company_id}/addresses", operation="create_addresses",
            record_operation=True, json=body,
        )  # fmt: skip

    def update(self, address_id: HipeId, address: HipeAddressInput) -> None:
        """PATCH an address by id; a removed one is RecordMissingError."""
        self.client._request(
            "PATCH", f"{ADDRESSES}/{address_id}", operation="update_address",
            record_operation=True, json=address.to_json(),
        )  # fmt: skip

    def delete(self, address_id: HipeId) -> None:
        """Delete an address by id; one already gone is RecordMissingError."""
        self.client._request(
            "DELETE", f"{ADDRESSES}/{address_id}", operation="delete_address",
            record_operation=True,
        )  # fmt: skip
