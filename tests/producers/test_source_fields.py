"""The source fields the shared table (erpsync.flows) names are what the producers read.

``erpsync doctor`` shows a flow's mapping from source field to canonical field from the
table; each producer maps with its own code. A source record whose every field named in the
table has a value of its own must come out with each value at the canonical path the table
says.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.onlineerp import ErpCustomer, ErpProduct
from adapters.propeller import PropellerCompany
from erpsync.flows import SOURCES
from erpsync.keys import record_key
from erpsync.mapping import resolve
from producers.onlineerp import customer_payload, product_payload
from producers.propeller import ParentKeys, company_payload


def record_with(fields: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """A source record holding ``values[canonical]`` at each source field (dotted paths)."""
    raw: dict[str, Any] = {}
    for canonical, source in fields.items():
        node = raw
        *parents, leaf = source.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = values.get(canonical, f"value of {canonical}")
    return raw


def comparable(value: Any) -> Any:
    """Amounts as decimals: the ERP's JSON has numbers, canonical records hold text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return value


@pytest.mark.parametrize(
    ("entity", "model", "mapper", "values"),
    [
        ("customer", ErpCustomer, customer_payload, {"active": False}),
        ("product", ErpProduct, product_payload, {"active": False, "price": 12.5}),
    ],
    ids=["customer", "product"],
)
def test_erp_fields_reach_the_canonical_fields_the_table_names(
    entity: str, model: Any, mapper: Any, values: dict[str, Any]
) -> None:
    fields = {c: s for c, s in SOURCES[("onlineerp", entity)].items() if "[]" not in c}
    raw = record_with(fields, values)
    payload = mapper(model.model_validate(raw), {})
    for canonical, source in fields.items():
        expected = resolve(raw, source)
        assert comparable(resolve(payload, canonical)) == comparable(expected), (canonical, source)


def test_erp_addresses_reach_the_canonical_address_fields_the_table_names() -> None:
    """``addresses[].<field>``: the invoice address's from ``Adresse.<X>``, each delivery
    address's from ``AdressesLivraison[].<X>``, as the table's text names them."""
    fields = {
        c.removeprefix("addresses[]."): s
        for c, s in SOURCES[("onlineerp", "customer")].items()
        if c.startswith("addresses[].") and c not in ("addresses[].code", "addresses[].type")
    }
    invoice: dict[str, Any] = {}
    delivery: dict[str, Any] = {"CodeAdresse": "D1"}
    for name, source in fields.items():
        on_invoice, on_delivery = (part.strip() for part in source.split(","))
        invoice[on_invoice.removeprefix("Adresse.")] = f"invoice {name}"
        delivery[on_delivery.removeprefix("AdressesLivraison[].")] = f"delivery {name}"
    raw = {"NoClient": "C1", "NomClient": "x", "Adresse": invoice, "AdressesLivraison": [delivery]}
    first, second = customer_payload(ErpCustomer.model_validate(raw), {})["addresses"]
    assert (first["code"], first["type"]) == ("invoice", "invoice")
    assert (second["code"], second["type"]) == ("delivery:D1", "delivery")
    for name in fields:
        assert first[name] == f"invoice {name}"
        assert second[name] == f"delivery {name}"


def test_propeller_fields_reach_the_canonical_fields_the_table_names() -> None:
    fields = SOURCES[("propeller", "customer")]
    raw = record_with(fields, {"key": 42, "parent_key": 7, "language": "NL"})
    payload = company_payload(PropellerCompany.model_validate(raw), ParentKeys(None, "ERPSYNC"))
    ids = {"key", "parent_key"}  # Propeller's ids, keyed in Propeller's namespace
    for canonical, source in fields.items():
        expected = resolve(raw, source)
        if canonical in ids:
            expected = record_key("propeller", "customer", str(expected))
        assert resolve(payload, canonical) == expected, (canonical, source)
