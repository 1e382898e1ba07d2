"""Validation of OnlineERP request bodies into stored records.

Documented fields are type-checked and stored in a stable order with defaults; fields the
documentation does not name are kept as given (a real ERP holds many more, and users map
custom fields). A body that does not fit raises :class:`BodyError`, answered as **400**
``InvalidBody``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CUSTOMER_FIELDS = (
    "NoClient",
    "NomClient",
    "NoClientParent",
    "Courriel",
    "Telephone",
    "Adresse",
    "NoTPS",
    "Langue",
    "EstActif",
)
#: a customer's person (``Contact``): the ERP's public pages document no such entity, these
#: are the sandbox's names (docs/sandbox-conventions.md)
CONTACT_FIELDS = (
    "NoContact",
    "NoClient",
    "Prenom",
    "Nom",
    "Courriel",
    "Telephone",
    "Cellulaire",
    "Titre",
    "EstActif",
)
ADDRESS_FIELDS = ("Ligne1", "Ville", "Province", "CodePostal", "Pays")
#: a delivery address (``AdressesLivraison[]``; sandbox conventions): its code, then the
#: fields of an address
DELIVERY_FIELDS = ("CodeAdresse", *ADDRESS_FIELDS)
#: ``Devise``, ``CodeTaxe`` and ``Unite`` (currency, tax code, unit of sale) are the
#: sandbox's names for fields the ERP's public pages do not list (docs/sandbox-conventions.md)
PRODUCT_FIELDS = (
    "NoProduit",
    "Description",
    "PrixVente",
    "Devise",
    "CodeTaxe",
    "Unite",
    "EstActif",
    "GroupeProduit",
)
INVOICE_FIELDS = (
    "NoFacture",
    "Facture",
    "TotalAvantTaxes",
    "TotalTaxes",
    "TotalAvecTaxes",
    "Statut",
    "MontantPaye",
    "SoldeDu",
)
FACTURE_FIELDS = (
    "NoFacture",
    "TypeDoc",
    "Référence",
    "Description",
    "DateFacture",
    "InfoClientFacturerA",
    "LigneFacture",
    "TotalAvantTaxes",
    "TotalTaxes",
    "TotalAvecTaxes",
)
#: the transaction types of the documented ``Facture`` payload (Acomba mapping page)
TYPE_DOCS = frozenset({"FACTURES", "COMMANDES", "SOUMISSIONS", "ACHATS"})
#: the tax rate (percent) of a product line that names none: Québec's TPS 5 % + TVQ 9.975 %
#: (the ERP taxes by its own setup; docs/sandbox-conventions.md)
DEFAULT_TAX_RATE = 14.975
#: the states of a stored invoice (``Statut``; docs/sandbox-conventions.md)
OPEN = "Ouverte"
PARTLY_PAID = "PartiellementPayee"
PAID = "Payee"
CANCELLED = "Annulee"
INVOICE_STATES = (OPEN, PARTLY_PAID, PAID, CANCELLED)


class BodyError(ValueError):
    """A request body that is not a valid record (answered as 400 ``InvalidBody``)."""


def require_object(body: Any, what: str) -> dict[str, Any]:
    """``body`` as a JSON object, or a :class:`BodyError`."""
    if not isinstance(body, dict):
        raise BodyError(f"The body of a {what} must be a JSON object.")
    return body


def key(value: Any, where: str) -> str:
    """A record key: non-empty text without ``/`` (keys travel in URL paths)."""
    if not isinstance(value, str) or not value.strip():
        raise BodyError(f"{where} is required and must be non-empty text.")
    if "/" in value or value != value.strip():
        raise BodyError(f"{where} must not contain '/' nor start or end with spaces.")
    return value


def same_key(changes: Mapping[str, Any], key_field: str, key: str, entity: str) -> None:
    """An update may repeat the record's key but not change it."""
    if key_field in changes and changes[key_field] != key:
        raise BodyError(f"{entity}.{key_field} cannot be changed by PUT.")


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        kind = "non-empty text" if required else "text or null"
        raise BodyError(f"{where} must be {kind}.")
    return value


