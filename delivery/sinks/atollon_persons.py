"""ERP contacts (canonical people) → Atollon person contacts, bound to their employer.

Atollon's crawler makes a *person contact* of a contact request whose ``person`` is filled,
and binds it to its employer through ``person.companyPersonRelation``: "if company oldId is
found in companyPersonRelation, make binding, otherwise if companyName is filled-in …,
company based on it's name or create new company contact". erpsync sends both: the
employer's external id (the customer's key, under the ERP's system, as the customer sink
writes it) and the employer's name (``employer_name``) as the documented fallback. The
person waits for its company like a child for its parent, so the id is normally known.

A person's own external id is under the system ``<erp_system>-contact``
(:func:`person_system`): the crawler's "system + externalId must be unique" holds across
persons and companies, so an ERP contact key equal to a customer key cannot make Atollon
take one for the other, and the billing flow, which reads a contact's ERP id as a customer
key, never reads a person's.

As for customers (:mod:`delivery.sinks.atollon`), every write states the whole person
(``""`` / ``[]`` empty a value), and what the crawler documents no way to express is a
known limit: a deactivation is recorded only with ``deactivation = "group"`` (assigned to
the ``Inactive`` group, which a reactivation cannot undo), and a person deleted in the ERP
stays as it was (nothing can be sent: a person contact needs its surname).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from adapters.atollon import (
    AtollonClient,
    AtollonCompanyPersonRelation,
    AtollonContact,
    AtollonContactGroup,
    AtollonContactInfo,
    AtollonContactInput,
    AtollonContacts,
    AtollonPerson,
    ExternalId,
    external_id_for,
)
from delivery.engine import Action, ApplyContext, ApplyResult
from delivery.sinks.atollon import INACTIVE_GROUP, KNOWN_LIMITS, MERGED_CONTACT
from delivery.sinks.view import Observed, View, view
from erpsync.errors import ErrorClass, PermanentError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.models import Person
from erpsync.settings import AtollonSettings

PERSON = "person"
#: the suffix of the external id system of a person contact (:func:`person_system`)
PERSON_SYSTEM_SUFFIX = "-contact"


def person_system(erp_system: str) -> str:
    """The external id system of the persons erpsync writes: ``<erp_system>-contact``."""
    return f"{erp_system}{PERSON_SYSTEM_SUFFIX}"


def _infos(value: str | None) -> list[AtollonContactInfo]:
    return [AtollonContactInfo(contact=value)] if value else []


def _one(values: Sequence[str | None]) -> Any:
    """One value, None for none, the sorted values when there are several (never equal)."""
    present = sorted({v.strip() for v in values if v is not None and v.strip()})
    if len(present) > 1:
        return present
    return present[0] if present else None


class AtollonPersonSink:
    """Upserts Atollon person contacts by ``externalId``, bound to their employer."""

    target = "atollon"

    def __init__(
        self,
        settings: AtollonSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.client = AtollonClient(http, settings, error_overrides=overrides)
        self.system = person_system(settings.erp_system)

    def handles(self, entity: str) -> bool:
        return entity == PERSON and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.operation == "upsert"

    def contact_input(self, payload: Mapping[str, Any]) -> AtollonContactInput:
        """The whole person contact of a canonical person, absences included."""
        person = Person.model_validate(payload)
        employer_id = ExternalId(system=self.settings.erp_system, id=person.employer_key)
        employer = AtollonCompanyPersonRelation(
            company_external_id=[employer_id],
            company_name=person.employer_name,
            position_desc=person.job_title or "",
        )
        fields: dict[str, Any] = {
            "person": AtollonPerson(
                first_name=person.first_name or "",
                last_name=person.last_name or "",
                company_person_relation=[employer],
            ),
            "contacts": AtollonContacts(
                email=_infos(person.email),
                phone=_infos(person.phone),
                mobile=_infos(person.mobile),
            ),
            "external_id": [ExternalId(system=self.system, id=person.key)],
            "source": "erpsync",
        }
        if self.settings.deactivation == "group" and not person.active:
            # assigned only: the crawler documents no way to take it out again
            fields["contact_group"] = [AtollonContactGroup(name=INACTIVE_GROUP)]
        return AtollonContactInput.model_validate(fields)

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        if event.operation == "delete":
            # Gone from the ERP: nothing can be sent (a person contact needs its surname),
            # so Atollon keeps it as it was (a known limit, as for customers).
            target_id = context.ledger.target_id if context.ledger is not None else None
            return ApplyResult("unchanged", target_id=target_id, deleted=True)
        action: Action = "created" if context.ledger is None else "updated"
        contact = self.client.upsert_contact(self.contact_input(event.payload))
        self._guard_merge(event, context, contact.contact_id)
        if self.settings.deactivation == "group" and not event.payload.get("active", True):
            return ApplyResult("archived", target_id=contact.contact_id, deleted=True)
        return ApplyResult(action, target_id=contact.contact_id)

    def _guard_merge(self, event: ChangeEvent, context: ApplyContext, contact_id: str) -> None:
        """A contact id already answered for another ERP person (Atollon matched this one
        by e-mail or mobile): dead-lettered for an operator, never recorded as applied."""
        other = context.claim(event.entity, contact_id)
        if other is None:
            return
        raise PermanentError(
            f"atollon answered person {event.key} with contact {contact_id}, "
            f"which is person {other}'s: two ERP people merged into one contact",
            system=self.target,
            operation="upsert_contact",
            vendor_code=MERGED_CONTACT,
            hint=(
                f"Atollon matched {event.key} to {other}'s contact by e-mail or mobile; split "
                f"the contact in Atollon (or correct the ERP), then check {other} and replay"
            ),
        )

    # -- views for reconcile ----------------------------------------------------------------
    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What Atollon should show for a canonical person, from the body the sink sends."""
        person = Person.model_validate(payload)
        return view(
            {
                "first_name": person.first_name,
                "last_name": person.last_name,
                "email": person.email,
                "phone": person.phone,
                "mobile": person.mobile,
                "job_title": person.job_title,
                "employer_key": person.employer_key,
                "active": person.active,
            }
        )

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every Atollon person contact carrying one of our ERP contact keys, page by page
        (the read is not documented: see :meth:`AtollonClient.iter_contacts`)."""
        for contact in self.client.iter_contacts():
            key = contact.external_id_for(self.system)
            if key is not None and contact.person is not None:
                yield Observed(key, str(contact.contact_id), self._view(contact))

    def _view(self, contact: AtollonContact) -> View:
        person = contact.person
        relations = person.company_person_relation if person is not None else []
        channels = contact.contacts
        groups = {group.name for group in contact.contact_group}
        erp = self.settings.erp_system
        return view(
            {
                "first_name": person.first_name if person is not None else None,
                "last_name": person.last_name if person is not None else None,
                "email": _one([e.contact for e in channels.email] if channels else []),
                "phone": _one([e.contact for e in channels.phone] if channels else []),
                "mobile": _one([e.contact for e in channels.mobile] if channels else []),
                "job_title": _one([r.position_desc for r in relations]),
                "employer_key": _one(
                    [
                        external_id_for(r.company_external_id, erp)
                        or f"(company {r.company_name}, no {erp} id)"
                        for r in relations
                    ]
                ),
                "active": self.settings.deactivation != "group" or INACTIVE_GROUP not in groups,
            }
        )

    def known_limits(self, entity: str) -> list[str]:
        """As customers: a deactivation cannot be undone (never drift)."""
        return list(KNOWN_LIMITS["customer"])

    def close(self) -> None:
        self.http.close()
