"""The OnlineERP / ERPConnector client: customers, products and customer invoices.

Requests go to the HUB (``<base_url>/Entity/<Name>``), which forwards each one to the robot
at the customer's site; that robot runs it against the local ERP. Latency is therefore high
and the robot can be offline (``RobotOffline``/``RobotTimeout``): both are transient errors
and the worker, not this client, decides when to try again.

Every request carries HTTP Basic auth (licence code : secret) and the ``COMPANY_ID`` header,
set per request so that the injected ``httpx.Client`` can be shared and never holds the
secret. Lists are paged with ``$top``/``$skip`` ordered by the entity's key; the iterators
hide the paging. Offset paging is not a snapshot: a record created or deleted while a scan
runs can shift the pages, which is why a full scan is repeated by the producer rather than
trusted to be exact.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from adapters._http import (
    decode_json,
    excerpt,
    parse_retry_after,
    send,
    unexpected_shape,
)
from adapters.onlineerp.errors import missing_reference, table
from adapters.onlineerp.models import (
    ErpContact,
    ErpCustomer,
    ErpInvoice,
    ErpInvoiceCreated,
    ErpProduct,
)
from erpsync.errors import AmbiguousMatchError, ErrorClass, SyncError
from erpsync.redaction import register_secrets
from erpsync.settings import OnlineErpSettings

#: the HUB caps ``$top`` at this (docs/sandbox-conventions.md); asking for more would return
#: a "short" page of 1000 and end the scan early, so the client never asks for more
MAX_PAGE_SIZE = 1000

CUSTOMER = "Customer"
PRODUCT = "Product"
#: a customer's people (the sandbox's entity name, docs/sandbox-conventions.md)
CONTACT = "Contact"
CUSTOMER_INVOICE = "CustomerInvoice"

FilterValue = str | int | float | Decimal | bool | None

_FIELD = re.compile(r"^[^\W\d][\w]*(\.[^\W\d][\w]*)*$")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class InvalidRecord:
    """A listed record that does not validate, kept instead of failing its whole page.

    One broken record in the ERP (a customer saved without its name by another tool) must
    not stop every other record from flowing: the producer turns it into an event that
    each target dead-letters as invalid source data, keyed so that it can be found and
    fixed. ``raw`` is the record as the ERP sent it; ``problems`` name the fields and the
    kind of error, never their values.
    """

    key: str | None
    raw: Mapping[str, Any]
    problems: tuple[str, ...]


def odata_literal(value: FilterValue) -> str:
    """``value`` as an OData literal: ``'text'`` (a quote doubled), numbers, true/false/null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a filter number must be finite")
        return format(Decimal(str(value)), "f")
    return "'" + value.replace("'", "''") + "'"


def where(conditions: Mapping[str, FilterValue]) -> str:
    """A ``$filter``: every ``field eq literal`` joined by ``and`` (dotted sub-fields allowed).

    ``where({"GroupeProduit.CodeGroupe": "vêtements", "EstActif": True})`` gives
    ``GroupeProduit.CodeGroupe eq 'vêtements' and EstActif eq true``.
    """
    if not conditions:
        raise ValueError("a filter needs at least one condition")
    clauses = []
    for field, value in conditions.items():
        if not _FIELD.match(field):
            raise ValueError(f"not a field name: {field!r}")
        clauses.append(f"{field} eq {odata_literal(value)}")
    return " and ".join(clauses)


