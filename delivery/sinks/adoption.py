"""Target records without our external id, and the link that writes it onto one of them.

For each target whose records can be adopted (:data:`erpsync.matching.ADOPTING_TARGETS`)
two things, next to the sink's own views (:mod:`delivery.sinks.view`):

* ``unlinked(entity)``: every record of the target that carries no external id of ours,
  page by page, as a view (the same fields as :meth:`ViewableSink.observed`), for the
  match rules to compare and the plan to show what an adoption would change;
* ``link(key, target_id, name)``: our external id written onto that record, the way each
  vendor documents it. After it, the sink finds the record by our key like any other;
* ``find(target_id)``: one record by its id, with the key of ours it carries, for an
  operator's ``erpsync adopt link`` of a record that was no candidate.

Per vendor:

* **Propeller**: ``PATCH /companies/id/{id}`` with ``sourceId``, ``source`` and
  ``language`` (a company's fields; "Update Company by lookup key" with the ``id`` key).
  The documented search lists no e-mail or phone: each unlinked company is read whole by
  id (one GET per hand-made company, on top of the search pages).
* **HIPE**: ``PATCH /api/companies/{id}`` with ``externalId`` (the guide's update; its
  search by external id then finds it). Archived companies are not offered.
* **Atollon**: the crawler documents no update by contact id, but "Check whether company is
  existing (company name matches some record in DB)" among contacts without that system's
  id: the link is a contact request carrying the record's *own* name and our external id,
  which Atollon attaches to it (the next write then sends the ERP's name). A name that
  several unlinked contacts share cannot be linked this way (the planner never picks one).
  Reading contacts is not documented (the sandbox's read; ReadUnsupportedError otherwise).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.atollon import AtollonCompany, AtollonContactInput, ExternalId
from adapters.hipe import HipeCompanyInput, HipeId, hipe_id
from delivery.sinks.atollon import AtollonSink
from delivery.sinks.hipe import VIEW_FIELDS, HipeSink
from delivery.sinks.propeller import BASE_VIEW, READ_FIELDS, PropellerSink, _ParentKeys, _view_name
from delivery.sinks.view import Observed, view
from erpsync.errors import PermanentError
from erpsync.matching import atollon_name_key

#: parents remembered while reading unlinked HIPE companies (bounded)
_PARENTS = 10_000


@dataclass(frozen=True)
class TargetRecord:
    """One target record, as ``erpsync adopt link`` checks it before an operator's link."""

    target_id: str
    name: str | None
    #: the external id of ours it carries (None: none, it can be adopted)
    key: str | None
    #: why it cannot be linked whatever it carries (Atollon: not a company contact, or
    #: another contact without our id has its name, which Atollon would pick instead)
    refused: str | None = None


class Adopter(Protocol):
    """What the planner and the adopting sink need of a target whose records can be adopted."""

    target: str

    def unlinked(self, entity: str) -> Iterator[Observed]:
        """Every target record without our external id (``key`` empty), page by page."""
        ...

    def find(self, target_id: str) -> TargetRecord | None:
        """The target record with this id (None: there is none)."""
        ...

    def link(self, key: str, target_id: str, name: str | None) -> None:
        """Write our external id ``key`` onto the target record ``target_id``."""
        ...


class PropellerAdopter:
    """Propeller companies without our ``source``."""

    target = "propeller"

    def __init__(self, sink: PropellerSink) -> None:
        self.sink = sink

    def unlinked(self, entity: str) -> Iterator[Observed]:
        sink, client = self.sink, self.sink.client
        source, language = sink.settings.source, sink.settings.language.upper()
        names = [name for name in sink.row_fields() if name not in BASE_VIEW]
        parents = _ParentKeys(client, source)
        for company in client.search_companies(
            modified_from=None, expands=("sources", "attributes")
        ):
            key = company.source_id_for(source)
            parents.remember(company.id, key)
            if key is not None or (company.language or language).upper() != language:
                continue
            if not company.model_fields_set >= READ_FIELDS:
                full = client.get_company_by_id(company.id)
                if full is None:
                    continue  # deleted since the page was read
                company = full
            fields: dict[str, Any] = {
                "name": company.name,
                "email": company.email,
                "phone": company.phone,
                "tax_number": company.tax_number,
                "parent_key": parents.key_of(company),
                "active": sink._active(company),
            }
            for name in names:
                fields[_view_name(name)] = getattr(company, name, None)
            yield Observed(key="", target_id=str(company.id), fields=view(fields))

    def find(self, target_id: str) -> TargetRecord | None:
        if not (target_id.isascii() and target_id.isdigit()):
            return None  # Propeller's ids are numbers
        company = self.sink.client.get_company_by_id(int(target_id))
        if company is None:
            return None
        return TargetRecord(
            target_id, company.name, company.source_id_for(self.sink.settings.source)
        )

    def link(self, key: str, target_id: str, name: str | None) -> None:
        self.sink.client.link_company(int(target_id), key)


