"""HIPE contacts (users of type contact): matched on ``externalId``, read, written, archived."""

from __future__ import annotations

from collections.abc import Iterator

from adapters._http import unexpected_shape
from adapters.hipe._transport import CONTACTS, USERS, HipeTransport, _search
from adapters.hipe.models import HipeContact, HipeContactInput, HipeId


class ContactCalls(HipeTransport):
    """The contact operations of :class:`adapters.hipe.client.HipeClient`."""

    def find_contacts_by_external_id(self, external_id: str) -> list[HipeContact]:
        """Every contact (archived ones too) whose ``externalId`` equals this one exactly."""
        params = {"s": _search({"externalId": {"$eq": external_id}})}
        return list(self._pages(CONTACTS, params, HipeContact, "find_contact"))

    def iter_contact_pages(self) -> Iterator[list[HipeContact]]:
        """Every contact that carries an external id (archived ones too), a page at a time,
        sorted by id (as :meth:`~adapters.hipe.companies.CompanyCalls.iter_company_pages`)."""
        params = {"s": _search({"externalId": {"$notnull": True}}), "sort": "id,ASC"}
        operation = "list_contacts"
        previous: set[HipeId] = set()
        for page, records in enumerate(
            self._page_lists(CONTACTS, params, HipeContact, operation), 1
        ):
            ids = {record.id for record in records}
            if ids <= previous:
                raise unexpected_shape(self._table, operation, f"page {page} repeated a page")
            previous = ids
            yield records

    def find_contact(self, external_id: str) -> HipeContact | None:
        """The contact with this external id, ``None``, or AmbiguousMatchError."""
        return self._one_live(
            self.find_contacts_by_external_id(external_id),
            operation="find_contact",
            external_id=external_id,
            what="contacts",
        )

    def get_contact(self, contact_id: HipeId) -> HipeContact | None:
        """The contact with this HIPE user id, or ``None``."""
        response = self._request(
            "GET", f"{USERS}/{contact_id}", operation="get_contact", missing_ok=True
        )
        if response.status_code == 404:
            return None
        return self._model(HipeContact, self._json(response, "get_contact"), "get_contact")

    def create_contact(self, contact: HipeContactInput) -> HipeContact:
        """Create a contact (``POST /api/users/contacts``)."""
        return self._call(
            HipeContact, "POST", CONTACTS, operation="create_contact", json=contact.to_json()
        )

    def update_contact(self, contact_id: HipeId, contact: HipeContactInput) -> HipeContact:
        """PATCH a contact (``/api/users/{id}``); a removed one is RecordMissingError."""
        return self._call(
            HipeContact,
            "PATCH",
            f"{USERS}/{contact_id}",
            operation="update_contact",
            record_operation=True,
            json=contact.to_json(),
        )

    def archive_contact(self, contact_id: HipeId) -> HipeContact:
        """Soft-delete a contact (``DELETE /api/users/{id}/archived``)."""
        return self._call(
            HipeContact,
            "DELETE",
            f"{USERS}/{contact_id}/archived",
            operation="archive_contact",
            record_operation=True,
        )

    def unarchive_contact(self, contact_id: HipeId) -> HipeContact:
        """Restore an archived contact (``GET /api/users/{id}/unarchived``)."""
        return self._call(
            HipeContact,
            "GET",
            f"{USERS}/{contact_id}/unarchived",
            operation="unarchive_contact",
            record_operation=True,
        )
