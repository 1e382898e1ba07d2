"""The OnlineERP / ERPConnector simulator: the HUB's REST API in front of an Acomba-like ERP.

Follows the vendor's overview (vendor-docs/004, VENDORS.md §4) and, where it is silent,
docs/sandbox-conventions.md: Basic auth ``CodeLicence:secret`` plus the ``COMPANY_ID``
header; ``/api/Entity/<Name>`` for ``Customer`` (key ``NoClient``), ``Contact`` (a
customer's person, key ``NoContact``, its customer in ``NoClient``), ``Product`` (key
``NoProduit``) and ``CustomerInvoice`` (number ``NoFacture`` assigned here, identity
``Facture.Référence``, create-only); OData-like list options; errors as
``{"Message", "Code"}``.

The vendor's examples write ``PUT`` and ``DELETE`` against the collection URL
(``/api/Entity/Product/``) with the record in the body, the conventions against
``/Entity/<Name>/{id}``: both are served. Paths are matched like ASP.NET routes, so
``/api/entity/customer`` works as well as ``/api/Entity/Customer``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simulators._sandbox import LoadRefusedError, SeedRequest, Simulator, VendorError
from simulators.onlineerp import _entities
from simulators.onlineerp._entities import BodyError
from simulators.onlineerp._query import QueryError, parse_query, project
from simulators.onlineerp._store import EntityStore
from simulators.seed import generate
from simulators.server import CREDENTIALS

CUSTOMER = "Customer"
PRODUCT = "Product"
INVOICE = "CustomerInvoice"
#: a customer's people (the sandbox's entity: docs/sandbox-conventions.md)
CONTACT = "Contact"
ENTITIES = (CUSTOMER, CONTACT, PRODUCT, INVOICE)
KEY_FIELDS = {
    CUSTOMER: "NoClient",
    CONTACT: "NoContact",
    PRODUCT: "NoProduit",
    INVOICE: "NoFacture",
}
#: how a create or update body of each editable entity becomes a stored record
VALIDATORS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    CUSTOMER: _entities.customer,
    CONTACT: _entities.contact,
    PRODUCT: _entities.product,
}
REFERENCE_PATH = ("Facture", "Référence")

#: the HTTP status of each vendor error code (docs/sandbox-conventions.md)
VENDOR_CODES: dict[str, int] = {
    "InvalidBody": 400,
    "InvalidFilter": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "Exists": 409,
    "RobotOffline": 503,
    "RobotTimeout": 504,
}
_MESSAGES = {
    "InvalidBody": "The request body is invalid.",
    "InvalidFilter": "The query specified in the URI is not valid.",
    "Unauthorized": "Authorization has been denied for this request.",
    "Forbidden": "This licence does not give access to the requested company.",
    "NotFound": "The requested record was not found.",
    "MethodNotAllowed": "The requested resource does not support this HTTP method.",
    "Exists": "The record already exists.",
    "RobotOffline": "The robot at the customer's site is not connected.",
    "RobotTimeout": "The robot at the customer's site did not answer in time.",
}
#: the code an error of a plain HTTP status carries (injected ``statuses``, unknown routes)
_CODE_OF_STATUS = {status: code for code, status in VENDOR_CODES.items()} | {
    400: "InvalidBody",
    412: "Exists",
}
_JSON = "application/json; charset=utf-8"


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status_code=status, media_type=_JSON, headers=headers)


def _fail(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return VendorError(status, {"Message": message, "Code": code}, headers or {}).response()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class OnlineErpSimulator(Simulator):
    """OnlineERP / ERPConnector over HTTP: customers, their contacts, products and
    create-only invoices."""

    name = "onlineerp"

    def __init__(
        self,
        *,
        licence_code: str = CREDENTIALS["onlineerp"]["licence_code"],
        secret: str = CREDENTIALS["onlineerp"]["secret"],
        companies: tuple[str, ...] = (CREDENTIALS["onlineerp"]["company_id"],),
    ) -> None:
        super().__init__()
        self._licence = licence_code.encode()
        self._secret = secret.encode()
        self._companies = frozenset(companies)
        self._stores: dict[str, EntityStore] = {}
        self._next_invoice = 1
        self.reset()

    # -- the Simulator contract -------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for segment in ("Entity", "entity"):
            base = f"/api/{segment}/{{entity}}"
            for path in (base, base + "/"):
                routes.append(
                    Route(path, self._collection, methods=["GET", "POST", "PUT", "DELETE"])
                )
            routes.append(Route(base + "/{key}", self._item, methods=["GET", "PUT", "DELETE"]))
        return routes

    def control_routes(self) -> list[BaseRoute]:
        """What the ERP's users do by hand to an invoice: record a payment, cancel it."""
        return [
            Route("/_sandbox/invoices/{key}/payment", self._pay, methods=["POST"]),
            Route("/_sandbox/invoices/{key}/cancel", self._cancel, methods=["POST"]),
        ]

    async def _pay(self, request: Request) -> Response:
        """``{"Montant": n}`` pays n (no body or no ``Montant``: the whole balance)."""
        raw = await request.body()
        body = await _body(request) if raw.strip() else {}
        if isinstance(body, Response):
            return body
        amount = body.get("Montant") if isinstance(body, dict) else None
        return self._change_invoice(
            str(request.path_params["key"]), lambda record: _entities.paid(record, amount)
        )

    async def _cancel(self, request: Request) -> Response:
        return self._change_invoice(str(request.path_params["key"]), _entities.cancelled)

    def _change_invoice(
        self, key: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Response:
        store = self._stores[INVOICE]
        with self.lock:
            record = store.get(key)
            if record is None:
                return _not_found(store, key)
            try:
                changed = change(record)
            except BodyError as exc:
                return _fail(400, "InvalidBody", str(exc))
            store.put(changed)
        return _json(changed)

    def error(self, status: int, message: str) -> VendorError:
        code = _CODE_OF_STATUS.get(status)
        if code is None:
            try:
                code = HTTPStatus(status).phrase.replace(" ", "")
            except ValueError:
                code = f"Error{status}"
        return VendorError(status, {"Message": message, "Code": code})

    def vendor_error(self, code: str) -> VendorError:
        status = VENDOR_CODES.get(code, 500)
        message = _MESSAGES.get(code, f"Error {code}.")
        return VendorError(status, {"Message": message, "Code": code})

    def records(self, entity: str) -> list[Any] | None:
        with self.lock:
            store = self._stores.get(entity)
            return None if store is None else store.all()

    def entities(self) -> list[str]:
        return list(ENTITIES)

    def reset(self) -> None:
        with self.lock:
            self._stores = {
                CUSTOMER: EntityStore(CUSTOMER, "NoClient", _entities.CUSTOMER_FIELDS),
                CONTACT: EntityStore(CONTACT, "NoContact", _entities.CONTACT_FIELDS),
                PRODUCT: EntityStore(PRODUCT, "NoProduit", _entities.PRODUCT_FIELDS),
                INVOICE: EntityStore(
                    INVOICE, "NoFacture", _entities.INVOICE_FIELDS, indexed=[REFERENCE_PATH]
                ),
            }
            self._next_invoice = 1

    def seed(self, request: SeedRequest) -> dict[str, int]:
        data = generate(
            request.customers,
            request.products,
            request.activities,
            request.random_seed,
            contacts=request.contacts,
        )
        with self.lock:
            self.reset()
            self._stores[CUSTOMER].load(data.customers)
            self._stores[PRODUCT].load(data.products)
            counts = {CUSTOMER: len(data.customers), PRODUCT: len(data.products)}
            if request.contacts:
                self._stores[CONTACT].load(data.contacts)
                counts[CONTACT] = len(data.contacts)
            return counts

    def load(self, entity: str, bodies: Sequence[Any]) -> list[Any] | None:
        """``Customer``: each body as ``POST /Entity/Customer`` takes it (an existing key
        is refused, as that call's 409)."""
        if entity != CUSTOMER:
            return None
        store = self._stores[CUSTOMER]
        answers: list[Any] = []
        for index, body in enumerate(bodies):
            try:
                record = _entities.customer(_entities.require_object(body, CUSTOMER))
            except BodyError as exc:
                raise LoadRefusedError(index, str(exc)) from exc
            if store.get(record["NoClient"]) is not None:
                raise LoadRefusedError(index, f"a Customer {record['NoClient']!r} exists")
            store.put(record)
            answers.append(record)
        return answers

    # -- HTTP ---------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response | None:
        """401 for missing or wrong credentials, 403 for a company the licence lacks."""
        unauthorized = _fail(
            401,
            "Unauthorized",
            _MESSAGES["Unauthorized"],
            {"WWW-Authenticate": 'Basic realm="OnlineERP"'},
        )
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return unauthorized
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return unauthorized
        licence, colon, secret = decoded.partition(b":")
        # Both compared in constant time, and both always compared, so timing tells nothing.
        licence_ok = hmac.compare_digest(licence, self._licence)
        secret_ok = hmac.compare_digest(secret, self._secret)
        if not (colon and licence_ok and secret_ok):
            return unauthorized
        company = request.headers.get("company_id", "0").strip()
        if company not in self._companies:
            return _fail(403, "Forbidden", _MESSAGES["Forbidden"])
        return None

    def _store_of(self, request: Request) -> EntityStore | Response:
        asked = str(request.path_params["entity"])
        for name in ENTITIES:
            if name.lower() == asked.lower():
                return self._stores[name]
        return _fail(404, "NotFound", f"No entity named '{asked}'.")

    async def _collection(self, request: Request) -> Response:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        store = self._store_of(request)
        if isinstance(store, Response):
            return store
        if request.method in {"GET", "HEAD"}:
            return self._list(store, request)
        if request.method != "POST" and store.name == INVOICE:
            return _create_only()
        body = await _body(request)
        if isinstance(body, Response):
            return body
        if request.method == "POST":
            return self._create(store, body, request.headers.get("if-none-match"))
        key = body.get(store.key_field) if isinstance(body, dict) else None
        if not isinstance(key, str):
            return _fail(
                400, "InvalidBody", f"The body must carry the key {store.key_field} as text."
            )
        if request.method == "PUT":
            return self._update(store, key, body)
        return self._delete(store, key)

    async def _item(self, request: Request) -> Response:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        store = self._store_of(request)
        if isinstance(store, Response):
            return store
        key = str(request.path_params["key"])
        if request.method in {"GET", "HEAD"}:
            return self._get(store, key, request)
        if store.name == INVOICE:
            return _create_only()
        if request.method == "DELETE":
            return self._delete(store, key)
        body = await _body(request)
        if isinstance(body, Response):
            return body
        return self._update(store, key, body)

    def _list(self, store: EntityStore, request: Request) -> Response:
        try:
            query = parse_query(request.query_params.multi_items(), store.known_field, store.name)
        except QueryError as exc:
            return _fail(400, "InvalidFilter", str(exc))
        with self.lock:
            page = store.page(query)
        select = query.select
        if select is not None:
            return _json([project(record, select) for record in page])
        return _json(page)

    def _get(self, store: EntityStore, key: str, request: Request) -> Response:
        select_text = request.query_params.get("$select")
        select = None
        if select_text is not None:
            try:
                select = parse_query(
                    [("$select", select_text)], store.known_field, store.name
                ).select
            except QueryError as exc:
                return _fail(400, "InvalidFilter", str(exc))
        with self.lock:
            record = store.get(key)
        if record is None:
            return _not_found(store, key)
        return _json(record if select is None else project(record, select))

    def _create(self, store: EntityStore, body: Any, if_none_match: str | None) -> Response:
        guarded = if_none_match is not None and if_none_match.strip() == "*"
        try:
            if store.name == INVOICE:
                return self._create_invoice(store, body, guarded)
            record = VALIDATORS[store.name](_entities.require_object(body, store.name))
        except BodyError as exc:
            return _fail(400, "InvalidBody", str(exc))
        key = record[store.key_field]
        with self.lock:
            missing = self._missing_customer(store, record)
            if missing is not None:
                return missing
            if store.get(key) is not None:
                return _exists(guarded, f"A {store.name} with {store.key_field} '{key}' exists.")
            store.put(record)
        return _created(store, record)

    def _create_invoice(self, store: EntityStore, body: Any, guarded: bool) -> Response:
        reference = _entities.reference_of(body)
        with self.lock:
            existing = store.find(REFERENCE_PATH, reference)
            if existing is not None:
                return _exists(
                    guarded,
                    f"A CustomerInvoice with Référence '{reference}' exists "
                    f"(NoFacture {existing['NoFacture']}).",
                )
            products = self._stores[PRODUCT]
            customers = self._stores[CUSTOMER]
            record = _entities.invoice(
                body,
                number=f"{self._next_invoice:08d}",
                product_price=_price_lookup(products),
                customer_exists=lambda no: customers.get(no) is not None,
                today=dt.datetime.now(dt.UTC).date(),
            )
            store.put(record)
            self._next_invoice += 1
        return _created(store, record)

    def _update(self, store: EntityStore, key: str, body: Any) -> Response:
        try:
            changes = _entities.require_object(body, store.name)
            _entities.same_key(changes, store.key_field, key, store.name)
            with self.lock:
                old = store.get(key)
                if old is None:
                    return _not_found(store, key)
                record = VALIDATORS[store.name]({**old, **changes})
                missing = self._missing_customer(store, record)
                if missing is not None:
                    return missing
                store.put(record)
        except BodyError as exc:
            return _fail(400, "InvalidBody", str(exc))
        return _json(record)

    def _missing_customer(self, store: EntityStore, record: dict[str, Any]) -> Response | None:
        """A contact must name an existing customer (400 ``InvalidBody`` otherwise)."""
        if store.name != CONTACT or self._stores[CUSTOMER].get(record["NoClient"]) is not None:
            return None
        customer = record["NoClient"]
        message = f"The customer '{customer}' (Contact.NoClient) does not exist."
        return _fail(400, "InvalidBody", message)

    def _delete(self, store: EntityStore, key: str) -> Response:
        with self.lock:
            removed = store.delete(key)
        if removed is None:
            return _not_found(store, key)
        return Response(status_code=204)


async def _body(request: Request) -> Any:
    """The JSON body, or the 400 ``InvalidBody`` answer."""
    raw = await request.body()
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _fail(400, "InvalidBody", "The request body is not valid JSON.")


def _price_lookup(products: EntityStore) -> Callable[[str], float | int | None]:
    def price(key: str) -> float | int | None:
        found = products.get(key)
        return None if found is None else found["PrixVente"]

    return price


def _created(store: EntityStore, record: dict[str, Any]) -> Response:
    location = f"/api/Entity/{store.name}/{quote(record[store.key_field], safe='')}"
    return _json(record, 201, {"Location": location})


def _exists(guarded: bool, message: str) -> Response:
    """409 ``Exists``; 412 when the client asked ``If-None-Match: *``."""
    return _fail(412 if guarded else 409, "Exists", message)


def _not_found(store: EntityStore, key: str) -> Response:
    return _fail(404, "NotFound", f"No {store.name} with {store.key_field} '{key}'.")


def _create_only() -> Response:
    return _fail(
        405,
        "MethodNotAllowed",
        "CustomerInvoice is create-only: correct an invoice with a credit note.",
        {"Allow": "GET, POST"},
    )