def _number(value: Any, where: str, *, nullable: bool = False) -> float | int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BodyError(f"{where} must be a number.")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BodyError(f"{where} must be true or false.")
    return value


def money(value: float) -> float:
    """An amount rounded to the cent, half up, as accounting software rounds."""
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _ordered(
    fields: tuple[str, ...], checked: Mapping[str, Any], body: Mapping[str, Any]
) -> dict[str, Any]:
    record = {name: checked[name] for name in fields if name in checked}
    record.update((name, value) for name, value in body.items() if name not in checked)
    return record


def customer(body: Mapping[str, Any]) -> dict[str, Any]:
    """A complete ``Customer`` from a create body or a merged update."""
    no_client = key(body.get("NoClient"), "Customer.NoClient")
    parent = _text(body.get("NoClientParent"), "Customer.NoClientParent")
    if parent is not None and (not parent.strip() or parent == no_client):
        raise BodyError("Customer.NoClientParent must name another customer, or be null.")
    address = body.get("Adresse")
    if address is not None and not isinstance(address, dict):
        raise BodyError("Customer.Adresse must be an object or null.")
    checked_address: dict[str, Any] = {}
    for name in ADDRESS_FIELDS:
        checked_address[name] = _text((address or {}).get(name), f"Customer.Adresse.{name}")
    checked: dict[str, Any] = {
        "NoClient": no_client,
        "NomClient": _text(body.get("NomClient"), "Customer.NomClient", required=True),
        "NoClientParent": parent,
        "Courriel": _text(body.get("Courriel"), "Customer.Courriel"),
        "Telephone": _text(body.get("Telephone"), "Customer.Telephone"),
        "Adresse": _ordered(ADDRESS_FIELDS, checked_address, address or {}),
        "NoTPS": _text(body.get("NoTPS"), "Customer.NoTPS"),
        "Langue": _text(body.get("Langue"), "Customer.Langue"),
        "EstActif": _bool(body.get("EstActif", True), "Customer.EstActif"),
    }
    if "AdressesLivraison" in body:
        checked["AdressesLivraison"] = _delivery_addresses(body["AdressesLivraison"])
        return _ordered((*CUSTOMER_FIELDS, "AdressesLivraison"), checked, body)
    return _ordered(CUSTOMER_FIELDS, checked, body)


