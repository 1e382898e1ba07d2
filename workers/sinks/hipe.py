"""ERP customers → HIPE companies, matched on ``externalId`` (never on name)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters.hipe import HipeClient, HipeCompany, HipeCompanyInput
from erpsync.errors import ErrorClass, RecordMissingError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, apply_custom, resolve
from erpsync.models import Company
from erpsync.settings import HipeSettings
from workers.engine import ApplyContext, ApplyResult


class HipeSink:
    """Creates, patches, archives and unarchives HIPE companies.

    HIPE does not enforce unique ``externalId``: two concurrent creates would make a
    duplicate. The engine's per-record lock serialises events of one record, the ledger
    remembers HIPE's id after the first create, and a lookup by ``externalId`` (several
    hits = ambiguity, dead-lettered) guards the create when the ledger does not know it.
    """

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

    def handles(self, entity: str) -> bool:
        return entity == "customer" and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.operation == "upsert" and bool(event.payload.get("active", True))

    def company_input(self, event: ChangeEvent, parent_id: int | None) -> HipeCompanyInput:
        company = Company.model_validate(event.payload)
        mapping = self.mappings.get("customer", TargetMapping())
        fields: dict[str, object] = {
            "name": company.name,
            "external_id": company.key,
            "parent_id": parent_id,
            "email": company.email,
            "phone": company.phone,
            "vat": company.tax_number,
        }
        for field, path in mapping.fields.items():
            fields[field] = resolve(event.payload, path)
        custom = apply_custom(mapping, event.payload)
        if custom:
            fields["custom_fields"] = custom
        return HipeCompanyInput.model_validate(fields)

    def _existing(self, key: str, context: ApplyContext) -> HipeCompany | None:
        if context.ledger is not None and context.ledger.target_id:
            found = self.client.get_company(int(context.ledger.target_id))
            if found is not None:
                return found
        return self.client.find_company(key)

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        existing = self._existing(event.key, context)
        if event.operation == "delete" or not event.payload.get("active", True):
            if existing is None:
                return ApplyResult("deleted", deleted=True)
            if not existing.archived:
                try:
                    self.client.archive_company(existing.id)
                except RecordMissingError:
                    return ApplyResult("deleted", deleted=True)
            return ApplyResult("archived", target_id=str(existing.id), deleted=True)

        parent_id = None
        if context.parent is not None and context.parent.target_id:
            parent_id = int(context.parent.target_id)
        body = self.company_input(event, parent_id)
        if existing is None:
            created = self.client.create_company(body)
            return ApplyResult("created", target_id=str(created.id))
        action = "updated"
        if existing.archived:
            self.client.unarchive_company(existing.id)
            action = "unarchived"
        updated = self.client.update_company(existing.id, body)
        return ApplyResult(action, target_id=str(updated.id))  # type: ignore[arg-type]

    def close(self) -> None:
        self.http.close()
