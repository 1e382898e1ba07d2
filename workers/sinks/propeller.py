"""ERP customers → Propeller companies, by ``sourceId`` + ``source`` + ``language``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import httpx

from adapters.propeller import PropellerClient, PropellerCompany, PropellerCompanyInput
from adapters.propeller.models import PropellerCompanyRef
from erpsync.errors import ErrorClass, RecordExistsError, RecordMissingError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, resolve
from erpsync.models import Company
from erpsync.settings import PropellerSettings
from workers.batch import BulkItemResult
from workers.engine import ApplyContext, ApplyResult


class PropellerSink:
    """Creates, updates and deletes (recycle bin) Propeller companies; bulk upserts loads.

    In bulk (:mod:`workers.batch`), active companies are upserted by ``sourceId`` in one
    ``POST /companies/bulk/sourceId``; Propeller applies the items in order, so a parent
    earlier in the call exists for a child later in it. Deletions take the single path
    (there is no bulk delete).
    """

    target = "propeller"

    def __init__(
        self,
        settings: PropellerSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.client = PropellerClient(http, settings, error_overrides=overrides)

    def handles(self, entity: str) -> bool:
        return entity == "customer" and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.operation == "upsert" and bool(event.payload.get("active", True))

    def company_input(self, event: ChangeEvent) -> PropellerCompanyInput:
        """The Propeller body for a canonical company (flat source/sourceId)."""
        company = Company.model_validate(event.payload)
        mapping = self.mappings.get("customer", TargetMapping())
        fields: dict[str, object] = {
            "name": company.name,
            "tax_number": company.tax_number,
            "email": company.email,
            "phone": company.phone,
        }
        for field, path in mapping.fields.items():
            fields[field] = resolve(event.payload, path)
        parent = (
            PropellerCompanyRef(source_id=company.parent_key, source=self.settings.source)
            if company.parent_key
            else None
        )
        return PropellerCompanyInput.model_validate(
            {
                "source_id": company.key,
                "source": self.settings.source,
                "language": self.settings.language,
                "parent": parent,
                **fields,
            }
        )

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        key = event.key
        if event.operation == "delete" or not event.payload.get("active", True):
            with contextlib.suppress(RecordMissingError):  # already gone: the goal is reached
                self.client.delete_company(key)
            return ApplyResult("deleted", deleted=True)

        body = self.company_input(event)
        company: PropellerCompany
        known = context.ledger is not None and not context.ledger.deleted
        if known:
            try:
                company = self.client.update_company(key, body)
                action = "updated"
            except RecordMissingError:
                company = self.client.create_company(body)
                action = "created"
        else:
            try:
                company = self.client.create_company(body)
                action = "created"
            except RecordExistsError:
                company = self.client.update_company(key, body)
                action = "updated"
        return ApplyResult(action, target_id=str(company.id))  # type: ignore[arg-type]

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> PropellerCompanyInput | None:
        """The bulk item of an active company's upsert; None for a deletion."""
        if event.operation == "delete" or not event.payload.get("active", True):
            return None
        return self.company_input(event)

    def apply_bulk(
        self, items: Sequence[PropellerCompanyInput], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        """One bulk upsert; each item's outcome (created/updated with its id, or its error)."""
        results: list[BulkItemResult] = []
        for outcome in self.client.upsert_companies_bulk(items):
            if outcome.error is not None:
                results.append(outcome.error)
                continue
            target_id = str(outcome.id) if outcome.id is not None else None
            if outcome.action == "create":
                results.append(ApplyResult("created", target_id=target_id))
            else:
                results.append(ApplyResult("updated", target_id=target_id))
        return results

    def close(self) -> None:
        self.http.close()