def _delivery_addresses(value: Any) -> list[dict[str, Any]] | None:
    """``AdressesLivraison``: null or a list of addresses, each with a code of its own."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise BodyError("Customer.AdressesLivraison must be a list or null.")
    found: list[dict[str, Any]] = []
    codes: set[str] = set()
    for index, item in enumerate(value):
        where = f"Customer.AdressesLivraison[{index}]"
        if not isinstance(item, dict):
            raise BodyError(f"{where} must be an object.")
        code = key(item.get("CodeAdresse"), f"{where}.CodeAdresse")
        if code in codes:
            raise BodyError(f"{where}.CodeAdresse {code!r} is used twice.")
        codes.add(code)
        checked: dict[str, Any] = {"CodeAdresse": code}
        for name in ADDRESS_FIELDS:
            checked[name] = _text(item.get(name), f"{where}.{name}")
        found.append(_ordered(DELIVERY_FIELDS, checked, item))
    return found


def contact(body: Mapping[str, Any]) -> dict[str, Any]:
    """A complete ``Contact`` from a create body or a merged update (its customer's
    existence is checked by the simulator, which holds the customers)."""
    checked: dict[str, Any] = {
        "NoContact": key(body.get("NoContact"), "Contact.NoContact"),
        "NoClient": key(body.get("NoClient"), "Contact.NoClient"),
    }
    checked["Prenom"] = _text(body.get("Prenom"), "Contact.Prenom")
    checked["Nom"] = _text(body.get("Nom"), "Contact.Nom", required=True)
    for name in ("Courriel", "Telephone", "Cellulaire", "Titre"):
        checked[name] = _text(body.get(name), f"Contact.{name}")
    checked["EstActif"] = _bool(body.get("EstActif", True), "Contact.EstActif")
    return _ordered(CONTACT_FIELDS, checked, body)


def product(body: Mapping[str, Any]) -> dict[str, Any]:
    """A complete ``Product`` from a create body or a merged update."""
    group = body.get("GroupeProduit")
    if group is not None and not isinstance(group, dict):
        raise BodyError("Product.GroupeProduit must be an object or null.")
    checked_group = {
        "CodeGroupe": _text((group or {}).get("CodeGroupe"), "Product.GroupeProduit.CodeGroupe")
    }
    checked: dict[str, Any] = {
        "NoProduit": key(body.get("NoProduit"), "Product.NoProduit"),
        "Description": _text(body.get("Description"), "Product.Description", required=True),
        "PrixVente": _number(body.get("PrixVente", 0.0), "Product.PrixVente"),
        "Devise": _text(body.get("Devise"), "Product.Devise"),
        "CodeTaxe": _text(body.get("CodeTaxe"), "Product.CodeTaxe"),
        "Unite": _text(body.get("Unite"), "Product.Unite"),
        "EstActif": _bool(body.get("EstActif", True), "Product.EstActif"),
        "GroupeProduit": _ordered(("CodeGroupe",), checked_group, group or {}),
    }
    return _ordered(PRODUCT_FIELDS, checked, body)


def invoice(
    body: Any,
    *,
    number: str,
    product_price: Callable[[str], float | int | None],
    customer_exists: Callable[[str], bool],
    today: dt.date,
) -> dict[str, Any]:
    """A stored ``CustomerInvoice`` from a ``{"Facture": {...}}`` body.

    ``product_price`` gives a product's ``PrixVente`` (None: no such product); lines without
    ``PrixUnitaire`` take it. ``number`` is the ``NoFacture`` the ERP assigns.
    """
    facture = require_object(require_object(body, "CustomerInvoice").get("Facture"), "Facture")
    reference = reference_of(body)
    type_doc = facture.get("TypeDoc", "FACTURES")
    if not isinstance(type_doc, str) or type_doc not in TYPE_DOCS:
        raise BodyError(f"Facture.TypeDoc must be one of {', '.join(sorted(TYPE_DOCS))}.")
    date = _text(facture.get("DateFacture"), "Facture.DateFacture")
    if date is None:
        date = today.isoformat()
    else:
        try:
            dt.datetime.fromisoformat(date)
        except ValueError:
            raise BodyError("Facture.DateFacture must be an ISO 8601 date.") from None
    bill_to = require_object(facture.get("InfoClientFacturerA"), "Facture.InfoClientFacturerA")
    no_client = key(bill_to.get("NoClient"), "Facture.InfoClientFacturerA.NoClient")
    lines = facture.get("LigneFacture")
    if not isinstance(lines, list) or not lines:
        raise BodyError("Facture.LigneFacture must be a non-empty list of lines.")
    stored_lines = [_line(line, index, product_price) for index, line in enumerate(lines)]
    if not customer_exists(no_client):
        raise BodyError(
            f"The customer '{no_client}' (InfoClientFacturerA.NoClient) does not exist."
        )
    total = money(sum(line.get("MontantLigne", 0) for line in stored_lines))
    taxes = money(sum(line.get("MontantTaxe", 0) for line in stored_lines))
    with_taxes = money(total + taxes)
    checked: dict[str, Any] = {
        "NoFacture": number,
        "TypeDoc": type_doc,
        "Référence": reference,
        "Description": _text(facture.get("Description"), "Facture.Description"),
        "DateFacture": date,
        "InfoClientFacturerA": bill_to,
        "LigneFacture": stored_lines,
        "TotalAvantTaxes": total,
        "TotalTaxes": taxes,
        "TotalAvecTaxes": with_taxes,
    }
    stored_facture = _ordered(FACTURE_FIELDS, checked, facture)
    return {
        "NoFacture": number,
        "Facture": stored_facture,
        "TotalAvantTaxes": total,
        "TotalTaxes": taxes,
        "TotalAvecTaxes": with_taxes,
        "Statut": OPEN,
        "MontantPaye": 0,
        "SoldeDu": with_taxes,
    }


def paid(record: dict[str, Any], amount: Any) -> dict[str, Any]:
    """The stored invoice after a payment of ``amount`` (None: the whole balance)."""
    if record.get("Statut") == CANCELLED:
        raise BodyError(f"The invoice {record['NoFacture']} is cancelled: it cannot be paid.")
    balance = record.get("SoldeDu", 0)
    value = balance if amount is None else _number(amount, "Montant")
    if value is None or value <= 0:
        raise BodyError("Montant must be a positive number.")
    paid_total = money(record.get("MontantPaye", 0) + value)
    left = money(record.get("TotalAvecTaxes", 0) - paid_total)
    state = PAID if left <= 0 else PARTLY_PAID
    return {**record, "Statut": state, "MontantPaye": paid_total, "SoldeDu": max(left, 0)}


def cancelled(record: dict[str, Any]) -> dict[str, Any]:
    """The stored invoice once cancelled (nothing is left due)."""
    return {**record, "Statut": CANCELLED, "SoldeDu": 0}


def reference_of(body: Any) -> str:
    """``Facture.Référence``: the invoice's identity for duplicates and ``If-None-Match``."""
    facture = require_object(require_object(body, "CustomerInvoice").get("Facture"), "Facture")
    reference = facture.get("Référence")
    if not isinstance(reference, str) or not reference.strip():
        raise BodyError("Facture.Référence is required and must be non-empty text.")
    return reference


