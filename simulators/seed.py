"""The deterministic seed data set shared by the simulators.

The same (counts, random seed) always give the same records, so each simulator can load its
own slice independently and the slices agree: Atollon billing items refer to ERP customers
(through the contact's externalId for the ERP system) and ERP products.

Customers form a hierarchy of up to three levels (parents always come before their children
in key order), and names carry accents, quotes, ampersands, percent and plus signs, emoji
and right-to-left text, because real ERPs hold such names and they break naive code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

#: the externalId ``system`` under which Atollon stores ERP keys in the seed
ERP_SYSTEM = "onlineerp"

_FIRST = [
    "Dupont",
    "Tremblay",
    "Gagnon",
    "Roy",
    "Côté",
    "Bouchard",
    "Gauthier",
    "Morin",
    "Lavoie",
    "Fortin",
    "Gagné",
    "Ouellet",
    "Pelletier",
    "Bélanger",
    "Lévesque",
    "Bergeron",
    "Leblanc",
    "Paquette",
    "Girard",
    "Simard",
    "O'Brien",
    "Müller",
    "Nguyễn",
    "Saint-Pierre",
]
_KIND = [
    "Emballages",
    "Cartonnages",
    "Transport",
    "Quincaillerie",
    "Boulangerie",
    "Érablière",
    "Imprimerie",
    "Menuiserie",
    "Plomberie",
    "Électrique",
    "Distribution",
    "Alimentation",
]
_SUFFIX = ["inc.", "ltée", "& Fils", "& Associés", "S.E.N.C.", "Corp.", "(Québec)", "enr."]
_ODD = [
    'Dupont & Fils "Émballages" 100% +',
    "L'Étoile du Nord — Café & Thé",
    "Les Entreprises A+B=C inc.",
    "Pâtisserie 50% #1 ☕",
    "Ferme Ōkami 🐺 enr.",
    "شركة الأرز (Montréal)",
    "Boîtes & Co <test> 'quoted'",
    "Nettoyage à 100% + ou -",
]
_CITIES = [
    ("Montréal", "QC", "H2X 1Y4"),
    ("Québec", "QC", "G1R 4P5"),
    ("Laval", "QC", "H7N 5H9"),
    ("Sherbrooke", "QC", "J1H 1Z1"),
    ("Gatineau", "QC", "J8X 3X5"),
    ("Trois-Rivières", "QC", "G9A 5H7"),
    ("Ottawa", "ON", "K1P 1J1"),
    ("Toronto", "ON", "M5H 2N2"),
    ("Moncton", "NB", "E1C 1E7"),
]
_STREETS = [
    "rue Sainte-Catherine",
    "boul. René-Lévesque",
    "ch. du Roy",
    "av. des Érables",
    "rue Principale",
]
_GROUPS = ["BOITES", "CARTON", "ETIQ", "SERVICE", "vêtements"]
#: tax codes and units of sale, given by index (no draw: the rest of the data set is as
#: before); every tenth product has neither, one in seven is priced in USD
_TAX_CODES = ["TPS+TVQ 14,975 %", "TPS 5 %", "Exonéré"]
_UNITS = ["unité", "h", "kg", "boîte"]
_PRODUCTS = [
    "Boîte carton simple cannelure",
    "Boîte double cannelure",
    "Étiquette 4x6",
    "Ruban adhésif 48 mm",
    "Film étirable",
    "Palette 48x40",
    "Service de design",
    "Transport local",
    "Coussin d'air",
]


def customer_key(index: int) -> str:
    """The ERP key (NoClient) of the index-th customer."""
    return f"C{index + 1:06d}"


def product_key(index: int) -> str:
    """The ERP key (NoProduit) of the index-th product."""
    return f"P{index + 1:05d}"


@dataclass
class SeedData:
    """One consistent data set for all four systems."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    #: the customers' people (ERP ``Contact``), only when asked (``generate(contacts=True)``)
    contacts: list[dict[str, Any]] = field(default_factory=list)


