"""OnlineERP records as pydantic models: Python names in, the vendor's French names on the wire.

Every model reads and writes the ERP's own field names (``NoClient``, ``Référence``…)
through aliases and accepts the Python names too. Fields the ERP sends that are not
declared here are kept (``extra="allow"``) and sent back unchanged on update, so that the
flows can map custom fields without a code change.

Money and quantities are :class:`~decimal.Decimal` in Python (no binary rounding when
invoices are summed) and JSON numbers on the wire, as the ERP expects.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

#: a decimal amount written as a JSON number
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class _ErpModel(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def to_erp(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """The JSON body the ERP expects (its field names, numbers as numbers)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


class ErpAddress(_ErpModel):
    """A customer's address (``Adresse``)."""

    line1: str | None = Field(default=None, alias="Ligne1")
    city: str | None = Field(default=None, alias="Ville")
    province: str | None = Field(default=None, alias="Province")
    postal_code: str | None = Field(default=None, alias="CodePostal")
    country: str | None = Field(default=None, alias="Pays")


class ErpDeliveryAddress(ErpAddress):
    """One of a customer's delivery addresses (``AdressesLivraison[]``), keyed by its code
    (``CodeAdresse``; the sandbox's names, docs/sandbox-conventions.md)."""

    code: str = Field(alias="CodeAdresse", min_length=1)