def _line(
    line: Any, index: int, product_price: Callable[[str], float | int | None]
) -> dict[str, Any]:
    where = f"Facture.LigneFacture[{index}]"
    line = require_object(line, where)
    product_key = line.get("strNoProduit")
    description = _text(line.get("DescriptionLigne"), f"{where}.DescriptionLigne")
    quantity = _number(line.get("QteFacture"), f"{where}.QteFacture", nullable=True)
    price = _number(line.get("PrixUnitaire"), f"{where}.PrixUnitaire", nullable=True)
    stored = dict(line)
    if product_key is None:
        if description is None:
            raise BodyError(f"{where} needs strNoProduit (a product) or DescriptionLigne (text).")
        if quantity is not None and price is not None:
            _taxed(stored, quantity, price, where)
        return stored
    product_key = key(product_key, f"{where}.strNoProduit")
    if quantity is None:
        raise BodyError(f"{where}.QteFacture is required on a product line.")
    list_price = product_price(product_key)
    if list_price is None:
        raise BodyError(f"The product '{product_key}' ({where}.strNoProduit) does not exist.")
    if price is None:
        price = list_price
        stored["PrixUnitaire"] = list_price
    _taxed(stored, quantity, price, where)
    return stored


def _taxed(stored: dict[str, Any], quantity: float, price: float, where: str) -> None:
    """Set a priced line's net amount, tax rate (the line's, else the default) and tax."""
    rate = _number(stored.get("TauxTaxe", DEFAULT_TAX_RATE), f"{where}.TauxTaxe")
    net = money(quantity * price)
    stored["TauxTaxe"] = rate
    stored["MontantLigne"] = net
    stored["MontantTaxe"] = money(float(Decimal(repr(net)) * Decimal(repr(rate or 0)) / 100))
