"""OnlineERP streams: customers and products, by fingerprinted full scans.

OnlineERP has no modified-since filter, so change detection compares fingerprints of a
full paged scan (which also reveals deletions). Records are mapped to canonical dicts
without validation: a record with missing fields still becomes an event, and each target
dead-letters it as invalid source data while the rest flows on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.onlineerp import ErpCustomer, ErpProduct, OnlineErpClient
from erpsync.mapping import resolve
from producers.base import SnapshotStream, SourceRecord


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _extra(record: Mapping[str, Any], source_fields: Mapping[str, str]) -> dict[str, Any]:
    custom = {}
    for name, path in source_fields.items():
        value = resolve(record, path)
        if value is not None:
            custom[name] = value
    return custom


def customer_payload(customer: ErpCustomer, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """An ERP customer as a canonical company (a dict; validated by each target's sink)."""
    raw = customer.model_dump(by_alias=True)
    address = customer.address
    return {
        "key": customer.number,
        "name": _text(customer.name),
        "parent_key": _text(customer.parent_number),
        "email": _text(customer.email),
        "phone": _text(customer.phone),
        "tax_number": _text(customer.gst_number),
        "language": _text(customer.language),
        "active": bool(customer.active),
        "address": (
            {
                "line1": _text(address.line1),
                "city": _text(address.city),
                "region": _text(address.province),
                "postal_code": _text(address.postal_code),
                "country": _text(address.country),
            }
            if address is not None
            else None
        ),
        "custom": _extra(raw, source_fields),
    }


def product_payload(product: ErpProduct, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """An ERP product as a canonical product (a dict)."""
    raw = product.model_dump(by_alias=True)
    price = product.price
    return {
        "key": product.number,
        "name": _text(product.description),
        "price": str(Decimal(str(price))) if price is not None else None,
        "currency": None,
        "active": bool(product.active),
        "group": _text(product.group.code) if product.group else None,
        "custom": _extra(raw, source_fields),
    }


@dataclass
class OnlineErpCustomers(SnapshotStream):
    """ERP customers (``Customer``), keyed by ``NoClient``."""

    client: OnlineErpClient = field(kw_only=True)
    source_fields: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    page_size: int | None = field(default=None, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in self.client.iter_customer_pages(page_size=self.page_size):
            yield [
                SourceRecord(
                    c.number, customer_payload(c, self.source_fields), _text(c.parent_number)
                )
                for c in page
            ]


@dataclass
class OnlineErpProducts(SnapshotStream):
    """ERP products (``Product``), keyed by ``NoProduit``."""

    client: OnlineErpClient = field(kw_only=True)
    source_fields: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    page_size: int | None = field(default=None, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in self.client.iter_product_pages(page_size=self.page_size):
            yield [SourceRecord(p.number, product_payload(p, self.source_fields)) for p in page]
