"""Products: found by external id, or by code (``refId``) and name, else created.

As for contacts, the code + name match only considers products that have no external id
in the request's systems, so one product never ends up with two ids of one system and the
external id stays a unique key per system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators._pages import InsertionOrdered
from simulators.atollon._request import (
    ExternalId,
    FailError,
    IdSequence,
    describe,
    external_id_json,
    external_ids,
    filled,
    now,
    number,
    require_object,
)

PRODUCT_STATUSES = ("Active", "Inactive")
TEXT_FIELDS = (
    "name",
    "refId",
    "description",
    "typeName",
    "unitPriceCurrencyName",
    "statusName",
    "unitsName",
    "vatRateName",
    "openingBalanceDate",
)
NUMBER_FIELDS = ("defaultQuantity", "unitPrice", "openingBalanceQty")


def _code_name_key(ref_id: str | None, name: str) -> tuple[str, str]:
    return (ref_id or "", " ".join(name.split()).casefold())


@dataclass
class Product:
    """A stored product."""

    product_id: str
    values: dict[str, Any] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=now)
    modified: str = field(default_factory=now)

    @property
    def name(self) -> str:
        return str(self.values.get("name") or "")

    @property
    def ref_id(self) -> str | None:
        value = self.values.get("refId")
        return None if value is None else str(value)


class ProductStore:
    """Every product of the instance, indexed by external id and by code + name."""

    def __init__(self, ids: IdSequence) -> None:
        self.ids = ids
        self.products: InsertionOrdered[str, Product] = InsertionOrdered()
        self.by_external: dict[ExternalId, str] = {}
        self.by_code_name: dict[tuple[str, str], list[str]] = {}

    def reset(self) -> None:
        """Forget every product."""
        self.products.clear()
        self.by_external.clear()
        self.by_code_name.clear()

    def find_by_external(self, ids: list[ExternalId]) -> Product | None:
        """The one product holding any of ``ids``; a FAIL if they name different products."""
        owners = {self.by_external[pair] for pair in ids if pair in self.by_external}
        if len(owners) > 1:
            raise FailError(f"externalId conflict: {describe(ids)} belong to different products")
        return self.products[owners.pop()] if owners else None

    def find_by_code(self, ref_id: str | None, name: str | None) -> Product | None:
        """The oldest product with this code, or this code and name when a name is given."""
        if name is not None:
            found = self.by_code_name.get(_code_name_key(ref_id, name))
            return self.products[found[0]] if found else None
        if ref_id is None:
            return None
        for product in self.products.values():
            if product.ref_id == ref_id:
                return product
        return None

    def _parse(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[ExternalId]]:
        values: dict[str, Any] = {}
        for key in TEXT_FIELDS:
            if key in body:
                # present but "" or null: the stored value is emptied
                values[key] = filled(body, key)
        for key in NUMBER_FIELDS:
            if key in body:
                values[key] = number(body, key)
        status = values.get("statusName")
        if status is not None and status not in PRODUCT_STATUSES:
            raise FailError(f"Unknown product status: {status} (expected Active or Inactive)")
        opening = values.get("openingBalanceDate")
        if opening is not None:
            try:
                datetime.fromisoformat(opening)
            except ValueError as exc:
                raise FailError(f"Invalid request: openingBalanceDate {opening!r}") from exc
        if "name" in body and values["name"] is None:
            raise FailError("Product name is required")
        return values, external_ids(body, "externalId") or []

    def upsert(self, body: Any) -> dict[str, Any]:
        """``POST /crab/crawler/product``: create or update one product."""
        values, ids = self._parse(require_object(body, "the request body"))
        product = self.find_by_external(ids)
        if product is None and values.get("name") is not None:
            systems = {system for system, _ in ids}
            key = _code_name_key(values.get("refId"), values["name"])
            for product_id in self.by_code_name.get(key, []):
                candidate = self.products[product_id]
                if not systems & candidate.external.keys():
                    product = candidate
                    break
        if product is None:
            if values.get("name") is None:
                raise FailError("Product name is required")
            product = Product(
                product_id=self.ids.next(),
                values={
                    "name": None,
                    "refId": None,
                    "description": None,
                    "typeName": "Product",
                    "defaultQuantity": 1.0,
                    "unitPrice": None,
                    "unitPriceCurrencyName": None,
                    "statusName": "Active",
                    "unitsName": None,
                    "vatRateName": None,
                    "openingBalanceQty": 0.0,
                    "openingBalanceDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"),
                },
            )
            self.products[product.product_id] = product
        else:
            self._unindex(product)
            product.modified = now()
        product.values.update(values)
        for system, ident in ids:
            old = product.external.get(system)
            if old is not None and old != ident:
                self.by_external.pop((system, old), None)
            product.external[system] = ident
        self._index(product)
        return {
            "result": "SUCCESS",
            "productId": product.product_id,
            "productName": product.name,
            "productRefid": product.ref_id,
            "product": {"externalId": external_id_json(list(product.external.items()))},
        }

    def _index(self, product: Product) -> None:
        for pair in product.external.items():
            self.by_external[pair] = product.product_id
        self.by_code_name.setdefault(_code_name_key(product.ref_id, product.name), []).append(
            product.product_id
        )

    def _unindex(self, product: Product) -> None:
        key = _code_name_key(product.ref_id, product.name)
        ids = self.by_code_name.get(key)
        if ids and product.product_id in ids:
            ids.remove(product.product_id)
            if not ids:
                del self.by_code_name[key]

    def to_json(self, product: Product) -> dict[str, Any]:
        """A product in the shape of the product request, plus its id."""
        return {
            "productId": product.product_id,
            **product.values,
            "externalId": external_id_json(list(product.external.items())),
            "created": product.created,
            "modified": product.modified,
        }

    def records(self) -> list[dict[str, Any]]:
        """Every product, oldest first."""
        return [self.to_json(product) for product in self.products.values()]

    def page(self, page: int, limit: int) -> list[dict[str, Any]]:
        """``GET product?page=&limit=`` (undocumented): one page of products, oldest first."""
        start = (page - 1) * limit
        return [self.to_json(product) for product in self.products.slice(start, start + limit)]
