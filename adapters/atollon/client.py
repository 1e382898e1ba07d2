"""The Atollon crawler import service client: contacts, products, billing, invoice states.

Every call goes to ``<base_url>/crab/crawler/<request_type>?instance=<instance>``. The
instance parameter is the only documented "credential"; the crawler's authentication is not
documented, so an ``Authorization: Bearer`` header is sent only when ``api_token`` is set.

Atollon reports failures as ``{"result": "FAIL", "message": ...}`` and often with HTTP 200,
so every answer is checked for that envelope *before* its status is trusted; see
:mod:`adapters.atollon.errors` for how a failure is classified.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from adapters._http import (
    ErrorTable,
    decode_json,
    excerpt,
    parse_retry_after,
    send,
    unexpected_shape,
)
from adapters.atollon.errors import (
    GENERIC_FAIL,
    READ_UNSUPPORTED,
    SYSTEM,
    error_table,
    fail_code,
)
from adapters.atollon.models import (
    AtollonBillingActivity,
    AtollonBillingUpdate,
    AtollonContact,
    AtollonContactInput,
    AtollonContactResult,
    AtollonInvoiceStatus,
    AtollonProduct,
    AtollonProductInput,
    AtollonProductResult,
    BillingStatus,
)
from erpsync.errors import ErrorClass, SyncError
from erpsync.settings import AtollonSettings

#: Where the crawler's request types live under the host (older revisions: /crab/import-tool).
CRAWLER_PATH = "/crab/crawler"

# A FAIL envelope is a few hundred bytes; a larger body is a document or a list, not a FAIL.
_FAIL_SNIFF_MAX_BYTES = 64 * 1024

_M = TypeVar("_M", bound=BaseModel)

_BILLING_LIST = TypeAdapter(list[AtollonBillingActivity])
_CONTACT_LIST = TypeAdapter(list[AtollonContact])
_PRODUCT_LIST = TypeAdapter(list[AtollonProduct])
#: statuses with which a server says it has no such read
_NO_SUCH_READ = frozenset({404, 405, 501})
_STATUS_LIST = TypeAdapter(list[AtollonInvoiceStatus])


def _fail_message(response: httpx.Response) -> str | None:
    """The message of a ``{"result": "FAIL"}`` answer ("" when it has none), else None."""
    body = response.content
    if len(body) > _FAIL_SNIFF_MAX_BYTES or not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or str(data.get("result", "")).strip().upper() != "FAIL":
        return None
    message = data.get("message")
    return message if isinstance(message, str) else ""


def _shape_detail(exc: ValidationError) -> str:
    """Where a response failed validation: field paths only, never the values."""
    paths = sorted({".".join(str(part) for part in err["loc"]) or "body" for err in exc.errors()})
    shown = ", ".join(paths[:5]) + (", …" if len(paths) > 5 else "")
    return f"{exc.error_count()} invalid field(s): {shown}"


def known_limits(settings: AtollonSettings) -> list[str]:
    """What the crawler documents no way to express, as operators read it (``doctor``)."""
    if settings.deactivation == "group":
        how = (
            'deactivation = "group": a deactivated customer (or person) is assigned to the '
            "Inactive contact group, and a reactivation cannot take it out"
        )
    else:
        how = (
            'deactivation = "none": customer deactivations are not sent to Atollon '
            "(nor those of people)"
        )
    return [
        f"{how} (the crawler has no delete, and contactGroup only assigns)",
        "a customer deleted in the ERP stays in Atollon as it was (a person too)",
    ]


class AtollonClient:
    """Typed access to the Atollon crawler import service over an injected ``httpx.Client``."""

    system: str = SYSTEM

    def __init__(
        self,
        http: httpx.Client,
        settings: AtollonSettings,
        *,
        error_overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self.errors: ErrorTable = error_table(error_overrides)

    @property
    def erp_system(self) -> str:
        """The externalId ``system`` under which our ERP keys are stored in Atollon."""
        return self._settings.erp_system

    # --- operations -----------------------------------------------------------------------

    def check(self) -> str:
        """One cheap authenticated call (the invoice states) for ``erpsync doctor``."""
        states = self._invoice_statuses("check")
        limits = "; ".join(known_limits(self._settings))
        return (
            f"instance {self._settings.instance!r} answers ({len(states)} invoice states); "
            f"known limits: {limits}"
        )

    def upsert_contact(self, contact: AtollonContactInput) -> AtollonContactResult:
        """Create or update a company or person contact (matched by its externalId)."""
        operation = "upsert_contact"
        response = self._call("POST", "contact", operation, body=contact.to_json())
        return self._model(AtollonContactResult, response, operation)

    def upsert_product(self, product: AtollonProductInput) -> AtollonProductResult:
        """Create or update a product (matched by externalId, else code + name)."""
        operation = "upsert_product"
        response = self._call("POST", "product", operation, body=product.to_json())
        return self._model(AtollonProductResult, response, operation)

    def iter_contacts(self) -> Iterator[AtollonContact]:
        """Every contact, ``page_size`` at a time: ``GET crawler/contact?page=&limit=``.

        NOT documented: the crawler documents no read of contacts. The sandbox offers this
        one, modelled on the documented GET request types (docs/sandbox-conventions.md).
        An Atollon that refuses it raises :class:`~erpsync.errors.ReadUnsupportedError`.
        """
        return self._read_pages("contact", "list_contacts", _CONTACT_LIST, "contact_id")

    def iter_products(self) -> Iterator[AtollonProduct]:
        """Every product, ``page_size`` at a time: ``GET crawler/product?page=&limit=``.

        NOT documented, like :meth:`iter_contacts`, and refused the same way.
        """
        return self._read_pages("product", "list_products", _PRODUCT_LIST, "product_id")

    def list_billing(
        self, status: str = BillingStatus.TO_BE_INVOICED
    ) -> list[AtollonBillingActivity]:
        """Activities whose billing items are in ``status``, with only those items."""
        operation = "list_billing"
        response = self._call("GET", "billing", operation, params={"billingStatus": str(status)})
        return self._list(_BILLING_LIST, response, operation)

    def update_billing(self, updates: Sequence[AtollonBillingUpdate]) -> None:
        """Set billing item statuses (and optionally activity/project statuses); idempotent."""
        if not updates:
            return
        operation = "update_billing"
        body = [update.to_json() for update in updates]
        response = self._call("PUT", "billing", operation, body=body)
        # The success answer is not documented: anything that is not a FAIL is accepted, but
        # a non-JSON body (an HTML error page from a proxy) is not mistaken for success.
        if response.content.strip():
            decode_json(response, table=self.errors, operation=operation)

    def invoice_statuses(self) -> list[AtollonInvoiceStatus]:
        """The invoice states configured in the instance."""
        return self._invoice_statuses("invoice_statuses")

    def download_document(self, doc_id: str) -> bytes:
        """The content of a document attached to an activity."""
        if not doc_id:
            raise ValueError("doc_id must not be empty")
        response = self._call(
            "GET", "download_document", "download_document", params={"docId": doc_id}
        )
        return response.content

    # --- plumbing -------------------------------------------------------------------------

    def _read_pages(
        self, request_type: str, operation: str, adapter: TypeAdapter[list[_M]], id_field: str
    ) -> Iterator[_M]:
        """A paged read, to the first page shorter than the page size.

        A refusal that says "no such read here" (HTTP 404, 405 or 501, a FAIL, an answer
        that is not a list) is ReadUnsupportedError; a page that only repeats the previous
        one means the server ignores ``page`` and would loop for ever: an error too. Only
        the previous page's ids are kept, so memory does not grow with the records.
        """
        limit = self._settings.page_size
        previous: set[Any] = set()
        page = 1
        while True:
            params = {"page": str(page), "limit": str(limit)}
            try:
                response = self._call("GET", request_type, operation, params=params)
            except SyncError as error:
                if error.status_code in _NO_SUCH_READ or error.vendor_code == GENERIC_FAIL:
                    raise self._read_unsupported(operation, error.status_code) from error
                raise
            data = decode_json(response, table=self.errors, operation=operation)
            if not isinstance(data, list):
                raise self._read_unsupported(operation, response.status_code)
            try:
                records = adapter.validate_python(data)
            except ValidationError as exc:
                raise unexpected_shape(self.errors, operation, _shape_detail(exc)) from exc
            ids = {getattr(record, id_field) for record in records}
            if records and ids <= previous:
                raise unexpected_shape(self.errors, operation, f"page {page} repeated a page")
            yield from records
            if len(records) < limit:
                return
            previous = ids
            page += 1

    def _read_unsupported(self, operation: str, status_code: int | None) -> SyncError:
        return self.errors.error(
            operation=operation,
            status_code=status_code,
            vendor_code=READ_UNSUPPORTED,
            detail="Atollon does not offer this read (undocumented; the sandbox has it)",
        )

    def _invoice_statuses(self, operation: str) -> list[AtollonInvoiceStatus]:
        response = self._call("GET", "invoice_status", operation)
        return self._list(_STATUS_LIST, response, operation)

    def _call(
        self,
        method: str,
        request_type: str,
        operation: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        """Send one request and raise the classified error for any failure answer."""
        headers: dict[str, str] = {}
        if self._settings.api_token is not None:
            headers["Authorization"] = f"Bearer {self._settings.api_token.get_secret_value()}"
        kwargs: dict[str, Any] = {
            "params": {**(params or {}), "instance": self._settings.instance},
            "headers": headers,
        }
        if body is not None:
            kwargs["json"] = body
        response = send(
            self._http,
            method,
            f"{CRAWLER_PATH}/{request_type}",
            table=self.errors,
            operation=operation,
            **kwargs,
        )
        self._raise_for_failure(response, operation)
        return response

    def _raise_for_failure(self, response: httpx.Response, operation: str) -> None:
        status = response.status_code
        message = _fail_message(response)
        if message is None and response.is_success:
            return
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
        if message is not None:
            code = fail_code(message, status)
            raise self.errors.error(
                operation=operation,
                status_code=status,
                vendor_code=code,
                retry_after_s=retry_after_s,
                response_excerpt=excerpt(response),
                detail=None if code else "result FAIL",
            )
        raise self.errors.error(
            operation=operation,
            status_code=status,
            retry_after_s=retry_after_s,
            response_excerpt=excerpt(response),
        )

    def _model(self, model: type[_M], response: httpx.Response, operation: str) -> _M:
        data = decode_json(response, table=self.errors, operation=operation)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise unexpected_shape(self.errors, operation, _shape_detail(exc)) from exc

    def _list(
        self, adapter: TypeAdapter[list[_M]], response: httpx.Response, operation: str
    ) -> list[_M]:
        data = decode_json(response, table=self.errors, operation=operation)
        if not isinstance(data, list):
            raise unexpected_shape(
                self.errors, operation, f"expected a list, got {type(data).__name__}"
            )
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise unexpected_shape(self.errors, operation, _shape_detail(exc)) from exc
