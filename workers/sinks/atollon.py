"""ERP customers → Atollon company contacts, ERP products → Atollon products."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters.atollon import (
    AtollonAddress,
    AtollonClient,
    AtollonCompany,
    AtollonCompanyRelation,
    AtollonContactGroup,
    AtollonContactInfo,
    AtollonContactInput,
    AtollonContacts,
    AtollonProductInput,
    ExternalId,
)
from erpsync.errors import ErrorClass
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.models import Company, Product
from erpsync.settings import AtollonSettings
from workers.engine import ApplyContext, ApplyResult

#: Atollon has no delete in its crawler: a deactivation puts the contact in this group
INACTIVE_GROUP = "Inactive"
PARENT_RELATION = "Mother company"
#: ledger ``extra`` while a deactivation is unconfirmed: Atollon may have applied it (a
#: timeout or a dropped connection after the write), so the next active change must send
#: the empty group list that takes the contact out of ``Inactive``
DEACTIVATING = '{"deactivating":true}'
#: ledger ``extra`` once an active contact is confirmed
CONFIRMED = "{}"


class AtollonSink:
    """Upserts Atollon contacts and products by ``externalId`` (unique per system)."""

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

    def handles(self, entity: str) -> bool:
        return entity in {"customer", "product"} and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.entity == "customer" and event.operation == "upsert"

    def contact_input(
        self, event: ChangeEvent, *, reactivated: bool = False
    ) -> AtollonContactInput:
        company = Company.model_validate(event.payload)
        system = self.settings.erp_system
        relations = (
            [AtollonCompanyRelation.to_parent(system, company.parent_key, PARENT_RELATION)]
            if company.parent_key
            else None
        )
        contacts = AtollonContacts(
            email=[AtollonContactInfo(contact=company.email)] if company.email else None,
            phone=[AtollonContactInfo(contact=company.phone)] if company.phone else None,
        )
        address = None
        if company.address is not None:
            a = company.address
            address = [
                AtollonAddress(
                    street=a.line1,
                    city=a.city,
                    zip=a.postal_code,
                    region=a.region,
                    country=a.country,
                )
            ]
        inactive = event.operation == "delete" or not company.active
        # Groups are replaced when sent and kept when omitted: a reactivated contact gets
        # an empty list so that it leaves the Inactive group.
        groups: list[AtollonContactGroup] | None = None
        if inactive:
            groups = [AtollonContactGroup(name=INACTIVE_GROUP)]
        elif reactivated:
            groups = []
        return AtollonContactInput.model_validate(
            {
                "company": AtollonCompany(
                    company_name=company.name, company_company_relation=relations
                ),
                "address": address,
                "contacts": contacts if (company.email or company.phone) else None,
                "external_id": [ExternalId(system=system, id=company.key)],
                "vat_no": company.tax_number,
                "contact_group": groups,
                "source": "erpsync",
            }
        )

    def product_input(self, event: ChangeEvent) -> AtollonProductInput:
        product = Product.model_validate(event.payload)
        inactive = event.operation == "delete" or not product.active
        return AtollonProductInput.model_validate(
            {
                "name": product.name,
                "ref_id": product.key,
                "description": product.name,
                "type_name": "Product",
                "unit_price": product.price,
                "unit_price_currency_name": product.currency,
                "status_name": "Inactive" if inactive else "Active",
                "external_id": [ExternalId(system=self.settings.erp_system, id=product.key)],
            }
        )

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        inactive = event.operation == "delete" or not event.payload.get("active", True)
        first = context.ledger is None
        extra = None
        if event.entity == "product":
            product = self.client.upsert_product(self.product_input(event))
            target_id = product.product_id
        else:
            ledger = context.ledger
            # Also for a contact with no ledger yet: a first write that deactivates may be
            # applied with its answer lost, and the create that follows would keep the group.
            if inactive and (ledger is None or not ledger.deleted):
                context.checkpoint(DEACTIVATING)
            maybe_inactive = ledger is not None and (ledger.deleted or ledger.extra == DEACTIVATING)
            reactivated = maybe_inactive and not inactive
            contact = self.client.upsert_contact(self.contact_input(event, reactivated=reactivated))
            target_id = contact.contact_id
            extra = None if inactive else CONFIRMED
        if inactive:
            return ApplyResult("archived", target_id=target_id, deleted=True)
        return ApplyResult("created" if first else "updated", target_id=target_id, extra=extra)

    def close(self) -> None:
        self.http.close()