class ErpCustomer(_ErpModel):
    """An ERP customer (entity ``Customer``, key ``NoClient``)."""

    number: str = Field(alias="NoClient", min_length=1)
    name: str = Field(alias="NomClient")
    parent_number: str | None = Field(default=None, alias="NoClientParent")
    email: str | None = Field(default=None, alias="Courriel")
    phone: str | None = Field(default=None, alias="Telephone")
    address: ErpAddress | None = Field(default=None, alias="Adresse")
    delivery_addresses: list[ErpDeliveryAddress] | None = Field(
        default=None, alias="AdressesLivraison"
    )
    gst_number: str | None = Field(default=None, alias="NoTPS")
    language: str | None = Field(default=None, alias="Langue")
    active: bool = Field(default=True, alias="EstActif")

    def to_erp(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """The body the ERP expects; delivery addresses only when read or set (a PUT
        without them keeps the ERP's, a ``null`` would erase them)."""
        body = super().to_erp(exclude_none=exclude_none)
        if self.delivery_addresses is None:
            body.pop("AdressesLivraison", None)
        return body


class ErpContact(_ErpModel):
    """A person of an ERP customer (entity ``Contact``, key ``NoContact``; the ERP's public
    pages do not document it: the sandbox's names, docs/sandbox-conventions.md)."""

    number: str = Field(alias="NoContact", min_length=1)
    customer_number: str = Field(alias="NoClient", min_length=1)
    first_name: str | None = Field(default=None, alias="Prenom")
    last_name: str | None = Field(default=None, alias="Nom")
    email: str | None = Field(default=None, alias="Courriel")
    phone: str | None = Field(default=None, alias="Telephone")
    mobile: str | None = Field(default=None, alias="Cellulaire")
    title: str | None = Field(default=None, alias="Titre")
    active: bool = Field(default=True, alias="EstActif")


class ErpProductGroup(_ErpModel):
    """A product's group (``GroupeProduit``)."""

    code: str | None = Field(default=None, alias="CodeGroupe")


class ErpProduct(_ErpModel):
    """An ERP product (entity ``Product``, key ``NoProduit``)."""

    number: str = Field(alias="NoProduit", min_length=1)
    description: str = Field(alias="Description")
    price: Amount | None = Field(default=None, alias="PrixVente")
    #: not on the ERP's public pages: the sandbox's names (docs/sandbox-conventions.md)
    currency: str | None = Field(default=None, alias="Devise")
    tax_code: str | None = Field(default=None, alias="CodeTaxe")
    unit: str | None = Field(default=None, alias="Unite")
    active: bool = Field(default=True, alias="EstActif")
    group: ErpProductGroup | None = Field(default=None, alias="GroupeProduit")


class ErpBillTo(_ErpModel):
    """Who the invoice is billed to (``InfoClientFacturerA``)."""

    customer_number: str = Field(alias="NoClient", min_length=1)


class ErpInvoiceLine(_ErpModel):
    """One invoice line (``LigneFacture``): a product line, or a text line."""

    product_number: str | None = Field(default=None, alias="strNoProduit")
    quantity: Amount | None = Field(default=None, alias="QteFacture")
    unit_price: Amount | None = Field(default=None, alias="PrixUnitaire")
    description: str | None = Field(default=None, alias="DescriptionLigne")
    # Set by the ERP on a stored invoice (docs/sandbox-conventions.md); never sent unless
    # the flow maps them as line custom fields.
    tax_rate: Amount | None = Field(default=None, alias="TauxTaxe")
    net_amount: Amount | None = Field(default=None, alias="MontantLigne")
    tax_amount: Amount | None = Field(default=None, alias="MontantTaxe")

    @model_validator(mode="after")
    def _product_or_text(self) -> ErpInvoiceLine:
        if not self.product_number and not self.description:
            raise ValueError("a line needs a product (strNoProduit) or a text (DescriptionLigne)")
        return self


class ErpInvoice(_ErpModel):
    """A customer invoice (``Facture``); ``reference`` (``Référence``) is its unique identity."""

    doc_type: str = Field(default="FACTURES", alias="TypeDoc")
    reference: str = Field(alias="Référence", min_length=1)
    description: str | None = Field(default=None, alias="Description")
    date: dt.date | None = Field(default=None, alias="DateFacture")
    bill_to: ErpBillTo = Field(alias="InfoClientFacturerA")
    lines: list[ErpInvoiceLine] = Field(default_factory=list, alias="LigneFacture")

    def product_numbers(self) -> list[str]:
        """The products the lines name (each must exist in the ERP)."""
        return [line.product_number for line in self.lines if line.product_number]


#: ``Statut`` of a stored invoice (docs/sandbox-conventions.md) -> the canonical state
INVOICE_STATES: dict[str, str] = {
    "Ouverte": "open",
    "PartiellementPayee": "partly_paid",
    "Payee": "paid",
    "Annulee": "cancelled",
}
#: the canonical invoice states, in their life's order
CANONICAL_INVOICE_STATES = ("open", "partly_paid", "paid", "cancelled")


class ErpInvoiceCreated(_ErpModel):
    """An invoice as the ERP stores it: its number ``NoFacture``, the ``Facture``, the totals
    and taxes the ERP computed, and its payment state."""

    number: str = Field(alias="NoFacture", min_length=1)
    invoice: ErpInvoice = Field(alias="Facture")
    total_before_taxes: Amount | None = Field(default=None, alias="TotalAvantTaxes")
    total_taxes: Amount | None = Field(default=None, alias="TotalTaxes")
    total_with_taxes: Amount | None = Field(default=None, alias="TotalAvecTaxes")
    status: str | None = Field(default=None, alias="Statut")
    amount_paid: Amount | None = Field(default=None, alias="MontantPaye")
    balance: Amount | None = Field(default=None, alias="SoldeDu")

    @property
    def state(self) -> str:
        """The canonical state (``open``, ``partly_paid``, ``paid``, ``cancelled``); an ERP
        without ``Statut`` shows an invoice as open; an unknown one is passed on as it is."""
        if self.status is None or not self.status.strip():
            return "open"
        return INVOICE_STATES.get(self.status.strip(), self.status.strip())

    @model_validator(mode="before")
    @classmethod
    def _hoist(cls, data: Any) -> Any:
        """Accept ``NoFacture``/``TotalAvantTaxes`` beside ``Facture`` or inside it.

        The conventions say the stored invoice "gets a number" and "carries a total" without
        saying at which level; both readings are accepted.
        """
        if not isinstance(data, dict):
            return data
        if "Facture" not in data and "invoice" not in data and "Référence" in data:
            data = {"Facture": data}
        facture = data.get("Facture")
        if isinstance(facture, dict):
            data = dict(data)
            for key in ("NoFacture", "TotalAvantTaxes", "TotalTaxes", "TotalAvecTaxes"):
                if key not in data and key in facture:
                    data[key] = facture[key]
        return data
