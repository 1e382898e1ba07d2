"""ERP contacts (canonical people) → HIPE contacts, matched on ``externalId``.

HIPE's contacts guide: a contact is a user with the contact role (``POST
/api/users/contacts``, ``PATCH /api/users/{id}``), found by ``externalId`` and linked to its
companies by ``collaborationIds``. erpsync writes the person's employer there: the HIPE id
of the company its customer became (the ledger's), so a person waits for its company like a
child for its parent. The list is erpsync's: it is sent whole, ``[employer]``.

A person deactivated in the ERP, or deleted there, is archived (``DELETE
/api/users/{id}/archived``), as companies are; reactivated, it is unarchived (``GET
/api/users/{id}/unarchived``) and written again. An inactive person's fields still follow
the ERP's while it is archived (equality holds for every record; a reactivation finds them
current). Every field is sent on every write, ``null`` where the ERP has no value, which
empties it (docs/sandbox-conventions.md, "Emptying a field").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from adapters.hipe import HipeClient, HipeContact, HipeContactInput, HipeId, hipe_id
from delivery.engine import ApplyContext, ApplyResult, missing_parent
from delivery.sinks.view import Observed, View, view
from erpsync.errors import ErrorClass, RecordMissingError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.models import Person, parent_entity
from erpsync.settings import HipeSettings

PERSON = "person"
#: HIPE contact attribute -> view field (delivery.sinks.view)
VIEW_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone_number": "phone",
    "mobile_phone": "mobile",
    "job": "job_title",
}
#: employers (HIPE company id -> external id) reconcile remembers while reading; bounded
EMPLOYER_CACHE_SIZE = 10_000


def _employer_view(keys: list[str]) -> Any:
    """One employer's key; None for none; the sorted keys when several (never equal)."""
    if len(keys) > 1:
        return sorted(keys)
    return keys[0] if keys else None


class HipeContactSink:
    """Creates, patches, archives and unarchives HIPE contacts for ERP people."""

    target = "hipe"

    def __init__(
        self,
        settings: HipeSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.client = HipeClient(http, settings, error_overrides=overrides)

    @property
    def create_window_s(self) -> float:
        """How long a create may take to land: connecting, sending, waiting for the answer."""
        return self.settings.connect_timeout_s + 2 * self.settings.timeout_s

    def handles(self, entity: str) -> bool:
        return entity == PERSON and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.operation == "upsert" and bool(event.payload.get("active", True))

    def body(
        self, payload: Mapping[str, Any], employer: HipeId | None, *, linked: bool = True
    ) -> HipeContactInput:
        """The contact body of a canonical person; ``linked=False`` leaves its companies
        out (HIPE keeps the ones it has)."""
        person = Person.model_validate(payload)
        fields: dict[str, Any] = {
            "external_id": person.key,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "email": person.email,
            "phone_number": person.phone,
            "mobile_phone": person.mobile,
            "job": person.job_title,
        }
        if linked:
            fields["collaboration_ids"] = [] if employer is None else [employer]
        return HipeContactInput.model_validate(fields)

    def _existing(self, key: str, context: ApplyContext) -> HipeContact | None:
        if context.ledger is not None and context.ledger.target_id:
            found = self.client.get_contact(hipe_id(context.ledger.target_id))
            if found is not None:
                return found
        return self.client.find_contact(key)

    def _employer_if_known(self, event: ChangeEvent, context: ApplyContext) -> HipeId | None:
        """An inactive person's employer in HIPE (it does not wait for it), or None."""
        if not event.parent_key:
            return None
        employer = context.lookup(parent_entity(event.entity), event.parent_key)
        if employer is None or not employer.target_id:
            return None
        return hipe_id(employer.target_id)

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        existing = self._existing(event.key, context)
        if event.operation == "delete" or not event.payload.get("active", True):
            return self._deactivate(event, context, existing)
        if context.parent is None or not context.parent.target_id:
            # The employer is not in HIPE (deleted in the ERP before it ever got there):
            # HIPE links by id, so the person waits for it.
            raise missing_parent(event, self.target)
        body = self.body(event.payload, hipe_id(context.parent.target_id))
        if existing is None:
            # HIPE keeps no unique externalId: wait out a create that may still land.
            with context.create_in_doubt(self.create_window_s):
                created = self.client.create_contact(body)
            return ApplyResult("created", target_id=str(created.id))
        action = "updated"
        if existing.archived:
            self.client.unarchive_contact(existing.id)
            action = "unarchived"
        updated = self.client.update_contact(existing.id, body)
        return ApplyResult(action, target_id=str(updated.id))  # type: ignore[arg-type]

    def _deactivate(
        self, event: ChangeEvent, context: ApplyContext, existing: HipeContact | None
    ) -> ApplyResult:
        """A person deactivated (its fields follow) or deleted in the ERP: archived."""
        if existing is None:
            if event.operation == "delete":
                return ApplyResult("deleted", deleted=True)  # HIPE never had it
            # HIPE mirrors every ERP person, inactive ones archived (as companies)
            employer = self._employer_if_known(event, context)
            if employer is None:
                raise missing_parent(event, self.target)
            with context.create_in_doubt(self.create_window_s):
                created = self.client.create_contact(self.body(event.payload, employer))
            self.client.archive_contact(created.id)
            return ApplyResult("archived", target_id=str(created.id), deleted=True)
        try:
            if event.operation == "upsert":
                employer = self._employer_if_known(event, context)
                body = self.body(event.payload, employer, linked=employer is not None)
                self.client.update_contact(existing.id, body)
            if not existing.archived:
                self.client.archive_contact(existing.id)
        except RecordMissingError:
            return ApplyResult("deleted", deleted=True)
        return ApplyResult("archived", target_id=str(existing.id), deleted=True)

    # -- views for reconcile -------------------------------------------------------------
    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What HIPE should show for a canonical person, from the body the sink sends."""
        values = self.body(payload, None, linked=False).model_dump(by_alias=False)
        fields: dict[str, Any] = {name: values[attr] for attr, name in VIEW_FIELDS.items()}
        fields["employer_key"] = payload.get("employer_key")
        fields["active"] = bool(payload.get("active", True))
        return view(fields)

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every HIPE contact with an external id, page by page; ``employer_key`` is the
        external id of the company it collaborates with (one search a page for the
        companies not remembered)."""
        employers: OrderedDict[HipeId, str] = OrderedDict()
        for page in self.client.iter_contact_pages():
            needed = {cid for contact in page for cid in contact.collaboration_ids}
            missing = needed - employers.keys()
            for company in self.client.companies_by_ids(missing):
                employers[company.id] = company.external_id or f"(HIPE company {company.id})"
            named = {cid: employers.get(cid, f"(HIPE company {cid}, not found)") for cid in needed}
            while len(employers) > EMPLOYER_CACHE_SIZE:
                employers.popitem(last=False)
            for contact in page:
                if contact.external_id:
                    yield Observed(contact.external_id, str(contact.id), self._view(contact, named))

    @staticmethod
    def _view(contact: HipeContact, employers: Mapping[HipeId, str]) -> View:
        fields: dict[str, Any] = {name: getattr(contact, a) for a, name in VIEW_FIELDS.items()}
        fields["employer_key"] = _employer_view([employers[c] for c in contact.collaboration_ids])
        fields["active"] = not contact.archived
        return view(fields)

    def known_limits(self, entity: str) -> list[str]:
        """HIPE's documented API writes and clears every field the sink sends."""
        return []

    def close(self) -> None:
        self.http.close()
