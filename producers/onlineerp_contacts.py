"""OnlineERP contacts: the people of the ERP's customers, by fingerprinted full scans.

The ERP's public pages document no contact entity; the sandbox serves one
(``/Entity/Contact``, key ``NoContact``, its customer in ``NoClient``: the names are in
docs/sandbox-conventions.md and in :data:`erpsync.flows.SOURCES`). A contact becomes a
canonical :class:`~erpsync.models.Person` whose parent is its employer, a customer: every
target waits for the customer before it writes the person (``employer_key`` is the
event's ``parent_key``). The employer's name (``employer_name``, Atollon's documented
fallback to bind a person to its company) is read with the contacts, one ``$select`` of
the customers' keys and names a scan; a renamed customer makes its people changed too.
Change detection is the customers' (a full scan, deletions included); a contact that
does not validate is mapped as it is, for the targets to dead-letter as invalid source
data, as customers are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from adapters.onlineerp import ErpContact, InvalidRecord, OnlineErpClient
from producers.base import SnapshotStream, SourceRecord
from producers.onlineerp import _as_is, _keyed, _text


def person_payload(contact: ErpContact, employer_name: str | None) -> dict[str, Any]:
    """An ERP contact as a canonical person (a dict; validated by each target's sink).
    Text is stripped, blank is absent: a value erased in the ERP is cleared in the targets."""
    return {
        "key": contact.number,
        "employer_key": _text(contact.customer_number),
        "employer_name": employer_name,
        "first_name": _text(contact.first_name),
        "last_name": _text(contact.last_name),
        "email": _text(contact.email),
        "phone": _text(contact.phone),
        "mobile": _text(contact.mobile),
        "job_title": _text(contact.title),
        "active": bool(contact.active),
    }


def invalid_person_payload(record: InvalidRecord, employer_name: str | None) -> dict[str, Any]:
    """A contact that does not validate, mapped as it is (see
    :func:`producers.onlineerp.invalid_customer_payload`)."""
    raw = record.raw
    return {
        "key": record.key,
        "employer_key": _as_is(raw.get("NoClient")),
        "employer_name": employer_name,
        "first_name": _as_is(raw.get("Prenom")),
        "last_name": _as_is(raw.get("Nom")),
        "email": _as_is(raw.get("Courriel")),
        "phone": _as_is(raw.get("Telephone")),
        "mobile": _as_is(raw.get("Cellulaire")),
        "job_title": _as_is(raw.get("Titre")),
        "active": raw.get("EstActif", True),
    }


@dataclass
class OnlineErpContacts(SnapshotStream):
    """ERP contacts (``Contact``), keyed by ``NoContact``; their parent is their customer."""

    client: OnlineErpClient = field(kw_only=True)
    page_size: int | None = field(default=None, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        names = self.client.customer_names()  # the employers' names, read once a scan
        for page in self.client.iter_checked_contact_pages(page_size=self.page_size):
            records: list[SourceRecord] = []
            for contact in page:
                if not isinstance(contact, InvalidRecord):
                    payload = person_payload(contact, names.get(contact.customer_number))
                    records.append(SourceRecord(contact.number, payload, payload["employer_key"]))
                elif _keyed(self.name, contact):
                    employer = contact.raw.get("NoClient")
                    name = names.get(employer) if isinstance(employer, str) else None
                    payload = invalid_person_payload(contact, name)
                    employer = payload["employer_key"]
                    parent = employer if isinstance(employer, str) else None
                    records.append(SourceRecord(str(contact.key), payload, parent))
            yield records
