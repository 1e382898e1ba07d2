"""OnlineERP streams: customers and products, by fingerprinted full scans.

OnlineERP has no modified-since filter, so change detection compares fingerprints of a
full paged scan (which also reveals deletions). Records are mapped to canonical dicts
without validation: a record with missing fields still becomes an event, and each target
dead-letters it as invalid source data while the rest flows on. A record that does not
even match the ERP's own model (a customer saved without ``NomClient``) is read as an
:class:`~adapters.onlineerp.InvalidRecord` and mapped as it is, its invalid values in
place, so that the targets refuse it and say which field; only a record without a key
cannot be followed, and is left out with a warning.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from pydantic import BaseModel

from adapters.onlineerp import ErpCustomer, ErpProduct, InvalidRecord, OnlineErpClient
from erpsync.mapping import resolve
from producers.base import SnapshotStream, SourceRecord

log = structlog.get_logger("erpsync.producer")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _extra(record: BaseModel, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """The flow's ``source_fields`` read from the record as the ERP names its fields."""
    if not source_fields:
        return {}  # the common case: no dump of the whole record for nothing
    raw = record.model_dump(by_alias=True)
    custom = {}
    for name, path in source_fields.items():
        value = resolve(raw, path)
        if value is not None:
            custom[name] = value
    return custom


def customer_payload(customer: ErpCustomer, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """An ERP customer as a canonical company (a dict; validated by each target's sink)."""
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
        "custom": _extra(customer, source_fields),
    }


def product_payload(product: ErpProduct, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """An ERP product as a canonical product (a dict)."""
    price = product.price
    return {
        "key": product.number,
        "name": _text(product.description),
        "price": str(Decimal(str(price))) if price is not None else None,
        "currency": None,
        "active": bool(product.active),
        "group": _text(product.group.code) if product.group else None,
        "custom": _extra(product, source_fields),
    }


def _as_is(value: Any) -> Any:
    """Text trimmed (blank is None); any other value kept as it is, for the sinks to refuse."""
    return _text(value) if isinstance(value, str) else value


def _raw_extra(raw: Mapping[str, Any], source_fields: Mapping[str, str]) -> dict[str, Any]:
    found = ((name, resolve(raw, path)) for name, path in source_fields.items())
    return {name: value for name, value in found if value is not None}


def invalid_customer_payload(
    record: InvalidRecord, source_fields: Mapping[str, str]
) -> dict[str, Any]:
    """A customer that does not validate, mapped like :func:`customer_payload` but as it is.

    Its invalid values stay where they belong (a missing name is None, a name that is not
    text stays what it is), so that every target's sink refuses the payload, naming the
    field, and dead-letters it as invalid source data; the operator fixes it in the ERP.
    """
    raw = record.raw
    address = raw.get("Adresse")
    return {
        "key": record.key,
        "name": _as_is(raw.get("NomClient")),
        "parent_key": _as_is(raw.get("NoClientParent")),
        "email": _as_is(raw.get("Courriel")),
        "phone": _as_is(raw.get("Telephone")),
        "tax_number": _as_is(raw.get("NoTPS")),
        "language": _as_is(raw.get("Langue")),
        "active": raw.get("EstActif", True),
        "address": (
            {
                "line1": _as_is(address.get("Ligne1")),
                "city": _as_is(address.get("Ville")),
                "region": _as_is(address.get("Province")),
                "postal_code": _as_is(address.get("CodePostal")),
                "country": _as_is(address.get("Pays")),
            }
            if isinstance(address, Mapping)
            else address
        ),
        "custom": _raw_extra(raw, source_fields),
    }


def invalid_product_payload(
    record: InvalidRecord, source_fields: Mapping[str, str]
) -> dict[str, Any]:
    """A product that does not validate, mapped as it is (see invalid_customer_payload)."""
    raw = record.raw
    price = raw.get("PrixVente")
    group = raw.get("GroupeProduit")
    return {
        "key": record.key,
        "name": _as_is(raw.get("Description")),
        "price": (
            str(Decimal(str(price)))
            if isinstance(price, int | float) and not isinstance(price, bool)
            else price
        ),
        "currency": None,
        "active": raw.get("EstActif", True),
        "group": _as_is(group.get("CodeGroupe")) if isinstance(group, Mapping) else group,
        "custom": _raw_extra(raw, source_fields),
    }


def _keyed(stream: str, record: InvalidRecord) -> bool:
    """True when an invalid record can be followed (it has a key); else say so loudly."""
    if record.key is None:
        log.warning("producer.record_without_key", stream=stream, problems=list(record.problems))
        return False
    return True


@dataclass
class OnlineErpCustomers(SnapshotStream):
    """ERP customers (``Customer``), keyed by ``NoClient``."""

    client: OnlineErpClient = field(kw_only=True)
    source_fields: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    page_size: int | None = field(default=None, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in self.client.iter_checked_customer_pages(page_size=self.page_size):
            records: list[SourceRecord] = []
            for c in page:
                if not isinstance(c, InvalidRecord):
                    payload = customer_payload(c, self.source_fields)
                    records.append(SourceRecord(c.number, payload, _text(c.parent_number)))
                elif _keyed(self.name, c):
                    payload = invalid_customer_payload(c, self.source_fields)
                    parent = payload["parent_key"]
                    key = str(c.key)
                    records.append(
                        SourceRecord(key, payload, parent if isinstance(parent, str) else None)
                    )
            yield records


@dataclass
class OnlineErpProducts(SnapshotStream):
    """ERP products (``Product``), keyed by ``NoProduit``."""

    client: OnlineErpClient = field(kw_only=True)
    source_fields: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    page_size: int | None = field(default=None, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        for page in self.client.iter_checked_product_pages(page_size=self.page_size):
            records: list[SourceRecord] = []
            for p in page:
                if not isinstance(p, InvalidRecord):
                    records.append(SourceRecord(p.number, product_payload(p, self.source_fields)))
                elif _keyed(self.name, p):
                    payload = invalid_product_payload(p, self.source_fields)
                    records.append(SourceRecord(str(p.key), payload))
            yield records