def default_products(customers: int) -> int:
    return max(10, customers // 5)


def default_activities(customers: int) -> int:
    return min(50, max(1, customers // 20)) if customers else 0


def make_customer(rng: random.Random, index: int, parent: str | None) -> dict[str, Any]:
    """One ERP customer in the OnlineERP ``Customer`` shape."""
    if index % 37 == 5:
        name = _ODD[(index // 37) % len(_ODD)]
    else:
        name = f"{rng.choice(_KIND)} {rng.choice(_FIRST)} {rng.choice(_SUFFIX)}"
    city, province, postal = rng.choice(_CITIES)
    key = customer_key(index)
    return {
        "NoClient": key,
        "NomClient": name,
        "NoClientParent": parent,
        "Courriel": f"compta.{key.lower()}@exemple.qc.ca",
        "Telephone": f"+1 514 555 {rng.randrange(10000):04d}",
        "Adresse": {
            "Ligne1": f"{rng.randrange(1, 9999)} {rng.choice(_STREETS)}",
            "Ville": city,
            "Province": province,
            "CodePostal": postal,
            "Pays": "CA",
        },
        "NoTPS": f"{rng.randrange(10**8, 10**9)}RT0001",
        "Langue": "FR" if rng.random() < 0.7 else "EN",
        "EstActif": True,
    }


def generate(
    customers: int,
    products: int | None = None,
    activities: int | None = None,
    random_seed: int = 42,
    *,
    contacts: bool = False,
) -> SeedData:
    """The seed data set; the same arguments always give the same records.

    ``contacts``: one to four people (ERP ``Contact``) per customer, from a random sequence
    of their own, so that the other records are the same with or without them.
    """
    rng = random.Random(random_seed)
    n_products = default_products(customers) if products is None else products
    n_activities = default_activities(customers) if activities is None else activities
    data = SeedData()

    roots: list[str] = []  # a list, for rng.choice
    root_set: set[str] = set()
    middles: list[str] = []
    for index in range(customers):
        roll = rng.random()
        parent: str | None = None
        if index >= 3 and roll < 0.25 and middles:
            parent = rng.choice(middles)  # level 3
        elif index >= 1 and roll < 0.55 and roots:
            parent = rng.choice(roots)  # level 2
        record = make_customer(rng, index, parent)
        data.customers.append(record)
        if parent is None:
            roots.append(record["NoClient"])
            root_set.add(record["NoClient"])
        elif parent in root_set:
            middles.append(record["NoClient"])

    for index in range(n_products):
        data.products.append(
            {
                "NoProduit": product_key(index),
                "Description": f"{rng.choice(_PRODUCTS)} #{index + 1}",
                "PrixVente": round(rng.uniform(0.5, 500.0), 2),
                "Devise": "USD" if index % 7 == 3 else "CAD",
                "CodeTaxe": None if index % 10 == 9 else _TAX_CODES[index % len(_TAX_CODES)],
                "Unite": None if index % 10 == 9 else _UNITS[index % len(_UNITS)],
                "EstActif": True,
                "GroupeProduit": {"CodeGroupe": rng.choice(_GROUPS)},
            }
        )

    if customers and n_products:
        for index in range(n_activities):
            data.activities.append(_activity(rng, index, data))
    if contacts:
        people = random.Random(f"contacts-{random_seed}")
        for customer in data.customers:
            for n in range(people.randint(1, 4)):
                data.contacts.append(make_contact(people, customer["NoClient"], n))
    return data


_GIVEN = ["Marie", "Jean", "Sophie", "Luc", "Émilie", "François", "Chloé", "Zoë", "Anaïs"]
_TITLES = ["Directrice des achats", "Comptable", "Président", "Acheteur", None]


def contact_key(customer: str, index: int) -> str:
    """The ``NoContact`` of a customer's ``index``-th person (keys sort by customer)."""
    return f"{customer}-P{index + 1}"


def make_contact(rng: random.Random, customer: str, index: int) -> dict[str, Any]:
    """One person of ``customer`` in the sandbox's ERP ``Contact`` shape."""
    given, family = rng.choice(_GIVEN), rng.choice(_FIRST)
    key = contact_key(customer, index)
    return {
        "NoContact": key,
        "NoClient": customer,
        "Prenom": given,
        "Nom": family,
        "Courriel": f"{key.lower()}@exemple.qc.ca",
        "Telephone": f"+1 514 555 {rng.randrange(10000):04d}",
        "Cellulaire": f"+1 438 555 {rng.randrange(10000):04d}" if rng.random() < 0.6 else None,
        "Titre": rng.choice(_TITLES),
        "EstActif": True,
    }


def _activity(rng: random.Random, index: int, data: SeedData) -> dict[str, Any]:
    customer = rng.choice(data.customers)
    contact = {
        "person": None,
        "company": {"companyName": customer["NomClient"]},
        "externalId": [{"system": ERP_SYSTEM, "id": customer["NoClient"]}],
        "regNo": None,
        "vatNo": customer["NoTPS"],
    }
    items = []
    for item_index in range(rng.randint(1, 5)):
        product = rng.choice(data.products)
        # a third of the items are time-sheet items (billing type 2), decided without the
        # random generator so that the rest of the data set stays as it was
        time_sheet = (index + item_index) % 3 == 2
        items.append(
            {
                "id": f"{900000 + index * 10 + item_index}",
                "productName": product["Description"],
                "productRefid": product["NoProduit"],
                "name": f"{product['Description']} — travaux {index + 1}",
                "description": "Feuille de temps" if time_sheet else "Travaux facturables",
                "quantity": float(rng.randint(1, 20)),
                "unitPrice": product["PrixVente"],
                "vatValue": 14.975,
                "currency": "CAD",
                "billingDate": f"2026-10-{1 + index % 28:02d}T10:00",
                "billingStatus": "ToBeInvoiced",
                "billingType": 2 if time_sheet else 1,
                "productExternalId": [{"system": ERP_SYSTEM, "id": product["NoProduit"]}],
            }
        )
    return {
        "activity": {
            "id": f"{7000000 + index}",
            "name": f"Intervention {index + 1}",
            "refId": f"ACT-{index + 1:05d}",
            "statusName": "Completed",
            "description": "Service activity with billable items",
            "created": "2026-10-01T00:00",
            "modified": f"2026-10-{1 + index % 28:02d}T10:00",
        },
        "project": {
            "id": f"{8000000 + index % 10}",
            "name": f"Projet {index % 10 + 1}",
            "refId": f"PRJ-{index % 10 + 1:03d}",
            "statusName": "Open",
            "description": "",
            "created": "2026-09-01T00:00",
            "modified": "2026-10-01T00:00",
        },
        "folder": {"name": customer["NomClient"], "refId": f"F-{customer['NoClient']}"},
        "contact": contact,
        "customer": {"name": customer["NomClient"], "refId": f"F-{customer['NoClient']}"},
        # one activity in ten names its customer as ``contact`` only (the export carries both)
        "customerContact": None if index % 10 == 9 else contact,
        "billingItems": items,
        "documents": [],
    }
