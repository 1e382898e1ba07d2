"""Builders for the OnlineERP sandbox's tests: customer, product and invoice bodies, creates
and error readers over real HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import strategies as st

LICENCE = "SANDBOX"


SECRET = "sandbox-secret"


def customer(key: str, name: str = "Emballages Dupont inc.", **fields: Any) -> dict[str, Any]:
    return {
        "NoClient": key,
        "NomClient": name,
        "NoClientParent": None,
        "Courriel": f"{key.lower()}@exemple.qc.ca",
        "Telephone": "+1 514 555 0101",
        "Adresse": {
            "Ligne1": "1 rue Principale",
            "Ville": "Montréal",
            "Province": "QC",
            "CodePostal": "H2X 1Y4",
            "Pays": "CA",
        },
        "NoTPS": "123456789RT0001",
        "Langue": "FR",
        "EstActif": True,
        **fields,
    }


def product(key: str, price: float = 10.0, group: str = "BOITES", **fields: Any) -> dict[str, Any]:
    return {
        "NoProduit": key,
        "Description": f"Boîte {key}",
        "PrixVente": price,
        "EstActif": True,
        "GroupeProduit": {"CodeGroupe": group},
        **fields,
    }


def invoice(reference: str, client: str = "C1", **facture: Any) -> dict[str, Any]:
    return {
        "Facture": {
            "TypeDoc": "FACTURES",
            "Référence": reference,
            "Description": "Travaux d'octobre",
            "DateFacture": "2026-10-15",
            "InfoClientFacturerA": {"NoClient": client},
            "LigneFacture": [
                {"strNoProduit": "P1", "QteFacture": 3},
                {"strNoProduit": "P2", "QteFacture": 2, "PrixUnitaire": 7.25},
                {"DescriptionLigne": "Merci de votre confiance"},
            ],
            **facture,
        }
    }


def create(api: httpx.Client, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(f"/Entity/{entity}", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def assert_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"Message", "Code"}
    assert body["Code"] == code
    message: str = body["Message"]
    return message


def keys(answer: httpx.Response, field: str = "NoClient") -> list[str]:
    assert answer.status_code == 200, answer.text
    return [record[field] for record in answer.json()]


_FILTER_WORDS = st.sampled_from(
    [
        "NomClient",
        "Adresse.Ville",
        "EstActif",
        "eq",
        "and",
        "or",
        "gt",
        "(",
        ")",
        "'",
        "''",
        "'a'",
        "12",
        "-3.5e2",
        "true",
        "null",
        ",",
        "/",
        ".",
        " ",
        "é",
        "%",
        "+",
    ]
)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
