"""OnlineERP streams: customers and products, by fingerprinted full scans.

OnlineERP has no modified-since filter, so change detection compares fingerprints of a
full paged scan (which also reveals deletions). Records are mapped to canonical dicts
without validation: a record with missing fields still becomes an event, and each target
dead-letters it as invalid source data while the rest flows on. A record that does not
even match the ERP's own model (a customer saved without ``NomClient``) is read as an
:class:`~adapters.onlineerp.InvalidRecord` and mapped as it is, its invalid values in
place, so that the targets refuse it and say which field; only a record without a key
cannot be followed, and is left out with a warning.

Customers take a fast path: a customer whose values have the types the ERP model declares
is fingerprinted from canonical text assembled straight from the ERP's JSON
(:func:`customer_text`, the same text as the model's path), so that the many customers a
poll finds unchanged are neither validated nor mapped; one found changed is validated and
mapped (:meth:`OnlineErpCustomers.confirm`) before its event is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from pydantic import BaseModel

from adapters.onlineerp import (
    ErpAddress,
    ErpCustomer,
    ErpDeliveryAddress,
    ErpProduct,
    InvalidRecord,
    OnlineErpClient,
)
from erpsync.events import Content, canonical_json, canonical_string
from erpsync.mapping import resolve
from erpsync.models import DELIVERY_ADDRESS_PREFIX, INVOICE_ADDRESS_CODE
from producers.base import Record, SnapshotStream, SourceRecord, UncheckedRecord

log = structlog.get_logger("erpsync.producer")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _extra(record: BaseModel, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """The flow's ``source_fields`` read from the record as the ERP names its fields.

    Text is read as the native fields are (stripped; blank is absent, so a value erased in
    the ERP is cleared in the targets, not sent as ``""``, which a select field refuses).
    """
    if not source_fields:
        return {}  # the common case: no dump of the whole record for nothing
    raw = record.model_dump(by_alias=True)
    custom = {}
    for name, path in source_fields.items():
        value = _as_is(resolve(raw, path))
        if value is not None:
            custom[name] = value
    return custom


#: the code of the customer's invoice address (``Adresse``) in the canonical ``addresses``,
#: and the prefix of a delivery address's: ``delivery:<CodeAdresse>``
INVOICE_CODE = INVOICE_ADDRESS_CODE
DELIVERY_PREFIX = DELIVERY_ADDRESS_PREFIX


def _address_values(address: Mapping[str, Any]) -> dict[str, str | None]:
    """The canonical fields of an ERP address read by its ERP names (text stripped)."""
    return {
        "line1": _text(address.get("Ligne1")),
        "city": _text(address.get("Ville")),
        "region": _text(address.get("Province")),
        "postal_code": _text(address.get("CodePostal")),
        "country": _text(address.get("Pays")),
    }


def addresses_of(
    invoice: Mapping[str, Any] | None, delivery: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """A customer's canonical ``addresses``: the invoice address (``Adresse``) when it has
    a value, then each delivery address (``AdressesLivraison[]``) that has one, keyed by
    its code. An address without any value is no address (cleared in the ERP: removed in
    the targets); a delivery address without a code, or with the code of an earlier one, is
    left out (the targets key addresses by code)."""
    found: list[dict[str, Any]] = []
    if invoice is not None:
        values = _address_values(invoice)
        if any(v is not None for v in values.values()):
            found.append({"code": INVOICE_CODE, "type": "invoice", **values})
    codes: set[str] = set()
    for item in delivery or ():
        code = _text(item.get("CodeAdresse"))
        values = _address_values(item)
        if code is None or code in codes or all(v is None for v in values.values()):
            continue
        codes.add(code)
        found.append({"code": f"{DELIVERY_PREFIX}{code}", "type": "delivery", **values})
    return found


def _erp_names(address: ErpAddress) -> dict[str, Any]:
    return address.model_dump(by_alias=True)


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
        "addresses": addresses_of(
            _erp_names(address) if address is not None else None,
            [_erp_names(d) for d in customer.delivery_addresses or ()],
        ),
        "custom": _extra(customer, source_fields),
    }


#: the names the ERP models also read their fields by (``validate_by_name``): a record that
#: uses one is left to the model
_CUSTOMER_NAMES = frozenset(ErpCustomer.model_fields)
_ADDRESS_NAMES = frozenset(ErpAddress.model_fields)
_DELIVERY_NAMES = frozenset(ErpDeliveryAddress.model_fields)
#: the values the models give the fields a record leaves out, by the ERP's names
_CUSTOMER_DEFAULTS = {
    f.alias: f.default for f in ErpCustomer.model_fields.values() if not f.is_required()
}
_ADDRESS_DEFAULTS = {
    f.alias: f.default for f in ErpAddress.model_fields.values() if not f.is_required()
}


class _NotTextError(Exception):
    """A value the model would not take as a text as it is (the fast path gives up)."""


def _json_text(value: Any) -> str:
    """``canonical_json(_text(value))`` for a text or None; anything else raises _NotTextError."""
    if value is None:
        return "null"
    if type(value) is not str:
        raise _NotTextError
    value = value.strip()
    return canonical_string(value) if value else "null"


def _fast_addresses(invoice: Any, delivery: Any) -> str:
    """The canonical ``addresses`` text of raw JSON values the models take as they are;
    _NotTextError for any other (the fast path gives up)."""
    if delivery is not None:
        if type(delivery) is not list:
            raise _NotTextError
        for item in delivery:
            if type(item) is not dict or not _DELIVERY_NAMES.isdisjoint(item):
                raise _NotTextError
            code = item.get("CodeAdresse")
            if type(code) is not str or not code:
                raise _NotTextError
            _check_texts(item)
    if invoice is not None:
        _check_texts(invoice)
    return canonical_json(addresses_of(invoice, delivery))


def _check_texts(address: Mapping[str, Any]) -> None:
    for name in ("Ligne1", "Ville", "Province", "CodePostal", "Pays"):
        value = address.get(name)
        if value is not None and type(value) is not str:
            raise _NotTextError


def customer_text(raw: Any, source_fields: Mapping[str, str]) -> str | None:
    """``canonical_json(customer_payload(ErpCustomer.model_validate(raw), source_fields))``.

    Assembled from the raw JSON without pydantic, about four times cheaper, for the values
    the model takes as they are: text fields text or null, ``EstActif`` a boolean,
    ``Adresse`` an object or null, a non-empty ``NoClient``. Anything else (a record the
    model would coerce, or refuse) is None: read it with the model. The keys below are in
    sorted order; tests hold the result equal to the model's path over generated records.
    """
    if type(raw) is not dict or not _CUSTOMER_NAMES.isdisjoint(raw):
        return None
    number = raw.get("NoClient")
    name = raw.get("NomClient")
    active = raw.get("EstActif", True)
    if type(number) is not str or not number or type(name) is not str or type(active) is not bool:
        return None
    address = raw.get("Adresse")
    try:
        if address is None:
            address_text = "null"
        elif type(address) is dict and _ADDRESS_NAMES.isdisjoint(address):
            address_text = (
                f'{{"city":{_json_text(address.get("Ville"))},'
                f'"country":{_json_text(address.get("Pays"))},'
                f'"line1":{_json_text(address.get("Ligne1"))},'
                f'"postal_code":{_json_text(address.get("CodePostal"))},'
                f'"region":{_json_text(address.get("Province"))}}}'
            )
        else:
            return None
        addresses_text = _fast_addresses(address, raw.get("AdressesLivraison"))
        fields = (
            f'"email":{_json_text(raw.get("Courriel"))},"key":{canonical_string(number)},'
            f'"language":{_json_text(raw.get("Langue"))},"name":{_json_text(name)},'
            f'"parent_key":{_json_text(raw.get("NoClientParent"))},'
            f'"phone":{_json_text(raw.get("Telephone"))},'
            f'"tax_number":{_json_text(raw.get("NoTPS"))}}}'
        )
    except _NotTextError:
        return None
    if source_fields:
        # resolved in what model_dump(by_alias=True) gives: the defaults filled in
        dumped = {**_CUSTOMER_DEFAULTS, **raw}
        if address is not None:
            dumped["Adresse"] = {**_ADDRESS_DEFAULTS, **address}
        custom_text = canonical_json(_raw_extra(dumped, source_fields))
    else:
        custom_text = "{}"
    return (
        f'{{"active":{"true" if active else "false"},"address":{address_text},'
        f'"addresses":{addresses_text},"custom":{custom_text},{fields}'
    )


def product_payload(product: ErpProduct, source_fields: Mapping[str, str]) -> dict[str, Any]:
    """An ERP product as a canonical product (a dict)."""
    price = product.price
    return {
        "key": product.number,
        "name": _text(product.description),
        "price": str(Decimal(str(price))) if price is not None else None,
        "currency": _text(product.currency),
        "vat_rate": _text(product.tax_code),
        "units": _text(product.unit),
        "active": bool(product.active),
        "group": _text(product.group.code) if product.group else None,
        "custom": _extra(product, source_fields),
    }


def _as_is(value: Any) -> Any:
    """Text trimmed (blank is None); any other value kept as it is, for the sinks to refuse."""
    return _text(value) if isinstance(value, str) else value


def _raw_extra(raw: Mapping[str, Any], source_fields: Mapping[str, str]) -> dict[str, Any]:
    found = ((name, _as_is(resolve(raw, path))) for name, path in source_fields.items())
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
        "addresses": _invalid_addresses(address, raw.get("AdressesLivraison")),
        "custom": _raw_extra(raw, source_fields),
    }


def _invalid_addresses(invoice: Any, delivery: Any) -> Any:
    """The addresses of an invalid customer: mapped where their shape allows, else the
    value as it is (for the sinks to refuse, naming ``addresses``)."""
    if invoice is not None and not isinstance(invoice, Mapping):
        return invoice
    if delivery is not None and not (
        isinstance(delivery, list) and all(isinstance(d, Mapping) for d in delivery)
    ):
        return delivery
    return addresses_of(invoice, delivery)


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
        "currency": _as_is(raw.get("Devise")),
        "vat_rate": _as_is(raw.get("CodeTaxe")),
        "units": _as_is(raw.get("Unite")),
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

    def pages(self) -> Iterator[Sequence[Record]]:
        for page in self.client.iter_raw_customer_pages(page_size=self.page_size):
            records: list[Record] = []
            for item in page:
                text = customer_text(item, self.source_fields)
                if text is not None:
                    content = Content.from_text("upsert", text)
                    records.append(UncheckedRecord(item["NoClient"], content, item))
                    continue
                customer = self.client.check_customer(item)
                if not isinstance(customer, InvalidRecord) or _keyed(self.name, customer):
                    records.append(self._record(customer))
            yield records

    def confirm(self, records: list[UncheckedRecord]) -> list[SourceRecord]:
        confirmed = []
        for unchecked in records:
            customer = self.client.check_customer(unchecked.raw)
            if isinstance(customer, InvalidRecord) and customer.key is None:
                # The fast path took its key as it is; the model's path strips it (blank).
                customer = InvalidRecord(unchecked.key, customer.raw, customer.problems)
            confirmed.append(self._record(customer))
        return confirmed

    def _record(self, customer: ErpCustomer | InvalidRecord) -> SourceRecord:
        """A customer (an invalid one with a key) as this stream publishes it."""
        if not isinstance(customer, InvalidRecord):
            payload = customer_payload(customer, self.source_fields)
            return SourceRecord(customer.number, payload, _text(customer.parent_number))
        payload = invalid_customer_payload(customer, self.source_fields)
        parent = payload["parent_key"]
        return SourceRecord(str(customer.key), payload, parent if isinstance(parent, str) else None)


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
