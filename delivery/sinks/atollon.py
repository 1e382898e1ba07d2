"""ERP customers → Atollon company contacts, ERP products → Atollon products.

Every write states the record's whole content, so that a value removed in the ERP is
removed in Atollon: the crawler documents lists and text fields but no update semantics,
and erpsync reads them as docs/sandbox-conventions.md writes down (a list that is sent
replaces the stored one, ``[]`` empties it; ``""`` empties a text, ``null`` a number).

What Atollon's crawler documents no way to express is written once, here
(:data:`KNOWN_LIMITS`; ``adapters.atollon.known_limits`` words it for ``erpsync doctor``)
and reported by reconcile:

* a deactivation: the crawler has no delete, and ``contactGroup`` *assigns* a contact to a
  group with no documented way to take it out again. By default (``deactivation =
  "none"``) a deactivated customer's contact keeps following its fields and nothing marks
  it inactive; with ``deactivation = "group"`` it is assigned to the ``Inactive`` group,
  which a reactivation cannot undo.
* a customer deleted in the ERP (its record is gone): there is nothing to send (a contact
  needs its company name), so the contact stays as it was. A deleted *product* becomes
  ``Inactive`` (the documented status; found by its externalId, the rest kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from adapters.atollon import (
    AtollonAddress,
    AtollonClient,
    AtollonCompany,
    AtollonCompanyRelation,
    AtollonContact,
    AtollonContactFolder,
    AtollonContactGroup,
    AtollonContactInfo,
    AtollonContactInput,
    AtollonContacts,
    AtollonProduct,
    AtollonProductInput,
    ExternalId,
    external_id_for,
)
from delivery.engine import Action, ApplyContext, ApplyResult
from delivery.sinks.view import Observed, View, view
from erpsync.errors import ErrorClass, PermanentError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, resolve
from erpsync.models import Address, Company, Product
from erpsync.settings import AtollonSettings

#: with ``deactivation = "group"``, a deactivated contact is assigned to this group
INACTIVE_GROUP = "Inactive"
PARENT_RELATION = "Mother company"
ACTIVE, INACTIVE = "Active", "Inactive"
#: the code of a delivery Atollon merged into another customer's contact (by name)
MERGED_CONTACT = "merged-contact"

#: view fields Atollon's crawler documents no way to keep equal (``adapters.atollon.
#: known_limits`` says why, for ``erpsync doctor``): a deactivation cannot be undone
KNOWN_LIMITS: dict[str, tuple[str, ...]] = {"customer": ("active",), "product": ()}

#: the address fields, canonical name -> Atollon name
_ADDRESS = (
    ("line1", "street"),
    ("city", "city"),
    ("region", "region"),
    ("postal_code", "zip"),
    ("country", "country"),
)


def _one(values: Sequence[str | None]) -> Any:
    """One value, None for none, the list itself when there are several (never equal)."""
    present = [value for value in values if value is not None and value.strip()]
    if len(present) > 1:
        return present
    return present[0] if present else None


def _contact_view(
    *,
    name: str | None,
    emails: Sequence[str | None],
    phones: Sequence[str | None],
    vat: str | None,
    parents: Sequence[str | None],
    address: Mapping[str, str | None] | None,
    active: bool,
    folder: tuple[str, str | None] | None,
) -> View:
    fields: dict[str, Any] = {
        "name": name,
        "email": _one(emails),
        "phone": _one(phones),
        "tax_number": vat,
        "parent_key": _one(parents),
        "active": active,
    }
    for canonical, atollon in _ADDRESS:
        fields[f"address.{canonical}"] = (address or {}).get(atollon)
    if folder is not None:  # (the view field, the folder's category or None)
        fields[folder[0]] = folder[1]
    return view(fields)


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

    # -- what is sent ---------------------------------------------------------------------

    def contact_input(self, payload: Mapping[str, Any]) -> AtollonContactInput:
        """The whole contact of a canonical customer, absences included."""
        company = Company.model_validate(payload)
        system = self.settings.erp_system
        relations = (
            [AtollonCompanyRelation.to_parent(system, company.parent_key, PARENT_RELATION)]
            if company.parent_key
            else []
        )
        addresses: list[AtollonAddress] = []
        if company.address is not None and any(company.address.model_dump().values()):
            a: Address = company.address
            addresses.append(
                AtollonAddress(
                    street=a.line1 or "",
                    city=a.city or "",
                    zip=a.postal_code or "",
                    region=a.region or "",
                    country=a.country or "",
                )
            )
        fields: dict[str, Any] = {
            "company": AtollonCompany(
                company_name=company.name, company_company_relation=relations
            ),
            "address": addresses,
            "contacts": AtollonContacts(
                email=[AtollonContactInfo(contact=company.email)] if company.email else [],
                phone=[AtollonContactInfo(contact=company.phone)] if company.phone else [],
            ),
            "external_id": [ExternalId(system=system, id=company.key)],
            "vat_no": company.tax_number or "",
            "source": "erpsync",
        }
        if self.settings.deactivation == "group" and not company.active:
            # assigned only: the crawler documents no way to take it out again
            fields["contact_group"] = [AtollonContactGroup(name=INACTIVE_GROUP)]
        category = self.settings.client_folder_category.strip()
        if category:
            # "If contactFolderCategory is not filled-in, the contact folder is not
            # created": sent every time, Atollon finds the folder again by its category
            fields["contact_folder"] = [AtollonContactFolder(category=category)]
        return AtollonContactInput.model_validate(fields)

    def product_input(self, payload: Mapping[str, Any]) -> AtollonProductInput:
        """The whole product of a canonical product, absences included: currency, VAT rate
        and units from their canonical fields, or the paths the mapping's ``fields`` name
        (``vat_rate = "custom.taxe"``); a value removed in the ERP is sent as ``""``."""
        product = Product.model_validate(payload)
        mapping = self.mappings.get("product", TargetMapping())

        def text_of(name: str) -> str:
            value = resolve(payload, mapping.fields.get(name, name))
            return "" if value is None else str(value).strip()

        return AtollonProductInput.model_validate(
            {
                "name": product.name,
                "ref_id": product.key,
                "description": product.name,
                "type_name": "Product",
                "unit_price": product.price,  # None is sent as null: the price is emptied
                "unit_price_currency_name": text_of("currency"),
                "vat_rate_name": text_of("vat_rate"),
                "units_name": text_of("units"),
                "status_name": ACTIVE if product.active else INACTIVE,
                "external_id": [ExternalId(system=self.settings.erp_system, id=product.key)],
            }
        )

    def retired_product(self, key: str) -> AtollonProductInput:
        """A product deleted in the ERP: ``Inactive``, the documented status, found by its
        externalId and otherwise kept as it was (a re-created product is sent whole again)."""
        return AtollonProductInput.model_validate(
            {
                "status_name": INACTIVE,
                "external_id": [ExternalId(system=self.settings.erp_system, id=key)],
            }
        )

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        if event.operation == "delete":
            target_id = context.ledger.target_id if context.ledger is not None else None
            if event.entity == "product" and target_id is not None:
                # It can no longer be sold: Inactive (reconcile would call it orphaned).
                product = self.client.upsert_product(self.retired_product(event.key))
                return ApplyResult("archived", target_id=product.product_id, deleted=True)
            # A customer gone from the ERP: nothing can be sent (a contact needs its name),
            # so Atollon keeps the contact as it was (a known limit); a product never
            # written there has nothing to retire.
            return ApplyResult("unchanged", target_id=target_id, deleted=True)
        action: Action = "created" if context.ledger is None else "updated"
        if event.entity == "product":
            product = self.client.upsert_product(self.product_input(event.payload))
            return ApplyResult(action, target_id=product.product_id)
        contact = self.client.upsert_contact(self.contact_input(event.payload))
        self._guard_merge(event, context, contact.contact_id)
        if self.settings.deactivation == "group" and not event.payload.get("active", True):
            return ApplyResult("archived", target_id=contact.contact_id, deleted=True)
        return ApplyResult(action, target_id=contact.contact_id)

    def _guard_merge(self, event: ChangeEvent, context: ApplyContext, contact_id: str) -> None:
        """Atollon matches a company "by name" when it does not know the external id: a
        contact id already answered for another customer means two ERP customers now share
        one Atollon contact. Never recorded as applied (the other customer's ledger and
        every other record stay as they are): dead-lettered for an operator."""
        other = context.claim(event.entity, contact_id)
        if other is None:
            return
        raise PermanentError(
            f"atollon answered {event.key} with contact {contact_id}, "
            f"which is customer {other}'s: two ERP customers merged into one contact",
            system=self.target,
            operation="upsert_contact",
            vendor_code=MERGED_CONTACT,
            hint=(
                f"Atollon matched {event.key} to {other}'s contact by company name; give the "
                "two customers distinct names in the ERP (or split the contact in Atollon), "
                f"then check {other}'s contact and replay"
            ),
        )

    # -- views for reconcile ----------------------------------------------------------------

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What Atollon should show for a canonical record, from the body the sink sends."""
        active = bool(payload.get("active", True))
        if entity == "product":
            return self._product_view(self.product_input(payload))
        body = self.contact_input(payload)
        address = body.address[0].model_dump() if body.address else None
        relations = body.company.company_company_relation if body.company else None
        return _contact_view(
            name=body.company.company_name if body.company else None,
            emails=[info.contact for info in (body.contacts.email or [])] if body.contacts else [],
            phones=[info.contact for info in (body.contacts.phone or [])] if body.contacts else [],
            vat=body.vat_no,
            parents=[
                external_id_for(relation.company_external_id, self.settings.erp_system)
                for relation in relations or []
            ],
            address=address,
            active=active,
            folder=self._folder(body.contact_folder[0].category if body.contact_folder else None),
        )

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every Atollon contact (product) carrying one of our ERP keys, page by page.

        The read is NOT documented by Atollon (docs/sandbox-conventions.md); an Atollon
        that refuses it raises :class:`~erpsync.errors.ReadUnsupportedError`.
        """
        system = self.settings.erp_system
        if entity == "product":
            for product in self.client.iter_products():
                key = product.external_id_for(system)
                if key is not None:
                    yield Observed(key, str(product.product_id), self._product_view(product))
            return
        for contact in self.client.iter_contacts():
            key = contact.external_id_for(system)
            if key is not None:
                yield Observed(key, str(contact.contact_id), self._observed_contact(contact))

    def known_limits(self, entity: str) -> list[str]:
        """View fields Atollon's crawler documents no way to keep equal (never drift)."""
        return list(KNOWN_LIMITS.get(entity, ()))

    def _observed_contact(self, contact: AtollonContact) -> View:
        company = contact.company
        person = contact.person
        if company is not None and company.company_name:
            name: str | None = company.company_name
        elif person is not None:
            name = " ".join(p for p in (person.last_name, person.first_name) if p) or None
        else:
            name = None
        channels = contact.contacts
        groups = {group.name for group in contact.contact_group}
        return _contact_view(
            name=name,
            emails=[entry.contact for entry in channels.email] if channels else [],
            phones=[entry.contact for entry in channels.phone] if channels else [],
            vat=contact.vat_no,
            parents=[
                external_id_for(relation.company_external_id, self.settings.erp_system)
                for relation in (company.company_company_relation if company else [])
            ],
            address=contact.address[0].model_dump() if contact.address else None,
            # by default Atollon shows no deactivation: the contact reads as active
            active=self.settings.deactivation != "group" or INACTIVE_GROUP not in groups,
            folder=self._folder(self._category if contact.has_folder(self._category) else None),
        )

    @property
    def _category(self) -> str:
        return self.settings.client_folder_category.strip()

    def _folder(self, category: str | None) -> tuple[str, str | None] | None:
        """The client folder's view field (``client_folder``: its category when the
        contact has it), or None when no folder category is configured."""
        if not self._category:
            return None
        return "client_folder", category

    @staticmethod
    def _product_view(product: AtollonProductInput | AtollonProduct) -> View:
        price = product.unit_price
        return view(
            {
                "name": product.name,
                "price": None if price is None else float(price),
                "currency": product.unit_price_currency_name,
                "vat_rate": product.vat_rate_name,
                "units": product.units_name,
                "active": (product.status_name or ACTIVE) == ACTIVE,
            }
        )

    def close(self) -> None:
        self.http.close()