class HipeAdopter:
    """HIPE companies without an ``externalId`` (archived ones left out)."""

    target = "hipe"

    def __init__(self, sink: HipeSink) -> None:
        self.sink = sink

    def unlinked(self, entity: str) -> Iterator[Observed]:
        parents: OrderedDict[HipeId, str] = OrderedDict()
        for page in self.sink.client.iter_company_pages(linked=False):
            for company in page:
                parents[company.id] = f"(HIPE company {company.id})"
                if len(parents) > _PARENTS:
                    parents.popitem(last=False)
            for company in page:
                if company.external_id or company.archived:
                    continue
                fields: dict[str, Any] = {
                    name: getattr(company, attr) for attr, name in VIEW_FIELDS.items()
                }
                fields["parent_key"] = (
                    None
                    if company.parent_id is None
                    else parents.get(company.parent_id, f"(HIPE company {company.parent_id})")
                )
                fields["active"] = True
                yield Observed("", str(company.id), view(fields))

    def find(self, target_id: str) -> TargetRecord | None:
        company = self.sink.client.get_company(hipe_id(target_id))
        if company is None:
            return None
        return TargetRecord(str(company.id), company.name, company.external_id or None)

    def link(self, key: str, target_id: str, name: str | None) -> None:
        self.sink.client.update_company(hipe_id(target_id), HipeCompanyInput(external_id=key))


class AtollonAdopter:
    """Atollon company contacts without an external id of the ERP's system."""

    target = "atollon"

    def __init__(self, sink: AtollonSink) -> None:
        self.sink = sink

    def unlinked(self, entity: str) -> Iterator[Observed]:
        system = self.sink.settings.erp_system
        for contact in self.sink.client.iter_contacts():
            if contact.external_id_for(system) is not None:
                continue
            if contact.company is None or not contact.company.company_name:
                continue  # a person contact: customers are company contacts
            fields = self.sink._observed_contact(contact)
            yield Observed("", str(contact.contact_id), fields)

    def find(self, target_id: str) -> TargetRecord | None:
        """Read through the contact listing (the crawler documents no read by id)."""
        system = self.sink.settings.erp_system
        contacts = self.sink.client.iter_contacts()
        contact = next((c for c in contacts if str(c.contact_id) == target_id), None)
        if contact is None:
            return None
        name = contact.company.company_name if contact.company is not None else None
        found = TargetRecord(target_id, name, contact.external_id_for(system))
        if found.key is not None:
            return found
        if not name:
            return dataclasses.replace(found, refused="it is a person contact, not a company")
        same = atollon_name_key(name)
        other = next(
            (str(c.contact_id) for c in self.sink.client.iter_contacts()
             if str(c.contact_id) != target_id and c.external_id_for(system) is None
             and c.company is not None and atollon_name_key(c.company.company_name) == same),
            None,
        )  # fmt: skip
        if other is not None:
            refused = (f"Atollon links by name, and contact {other} without our id has the "
                       "same name: rename one of them in Atollon first")  # fmt: skip
            return dataclasses.replace(found, refused=refused)
        return found

    def link(self, key: str, target_id: str, name: str | None) -> None:
        if not name:
            raise PermanentError(
                f"atollon contact {target_id} cannot be linked to {key}: its name is unknown",
                system="atollon",
                operation="link_contact",
                vendor_code="adoption-link",
                hint="Atollon links by the contact's name; run erpsync plan again",
            )
        system = self.sink.settings.erp_system
        body = AtollonContactInput(
            company=AtollonCompany(company_name=name),
            external_id=[ExternalId(system=system, id=key)],
        )
        linked = self.sink.client.upsert_contact(body)
        if str(linked.contact_id) != target_id:
            raise PermanentError(
                f"atollon attached {key} to contact {linked.contact_id}, not {target_id}: "
                "another contact without our id has that name",
                system="atollon",
                operation="link_contact",
                vendor_code="adoption-link",
                hint=f"in Atollon, remove the external id {key} from contact "
                f"{linked.contact_id} and rename one of the two, then erpsync adopt link",
            )


def adopter_for(sink: object) -> Adopter | None:
    """The adopter of a sink's target (None: its records cannot be adopted)."""
    inner = getattr(sink, "sink_for", None)
    if inner is not None:  # a router: customers go to its customer sink
        sink = inner("customer")
    if isinstance(sink, PropellerSink):
        return PropellerAdopter(sink)
    if isinstance(sink, HipeSink):
        return HipeAdopter(sink)
    if isinstance(sink, AtollonSink):
        return AtollonAdopter(sink)
    return None