class OnlineErpClient:
    """Typed access to one OnlineERP company (licence + ``COMPANY_ID``) through the HUB."""

    system: str = "onlineerp"

    def __init__(
        self,
        http: httpx.Client,
        settings: OnlineErpSettings,
        *,
        error_overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._table = table(error_overrides)
        secret = settings.secret.get_secret_value()
        # Settings built in code (tests, the demo) skip load_settings' registration; the
        # secret must still never reach a dead-letter excerpt.
        register_secrets([secret])
        self._auth = httpx.BasicAuth(settings.licence_code, secret)
        self._headers = {"COMPANY_ID": settings.company_id, "Accept": "application/json"}
        self._timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)

    # ------------------------------------------------------------------ plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return send(
            self._http,
            method,
            path,
            table=self._table,
            operation=operation,
            params=params,
            json=json,
            headers={**self._headers, **(headers or {})},
            auth=self._auth,
            timeout=self._timeout,
        )

    def _failure(
        self,
        response: httpx.Response,
        operation: str,
        *,
        customers: Iterable[str] = (),
        products: Iterable[str] = (),
    ) -> SyncError:
        """The classified error for a failed answer (the caller raises it ``from None``)."""
        code, message = _error_fields(response)
        if code == "InvalidBody" and message:
            code = missing_reference(message, customers=customers, products=products) or code
        return self._table.error(
            operation=operation,
            status_code=response.status_code,
            vendor_code=code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            response_excerpt=excerpt(response),
        )

    def _json(self, response: httpx.Response, operation: str) -> Any:
        return decode_json(response, table=self._table, operation=operation)

    def _validate(self, model: type[M], data: Any, operation: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise unexpected_shape(self._table, operation, _shape_detail(exc)) from exc

    def _pages(
        self,
        entity: str,
        model: type[M],
        key: str,
        *,
        operation: str,
        filter: str | None,
        page_size: int | None,
    ) -> Iterator[list[M]]:
        for page in self._raw_pages(
            entity, key, operation=operation, filter=filter, page_size=page_size
        ):
            yield [self._validate(model, item, operation) for item in page]

    def _checked_pages(
        self, entity: str, model: type[M], key: str, *, operation: str, page_size: int | None
    ) -> Iterator[list[M | InvalidRecord]]:
        """Like :meth:`_pages`, but a record that does not validate is an InvalidRecord."""
        for page in self._raw_pages(
            entity, key, operation=operation, filter=None, page_size=page_size
        ):
            yield [_checked(model, key, item) for item in page]

    def _raw_pages(
        self,
        entity: str,
        key: str,
        *,
        operation: str,
        filter: str | None,
        page_size: int | None,
        select: str | None = None,
    ) -> Iterator[list[Any]]:
        top = self._page_size(page_size)
        skip = 0
        previous_first: Any = None
        while True:
            params: dict[str, str | int] = {"$top": top, "$skip": skip, "$orderby": f"{key} asc"}
            if filter:
                params["$filter"] = filter
            if select:
                params["$select"] = select
            response = self._request("GET", f"/Entity/{entity}", operation=operation, params=params)
            if response.status_code != 200:
                raise self._failure(response, operation)
            data = self._json(response, operation)
            if not isinstance(data, list):
                raise unexpected_shape(self._table, operation, "a list was expected")
            if not data:
                return
            first = data[0].get(key) if isinstance(data[0], dict) else None
            if skip and first is not None and first == previous_first:
                # The server ignored $skip: without this the scan would never end.
                raise unexpected_shape(self._table, operation, "the same page came back twice")
            previous_first = first
            yield data
            if len(data) < top:
                return
            skip += len(data)

    def _page_size(self, page_size: int | None) -> int:
        size = self._settings.page_size if page_size is None else page_size
        if size < 1:
            raise ValueError("page_size must be at least 1")
        return min(size, MAX_PAGE_SIZE)

    def _get(self, entity: str, key: str, model: type[M], operation: str) -> M | None:
        response = self._request("GET", _item_path(entity, key), operation=operation)
        if response.status_code == 404 and _error_fields(response)[0] == "NotFound":
            return None
        if response.status_code != 200:
            raise self._failure(response, operation)
        return self._validate(model, self._json(response, operation), operation)

    def _create(
        self,
        entity: str,
        body: dict[str, Any],
        model: type[M],
        operation: str,
        *,
        headers: Mapping[str, str] | None = None,
        customers: Iterable[str] = (),
        products: Iterable[str] = (),
    ) -> M:
        response = self._request(
            "POST", f"/Entity/{entity}", operation=operation, json=body, headers=headers
        )
        if response.status_code not in (200, 201):
            raise self._failure(response, operation, customers=customers, products=products)
        return self._validate(model, self._json(response, operation), operation)

    def _update(
        self,
        entity: str,
        key: str,
        body: dict[str, Any],
        model: type[M],
        operation: str,
        *,
        customers: Iterable[str] = (),
    ) -> M:
        response = self._request("PUT", _item_path(entity, key), operation=operation, json=body)
        if response.status_code != 200:
            raise self._failure(response, operation, customers=customers)
        return self._validate(model, self._json(response, operation), operation)

    def _delete(self, entity: str, key: str, operation: str) -> None:
        response = self._request("DELETE", _item_path(entity, key), operation=operation)
        if response.status_code not in (200, 202, 204):
            raise self._failure(response, operation)

    # ------------------------------------------------------------------ operations

    def check(self) -> str:
        """One cheap authenticated call (one customer); a short description, or an error."""
        operation = "check"
        response = self._request(
            "GET", f"/Entity/{CUSTOMER}", operation=operation, params={"$top": 1}
        )
        if response.status_code != 200:
            raise self._failure(response, operation)
        data = self._json(response, operation)
        if not isinstance(data, list):
            raise unexpected_shape(self._table, operation, "a list was expected")
        return (
            f"licence {self._settings.licence_code}, company {self._settings.company_id}: "
            "customers readable"
        )

    def iter_customer_pages(self, *, page_size: int | None = None) -> Iterator[list[ErpCustomer]]:
        """Every customer in key order, one list per HTTP page."""
        return self._pages(
            CUSTOMER,
            ErpCustomer,
            "NoClient",
            operation="list customers",
            filter=None,
            page_size=page_size,
        )

    def iter_checked_customer_pages(
        self, *, page_size: int | None = None
    ) -> Iterator[list[ErpCustomer | InvalidRecord]]:
        """Every customer in key order, one list per page; a broken one is an InvalidRecord."""
        return self._checked_pages(
            CUSTOMER, ErpCustomer, "NoClient", operation="list customers", page_size=page_size
        )

    def iter_raw_customer_pages(self, *, page_size: int | None = None) -> Iterator[list[Any]]:
        """Every customer in key order, one list per page, as the ERP sent it (unvalidated).

        For a reader that validates only some records (:meth:`check_customer`): the
        producer's change detection, which fingerprints every customer of every poll.
        """
        return self._raw_pages(
            CUSTOMER, "NoClient", operation="list customers", filter=None, page_size=page_size
        )

    def customer_names(self) -> dict[str, str | None]:
        """Every customer's name by its ``NoClient`` (``$select``: two fields a record)."""
        names: dict[str, str | None] = {}
        for page in self._raw_pages(
            CUSTOMER,
            "NoClient",
            operation="list customer names",
            filter=None,
            page_size=MAX_PAGE_SIZE,
            select="NoClient,NomClient",
        ):
            for item in page:
                if isinstance(item, dict) and isinstance(item.get("NoClient"), str):
                    name = item.get("NomClient")
                    text = name.strip() if isinstance(name, str) else ""
                    names[item["NoClient"]] = text or None
        return names

    @staticmethod
    def check_customer(item: Any) -> ErpCustomer | InvalidRecord:
        """One customer of a raw page, read as :meth:`iter_checked_customer_pages` reads it."""
        return _checked(ErpCustomer, "NoClient", item)

    def iter_customers(
        self, *, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[ErpCustomer]:
        """Every customer (matching ``filter``, an OData ``$filter``: see :func:`where`)."""
        for page in self._pages(
            CUSTOMER,
            ErpCustomer,
            "NoClient",
            operation="list customers",
            filter=filter,
            page_size=page_size,
        ):
            yield from page

    def get_customer(self, no_client: str) -> ErpCustomer | None:
        """The customer with this ``NoClient``, or None."""
        return self._get(CUSTOMER, no_client, ErpCustomer, "get customer")

    def create_customer(self, customer: ErpCustomer) -> ErpCustomer:
        """Create a customer; an existing ``NoClient`` raises RecordExistsError."""
        parents = [customer.parent_number] if customer.parent_number else []
        return self._create(
            CUSTOMER, customer.to_erp(), ErpCustomer, "create customer", customers=parents
        )

    def update_customer(self, customer: ErpCustomer) -> ErpCustomer:
        """Replace the customer's fields; an unknown ``NoClient`` raises RecordMissingError."""
        parents = [customer.parent_number] if customer.parent_number else []
        return self._update(
            CUSTOMER,
            customer.number,
            customer.to_erp(),
            ErpCustomer,
            "update customer",
            customers=parents,
        )

    def delete_customer(self, no_client: str) -> None:
        """Delete a customer; an unknown ``NoClient`` raises RecordMissingError."""
        self._delete(CUSTOMER, no_client, "delete customer")

    def iter_product_pages(self, *, page_size: int | None = None) -> Iterator[list[ErpProduct]]:
        """Every product in key order, one list per HTTP page."""
        return self._pages(
            PRODUCT,
            ErpProduct,
            "NoProduit",
            operation="list products",
            filter=None,
            page_size=page_size,
        )

    def iter_checked_product_pages(
        self, *, page_size: int | None = None
    ) -> Iterator[list[ErpProduct | InvalidRecord]]:
        """Every product in key order, one list per page; a broken one is an InvalidRecord."""
        return self._checked_pages(
            PRODUCT, ErpProduct, "NoProduit", operation="list products", page_size=page_size
        )

    def iter_products(
        self, *, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[ErpProduct]:
        """Every product (matching ``filter``, an OData ``$filter``: see :func:`where`)."""
        for page in self._pages(
            PRODUCT,
            ErpProduct,
            "NoProduit",
            operation="list products",
            filter=filter,
            page_size=page_size,
        ):
            yield from page

    def iter_checked_contact_pages(
        self, *, page_size: int | None = None
    ) -> Iterator[list[ErpContact | InvalidRecord]]:
        """Every contact (a customer's person) in key order, one list per page; a broken
        one is an InvalidRecord."""
        return self._checked_pages(
            CONTACT, ErpContact, "NoContact", operation="list contacts", page_size=page_size
        )

    def get_product(self, no_produit: str) -> ErpProduct | None:
        """The product with this ``NoProduit``, or None."""
        return self._get(PRODUCT, no_produit, ErpProduct, "get product")

    def create_product(self, product: ErpProduct) -> ErpProduct:
        """Create a product; an existing ``NoProduit`` raises RecordExistsError."""
        return self._create(PRODUCT, product.to_erp(), ErpProduct, "create product")

    def update_product(self, product: ErpProduct) -> ErpProduct:
        """Replace the product's fields; an unknown ``NoProduit`` raises RecordMissingError."""
        return self._update(PRODUCT, product.number, product.to_erp(), ErpProduct, "update product")

    def delete_product(self, no_produit: str) -> None:
        """Delete a product; an unknown ``NoProduit`` raises RecordMissingError."""
        self._delete(PRODUCT, no_produit, "delete product")

    def create_invoice(self, invoice: ErpInvoice) -> ErpInvoiceCreated:
        """Create a customer invoice exactly once.

        ``If-None-Match: *`` makes the ERP refuse an invoice whose ``Référence`` exists
        (RecordExistsError), so a retry after a lost answer cannot bill twice. An unknown
        customer or product raises DependencyError: the invoice waits for it.
        """
        return self._create(
            CUSTOMER_INVOICE,
            {"Facture": invoice.to_erp(exclude_none=True)},
            ErpInvoiceCreated,
            "create invoice",
            headers={"If-None-Match": "*"},
            customers=[invoice.bill_to.customer_number],
            products=invoice.product_numbers(),
        )

    def find_invoice(self, reference: str) -> ErpInvoiceCreated | None:
        """The invoice whose ``Facture.Référence`` is ``reference``, or None."""
        operation = "find invoice"
        pages = self._pages(
            CUSTOMER_INVOICE,
            ErpInvoiceCreated,
            "NoFacture",
            operation=operation,
            filter=where({"Facture.Référence": reference}),
            page_size=2,
        )
        found = next(pages, [])
        if len(found) > 1:
            raise AmbiguousMatchError(
                f"{self.system} {operation} failed: several invoices have this Référence",
                system=self.system,
                operation=operation,
                hint="Référence should be unique in the ERP; remove the duplicate invoice",
            )
        return found[0] if found else None

    def iter_invoice_pages(
        self, *, page_size: int | None = None
    ) -> Iterator[list[ErpInvoiceCreated]]:
        """Every customer invoice in number order, one list per HTTP page."""
        return self._pages(
            CUSTOMER_INVOICE,
            ErpInvoiceCreated,
            "NoFacture",
            operation="list invoices",
            filter=None,
            page_size=page_size,
        )

    def get_invoice(self, no_facture: str) -> ErpInvoiceCreated | None:
        """The invoice with this ``NoFacture``, or None."""
        return self._get(CUSTOMER_INVOICE, no_facture, ErpInvoiceCreated, "get invoice")


def _checked(model: type[M], key: str, item: Any) -> M | InvalidRecord:
    """``item`` validated, or an InvalidRecord naming its key (when it has one)."""
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        raw = item if isinstance(item, dict) else {}
        value = raw.get(key)
        record_key = value.strip() if isinstance(value, str) else None
        return InvalidRecord(record_key or None, raw, tuple(_problems(exc)))


def _item_path(entity: str, key: str) -> str:
    if not key:
        raise ValueError("a key is required")
    return f"/Entity/{entity}/{quote(key, safe='')}"


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """``Code`` and ``Message`` of an ASP.NET-style error body, when there is one."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("Code", body.get("code"))
    message = body.get("Message", body.get("message"))
    return (
        str(code) if code is not None and code != "" else None,
        message if isinstance(message, str) else None,
    )


def _problems(exc: ValidationError) -> list[str]:
    """Each invalid field of a record and the kind of error, never the value."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['type']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _shape_detail(exc: ValidationError) -> str:
    """Where the answer differs from the model: locations and error types, never values."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        where_ = ".".join(str(p) for p in err["loc"]) or "answer"
        parts.append(f"{where_}: {err['type']}")
    return "; ".join(parts)
