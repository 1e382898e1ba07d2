"""The Atollon CRM crawler import service, as its help page documents it.

Every route lives under ``/crab/crawler`` and needs ``?instance=sandbox``. Answers are
``{"result": "SUCCESS", ...}`` or ``{"result": "FAIL", "message": ...}``; a business failure
answers **HTTP 200** (the documented quirk, so clients must read ``result``), a body that is
not JSON **400**, an unknown instance **403** (docs/sandbox-conventions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators import seed as seed_data
from simulators._sandbox import LoadRefusedError, SeedRequest, Simulator, VendorError
from simulators.atollon._contacts import CompanyMatch, ContactStore
from simulators.atollon._invoices import INVOICE_STATUSES, InvoiceStore
from simulators.atollon._orders import OrderStore
from simulators.atollon._products import ProductStore
from simulators.atollon._request import FailError, IdSequence, fail_body, parse_json
from simulators.atollon._work import WorkStore
from simulators.handmade import Handmade

INSTANCE = "sandbox"
ROOT = "/crab/crawler"
#: the first id of the seeded activity documents (``download_document?docId=``)
SEED_DOCUMENT_BASE = 5_000_000

Handler = Callable[[QueryParams, Any], dict[str, Any] | list[Any] | Response]


#: the read of contacts and products is NOT documented (docs/sandbox-conventions.md): a page
#: holds ``limit`` records (default and maximum below), pages count from 1
LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000


def _query(params: QueryParams, key: str) -> str | None:
    value = params.get(key)
    if value is None or not value.strip():
        return None
    return value.strip()


def _page(params: QueryParams) -> tuple[int, int]:
    """``(page, limit)`` of a list request; a value that is not a positive integer: 400."""
    try:
        page = int(_query(params, "page") or 1)
        limit = int(_query(params, "limit") or LIST_DEFAULT_LIMIT)
    except ValueError as exc:
        raise FailError("Invalid request: page and limit must be integers", 400) from exc
    if page < 1 or limit < 1:
        raise FailError("Invalid request: page and limit must be positive", 400)
    return page, min(limit, LIST_MAX_LIMIT)


class AtollonSimulator(Simulator):
    """Atollon CRM's crawler import service: contacts, products, billing, invoices."""

    name = "atollon"

    def __init__(self, instance: str = INSTANCE, company_match: CompanyMatch = "unclaimed") -> None:
        """``company_match``: ``"name"`` matches a company whose external id is unknown
        with any company of its name (docs/sandbox-conventions.md)."""
        super().__init__()
        self.instance = instance
        self.ids = IdSequence()
        self.contacts = ContactStore(self.ids, company_match)
        self.products = ProductStore(self.ids)
        self.work = WorkStore(self.ids, self.contacts, self.products)
        self.invoices = InvoiceStore(self.ids)
        self.orders = OrderStore(self.ids)

    # ------------------------------------------------------------- the wire

    def error(self, status: int, message: str) -> VendorError:
        """Every failure, whatever its status, in the crawler's FAIL shape."""
        return VendorError(status, fail_body(message))

    def vendor_error(self, code: str) -> VendorError:
        """An injected vendor failure: FAIL with HTTP 200, the code as the message."""
        return VendorError(200, fail_body(code))

    def _check_instance(self, params: QueryParams) -> None:
        if params.get("instance") != self.instance:
            raise FailError("Unknown instance", 403)

    def _route(self, method: str, path: str, handler: Handler, *, body: bool) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                self._check_instance(request.query_params)
                payload = parse_json(await request.body()) if body else None
                with self.lock:
                    answer = handler(request.query_params, payload)
            except FailError as exc:
                return JSONResponse(fail_body(exc.message), status_code=exc.status)
            if isinstance(answer, Response):
                return answer
            return JSONResponse(answer)

        return Route(f"{ROOT}/{path}", endpoint, methods=[method])

    def routes(self) -> list[BaseRoute]:
        """The crawler request types."""
        work = self.work
        return [
            self._route("POST", "contact", lambda q, b: self.contacts.upsert(b), body=True),
            self._route("POST", "product", lambda q, b: self.products.upsert(b), body=True),
            # not documented: the read reconcile needs (docs/sandbox-conventions.md)
            self._route("GET", "contact", lambda q, b: self.contacts.page(*_page(q)), body=False),
            self._route("GET", "product", lambda q, b: self.products.page(*_page(q)), body=False),
            self._route("POST", "folder", lambda q, b: work.post_folder(b), body=True),
            self._route(
                "GET", "folder_sample", lambda q, b: work.folder_sample(_query(q, "id")), body=False
            ),
            self._route(
                "POST", "project", lambda q, b: work.upsert_project(b, create=True), body=True
            ),
            self._route(
                "PUT", "project", lambda q, b: work.upsert_project(b, create=False), body=True
            ),
            self._route(
                "GET", "project", lambda q, b: work.get_project(_query(q, "id")), body=False
            ),
            self._route(
                "POST", "tracking_code", lambda q, b: work.post_tracking_code(b), body=True
            ),
            self._route(
                "GET",
                "billing",
                lambda q, b: work.list_billing(_query(q, "billingStatus")),
                body=False,
            ),
            self._route("PUT", "billing", lambda q, b: work.update_billing(b), body=True),
            self._route(
                "GET",
                "activity",
                lambda q, b: (
                    work.get_activity(_query(q, "id"), _query(q, "billingStatus"))
                    if _query(q, "id") is not None
                    else work.list_activities()
                ),
                body=False,
            ),
            self._route("PUT", "activity", lambda q, b: work.update_activity(b), body=True),
            self._route("GET", "download_document", self._download, body=False),
            self._route(
                "GET",
                "invoice_status",
                lambda q, b: [dict(s) for s in INVOICE_STATUSES],
                body=False,
            ),
            self._route(
                "GET", "order-received", lambda q, b: self.orders.get(_query(q, "id")), body=False
            ),
            self._route("POST", "invoice-issued", lambda q, b: self.invoices.create(b), body=True),
            self._route("GET", "invoice-issued", self._get_invoices, body=False),
            self._route(
                "PUT",
                "invoice-issued",
                lambda q, b: self.invoices.update(_query(q, "id"), b),
                body=True,
            ),
        ]

    def control_routes(self) -> list[BaseRoute]:
        """What Atollon's users do by hand: enter a received sales order."""
        return [Route("/_sandbox/orders", self._enter_order, methods=["POST"])]

    async def _enter_order(self, request: Request) -> Response:
        try:
            payload = parse_json(await request.body())
            with self.lock:
                answer = self.orders.enter(payload)
        except FailError as exc:
            return JSONResponse(fail_body(exc.message), status_code=exc.status)
        return JSONResponse(answer, status_code=201)

    def _get_invoices(self, params: QueryParams, body: Any) -> dict[str, Any] | list[Any]:
        keys = ("id", "invoiceNumber", "offset", "limit")
        return self.invoices.get({key: _query(params, key) for key in keys})

    def _download(self, params: QueryParams, body: Any) -> Response:
        """``GET download_document?docId=``: the file itself."""
        document = self.work.download(_query(params, "docId"))
        return Response(
            document.content,
            media_type=document.media_type,
            headers={"Content-Disposition": f'attachment; filename="{document.name}"'},
        )

    # ------------------------------------------------------- control surface

    def entities(self) -> list[str]:
        """The entities ``/_sandbox/records/{entity}`` shows."""
        return [
            "contacts",
            "products",
            "billing",
            "invoices",
            "orders",
            "projects",
            "tracking_codes",
        ]

    def records(self, entity: str) -> list[Any] | None:
        """Every stored record of ``entity``; billing shows every item with its state."""
        if entity == "contacts":
            return self.contacts.records()
        if entity == "products":
            return self.products.records()
        if entity == "billing":
            return self.work.billing_records()
        if entity == "invoices":
            return self.invoices.records()
        if entity == "orders":
            return self.orders.records()
        if entity == "projects":
            return [self.work.get_project(pid)["project"] for pid in self.work.projects]
        if entity == "tracking_codes":
            return [dict(code) for code in self.work.tracking_codes.values()]
        return None

    def reset(self) -> None:
        """Forget every record."""
        with self.lock:
            self.contacts.reset()
            self.products.reset()
            self.work.reset()
            self.invoices.reset()
            self.ids.reset()
            self.orders.reset()

    def load_handmade(self, companies: Sequence[Handmade]) -> int:
        """Company contacts typed in Atollon: no external id of any system."""
        for made in companies:
            body: dict[str, Any] = {"company": {"companyName": made.name}}
            if made.email is not None:
                body["contacts"] = {"email": [{"contact": made.email}]}
            if made.tax_number is not None:
                body["vatNo"] = made.tax_number
            self.contacts.add_handmade(body)
        return len(companies)

    def load(self, entity: str, bodies: Sequence[Any]) -> list[Any] | None:
        """``contacts``: each body as ``POST crawler/contact`` takes it (create or update)."""
        if entity != "contacts":
            return None
        answers: list[Any] = []
        for index, body in enumerate(bodies):
            try:
                answers.append(self.contacts.upsert(body))
            except FailError as exc:
                raise LoadRefusedError(index, exc.message) from exc
        return answers

    def seed(self, request: SeedRequest) -> dict[str, int]:
        """Replace the billing activities with the seed's (ERP customers and products are
        referred to through external ids of the ``onlineerp`` system)."""
        data = seed_data.generate(
            request.customers, request.products, request.activities, request.random_seed
        )
        with self.lock:
            self.work.clear_billing()
            items = sum(
                self.work.load_activity(activity, str(SEED_DOCUMENT_BASE + index))
                for index, activity in enumerate(data.activities)
            )
        return {"billing": len(data.activities), "billingItems": items}
