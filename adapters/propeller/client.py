"""The Propeller REST v2 client: companies and their addresses, keyed by ``sourceId``.

It owns the OAuth2 client-credentials token (cached, refreshed before expiry and once on a
401), paging, the bulk per-item outcomes, and the classification of every failure through
:mod:`adapters.propeller.errors`. It owns no backoff loop: a failed call raises one
classified :class:`~erpsync.errors.SyncError` and the worker decides when to try again.

Companies are always addressed as ``/companies/sourceId/{sourceId}?source=…&language=…``
with the settings' ``source`` and ``language``, because ``sourceId`` alone is ambiguous as
soon as two systems or two languages write to one tenant (40005).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters._http import (
    ErrorTable,
    decode_json,
    excerpt,
    parse_retry_after,
    send,
    unexpected_shape,
)
from adapters.propeller.errors import propeller_error_table
from adapters.propeller.models import (
    NOT_IN_BULK,
    BulkOutcome,
    PropellerAddress,
    PropellerAddressInput,
    PropellerAttributeValue,
    PropellerCompany,
    PropellerCompanyInput,
    PropellerDirective,
)
from erpsync.errors import ErrorClass, PermanentError, SyncError
from erpsync.redaction import redact, register_secrets
from erpsync.settings import PropellerSettings

BULK_MAX_ITEMS = 1000
"""Propeller refuses larger bulk calls (sandbox conventions); batches never exceed it."""

DEFAULT_TOKEN_LIFETIME_S = 1800.0
"""The documented lifetime, used when the token reply leaves ``expires_in`` out."""

_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_ModelT = TypeVar("_ModelT", bound=BaseModel)
_ACTIONS: dict[str, Literal["create", "update"]] = {"create": "create", "update": "update"}


class _TokenReply(BaseModel):
    """The token endpoint's reply; ``expires_in`` may be a string (Apigee-style reply)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    expires_in: float = Field(default=DEFAULT_TOKEN_LIFETIME_S, gt=0)


class _BulkItemError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: int | str | None = None
    status: int | None = None
    type: str | None = None


class _BulkItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    success: bool
    key: int | str | None = None
    action: str | None = None
    id: int | None = None
    error: _BulkItemError | None = None


def _date(value: datetime) -> str:
    """Propeller's date format, in UTC (a naive datetime is taken as UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(_DATE_FORMAT)


def _vendor_code(response: httpx.Response) -> str | None:
    """The vendor code of an error body: ``error.code``, or the OAuth2 ``error`` string."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict):
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            return str(code)
        if isinstance(code, str) and code:
            return code
    return None


class PropellerClient:
    """Typed access to Propeller companies and addresses through an injected httpx client.

    Meant for one thread at a time (one client per Celery worker process); the token cache
    is still guarded by a lock so that sharing a client between threads cannot corrupt it.
    """

    system: str = "propeller"

    def __init__(
        self,
        http: httpx.Client,
        settings: PropellerSettings,
        *,
        error_overrides: Mapping[str, ErrorClass] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._table = propeller_error_table(error_overrides)
        self._clock = clock
        prefix = settings.api_prefix.strip("/")
        self._prefix = f"/{prefix}" if prefix else ""
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        register_secrets([settings.client_secret.get_secret_value()])

    @property
    def error_table(self) -> ErrorTable:
        """The routing table in force (with the overrides), for ``erpsync errors``."""
        return self._table

    # ----------------------------------------------------------------- token

    def _valid_token(self) -> str:
        with self._token_lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            return self._fetch_token_locked()

    def _refreshed_token(self, rejected: str) -> str:
        """A new token after ``rejected`` drew a 401 (unless another thread already got one)."""
        with self._token_lock:
            if self._token is not None and self._token != rejected:
                return self._token
            return self._fetch_token_locked()

    def _fetch_token_locked(self) -> str:
        operation = "token"
        self._token = None
        started = self._clock()
        response = send(
            self._http,
            "POST",
            self._settings.token_path,
            table=self._table,
            operation=operation,
            data={
                "grant_type": "client_credentials",
                "client_id": self._settings.client_id,
                "client_secret": self._settings.client_secret.get_secret_value(),
            },
        )
        if response.status_code != 200:
            raise self._token_error(response)
        reply = self._validate(
            _TokenReply, decode_json(response, table=self._table, operation=operation), operation
        )
        # A margin larger than half the lifetime would refresh on every call.
        margin = min(self._settings.token_refresh_margin_s, reply.expires_in / 2)
        self._token = reply.access_token
        self._refresh_at = started + reply.expires_in - margin
        return reply.access_token

    def _token_error(self, response: httpx.Response) -> SyncError:
        vendor_code = _vendor_code(response)
        rule = self._table.lookup(vendor_code=vendor_code, status_code=response.status_code)
        auth = self._table.overrides.get(rule.match, rule.error_class) is ErrorClass.AUTH
        detail = None
        if auth and (
            response.status_code == 401 or vendor_code in {"invalid_client", "unauthorized_client"}
        ):
            detail = "bad credentials: Propeller refused the client id or secret"
        elif auth:
            detail = "Propeller refused the token request"
        return self._table.error(
            operation="token",
            status_code=response.status_code,
            vendor_code=vendor_code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            response_excerpt=excerpt(response),
            detail=detail,
        )

    # --------------------------------------------------------------- plumbing

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        """One call with a valid token; on a 401, one refresh and one retry, never more."""
        token = self._valid_token()
        response = self._send(method, path, token, operation=operation, params=params, body=body)
        if response.status_code == 401:
            token = self._refreshed_token(token)
            response = self._send(
                method, path, token, operation=operation, params=params, body=body
            )
            if response.status_code == 401:
                raise self._error(response, operation, detail="after a token refresh")
        return response

    def _send(
        self,
        method: str,
        path: str,
        token: str,
        *,
        operation: str,
        params: Mapping[str, str | int] | None,
        body: Any,
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
        if params:
            kwargs["params"] = dict(params)
        if body is not None:
            kwargs["json"] = body
        return send(self._http, method, path, table=self._table, operation=operation, **kwargs)

    def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        absent_code: str | None = None,
    ) -> Any:
        """The decoded JSON of a successful call; None for a 404 carrying ``absent_code``."""
        response = self._exchange(method, path, operation=operation, params=params, body=body)
        if response.is_success:
            # Only a deletion may answer nothing; an empty or null answer where a document
            # is due was cut (transient), and null must never read as "absent".
            if response.status_code == 204 or (method == "DELETE" and not response.content):
                return {}
            payload = decode_json(response, table=self._table, operation=operation)
            if payload is None:
                if method == "DELETE":
                    return {}
                raise unexpected_shape(self._table, operation, "a null reply")
            return payload
        if (
            absent_code is not None
            and response.status_code == 404
            and _vendor_code(response) == absent_code
        ):
            return None
        raise self._error(response, operation)

    def _error(
        self, response: httpx.Response, operation: str, *, detail: str | None = None
    ) -> SyncError:
        vendor_code = _vendor_code(response)
        if vendor_code == str(response.status_code):
            # Propeller echoes the status as the code of 401 and 429: nothing more to say.
            vendor_code = None
        return self._table.error(
            operation=operation,
            status_code=response.status_code,
            vendor_code=vendor_code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            response_excerpt=excerpt(response),
            detail=detail,
        )

    def _validate(self, model: type[_ModelT], data: Any, operation: str) -> _ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # Field locations only: the values are response content.
            where = ", ".join(
                ".".join(str(part) for part in err["loc"]) or "body" for err in exc.errors()[:3]
            )
            raise unexpected_shape(self._table, operation, f"{model.__name__}: {where}") from exc

    def _envelope(self, payload: Any, operation: str) -> dict[str, Any]:
        if not isinstance(payload, dict) or "data" not in payload:
            raise unexpected_shape(self._table, operation, "no `data` in the reply")
        return payload

    def _data_object(self, payload: Any, operation: str) -> dict[str, Any]:
        data = self._envelope(payload, operation)["data"]
        if not isinstance(data, dict):
            raise unexpected_shape(self._table, operation, "`data` is not an object")
        return data

    def _data_list(self, payload: Any, operation: str) -> list[Any]:
        data = self._envelope(payload, operation)["data"]
        if not isinstance(data, list):
            raise unexpected_shape(self._table, operation, "`data` is not a list")
        return data

    def _company_path(self, source_id: str) -> str:
        return f"{self._prefix}/companies/sourceId/{quote(source_id, safe='')}"

    def _lookup_params(self) -> dict[str, str | int]:
        return {"source": self._settings.source, "language": self._settings.language}

    def _company_body(
        self,
        company: PropellerCompanyInput,
        operation: str,
        *,
        bulk: bool,
        contact_inline: bool = False,
    ) -> dict[str, Any]:
        if company.addresses and not bulk:
            raise ValueError(
                f"propeller {operation}: addresses are sent inline by upsert_companies_bulk "
                "only; use create_address or upsert_addresses_bulk"
            )
        if company.attributes and not bulk:
            raise ValueError(
                f"propeller {operation}: attributes are sent by the bulk endpoint only "
                "(upsert_companies_bulk or set_attributes)"
            )
        undocumented = sorted(
            name for name in NOT_IN_BULK if getattr(company, name) is not None and bulk
        )
        if undocumented and not contact_inline:
            raise ValueError(
                f"propeller {operation}: bulk items do not take {', '.join(undocumented)} "
                "(not in the endpoint reference's bulk fields); write them with "
                "update_company, or pass contact_inline=True (the integration guide's reading)"
            )
        body = company.to_json(exclude=None if bulk else {"addresses", "attributes"})
        body["source"] = company.source or self._settings.source
        body["language"] = company.language or self._settings.language
        return body

    def _pages(
        self, fetch: Callable[[int], Any], operation: str, page_size: int | None
    ) -> Iterator[Any]:
        """Every item of a paginated listing, one page at a time, to the end.

        It stops on an empty page, on the last page by ``pages`` when the envelope has it,
        else on a short page. ``total`` is not trusted for stopping: the docs do not say
        whether it counts the page or the whole result, and misreading it would lose
        records silently.
        """
        page = 1
        previous: list[Any] | None = None
        while True:
            payload = self._envelope(fetch(page), operation)
            items = self._data_list(payload, operation)
            if not items:
                return
            if items == previous:
                raise unexpected_shape(
                    self._table, operation, f"page {page} repeats page {page - 1}"
                )
            yield from items
            pages = payload.get("pages")
            if isinstance(pages, int) and not isinstance(pages, bool):
                if page >= pages:
                    return
            else:
                size = payload.get("offset")
                if not (isinstance(size, int) and size > 0):
                    size = page_size
                if size is None or len(items) < size:
                    return
            previous = items
            page += 1

    # -------------------------------------------------------------- operations

    def check(self) -> str:
        """Fetch a token and make one cheap call; a short description for ``erpsync doctor``."""
        operation = "check"
        with self._token_lock:
            self._fetch_token_locked()
        payload = self._call(
            "POST",
            f"{self._prefix}/companies/search",
            operation=operation,
            body={"page": 1, "offset": 1},
        )
        self._envelope(payload, operation)
        return "token issued, companies search answered"

    def get_company(
        self, source_id: str, *, expands: Sequence[str] = ("sources",)
    ) -> PropellerCompany | None:
        """The company with this ``sourceId`` (settings' source and language), or None.

        ``expands``: ``sources`` (documented), ``parent`` (documented), ``attributes``
        (sandbox convention; a Propeller that ignores it answers without them).
        """
        operation = "get_company"
        params: dict[str, str | int] = dict(self._lookup_params())
        if expands:
            params["expands"] = ",".join(expands)
        payload = self._call(
            "GET",
            self._company_path(source_id),
            operation=operation,
            params=params,
            absent_code="40006",
        )
        if payload is None:
            return None
        return self._validate(PropellerCompany, self._data_object(payload, operation), operation)

    def get_company_by_id(self, company_id: int) -> PropellerCompany | None:
        """The company with this Propeller ``id`` (with its sources), or None."""
        operation = "get_company"
        payload = self._call(
            "GET",
            f"{self._prefix}/companies/id/{company_id}",
            operation=operation,
            params={"expands": "sources"},
            absent_code="40006",
        )
        if payload is None:
            return None
        return self._validate(PropellerCompany, self._data_object(payload, operation), operation)

    def create_company(self, company: PropellerCompanyInput) -> PropellerCompany:
        """Create one company; an existing ``sourceId`` raises RecordExistsError (40004)."""
        operation = "create_company"
        body = self._company_body(company, operation, bulk=False)
        payload = self._call("POST", f"{self._prefix}/companies", operation=operation, body=body)
        data = self._data_object(payload, operation)
        # The reply documents the new id; the fields we sent fill in the rest.
        return self._validate(PropellerCompany, {**body, **data}, operation)

    def update_company(self, source_id: str, company: PropellerCompanyInput) -> PropellerCompany:
        """PATCH the given fields; an unknown ``sourceId`` raises RecordMissingError (40006)."""
        operation = "update_company"
        if company.source_id != source_id:
            raise ValueError(f"propeller {operation}: the input's sourceId differs from the key")
        body = self._company_body(company, operation, bulk=False)
        # The lookup key travels in the URL; only what changes goes in the body.
        for key in ("sourceId", "source"):
            body.pop(key, None)
        if company.language is None:
            body.pop("language", None)
        payload = self._call(
            "PATCH",
            self._company_path(source_id),
            operation=operation,
            params=self._lookup_params(),
            body=body,
        )
        data = self._data_object(payload, operation)
        if "id" not in data:
            found = self.get_company(source_id)
            if found is None:
                raise unexpected_shape(self._table, operation, "updated company not found again")
            return found
        merged = {"sourceId": source_id, "source": self._settings.source, **body, **data}
        return self._validate(PropellerCompany, merged, operation)

    def detach_parent(self, source_id: str) -> None:
        """Take the company out of its parent: ``PATCH {"parent": null}``.

        Propeller documents ``parent`` as an object naming the parent (``{id}`` or
        ``{sourceId, source}``) and no way to leave one. ``null`` is the only plausible
        reading; the sandbox takes it (docs/sandbox-conventions.md). A Propeller that refuses
        it answers 10007, raised as a PermanentError like any schema refusal: the caller
        decides (the sink logs the documented limit and goes on).
        """
        self._call(
            "PATCH",
            self._company_path(source_id),
            operation="detach_parent",
            params=self._lookup_params(),
            body={"parent": None},
        )

    def set_attributes(self, source_id: str, attributes: Sequence[PropellerAttributeValue]) -> bool:
        """Write attribute values of an existing company; False when there is no such company.

        One ``bulk/sourceId`` item carrying only the lookup key and ``attributes``, with the
        ``skipCreate`` directive: doc 002 documents company attributes in bulk items, and the
        item changes nothing else. A failure other than "not found" raises.
        """
        item = PropellerCompanyInput(source_id=source_id, attributes=list(attributes))
        (outcome,) = self.upsert_companies_bulk(
            [item], directives=[PropellerDirective(operation="skipCreate")]
        )
        if outcome.error is None:
            return True
        if outcome.error.vendor_code in {"40006", "40008"}:
            return False
        raise outcome.error

    def delete_company(self, source_id: str) -> None:
        """Move the company to the recycle bin; an unknown one raises RecordMissingError."""
        self._call(
            "DELETE",
            self._company_path(source_id),
            operation="delete_company",
            params=self._lookup_params(),
        )

    def upsert_companies_bulk(
        self,
        companies: Sequence[PropellerCompanyInput],
        *,
        directives: Sequence[PropellerDirective] | None = None,
        contact_inline: bool = False,
    ) -> list[BulkOutcome]:
        """Create or update by ``sourceId``: one outcome per input, in the input's order.

        ``contact_inline``: the items may carry ``email`` and ``phone``. The integration
        guide's bulk example treats ``email`` as a bulk company field, the endpoint
        reference's field list leaves both out (VENDORS §2.7); a Propeller that follows the
        reference refuses such a call whole with 10007 ("extraneous key [email]").

        A failed item is a classified error inside its outcome (the others were applied);
        a failed request raises. Batches hold at most ``bulk_batch_size`` items (capped at
        1000); if a later batch fails, the earlier ones stay applied, which is harmless
        since an upsert by key can be replayed.
        """
        operation = "upsert_companies_bulk"
        outcomes: list[BulkOutcome] = []
        size = min(self._settings.bulk_batch_size, BULK_MAX_ITEMS)
        for start in range(0, len(companies), size):
            batch = companies[start : start + size]
            body: dict[str, Any] = {
                "companies": [
                    self._company_body(c, operation, bulk=True, contact_inline=contact_inline)
                    for c in batch
                ]
            }
            if directives:
                body["directives"] = [d.to_json() for d in directives]
            payload = self._call(
                "POST", f"{self._prefix}/companies/bulk/sourceId", operation=operation, body=body
            )
            keys: list[str | None] = [c.source_id for c in batch]
            outcomes.extend(self._outcomes(payload, keys, start, operation, "sourceId"))
        return outcomes

    def search_companies(
        self,
        *,
        modified_from: datetime | None,
        modified_to: datetime | None = None,
        expands: Sequence[str] = ("sources",),
    ) -> Iterator[PropellerCompany]:
        """Companies whose ``dateModified`` is in ``[modified_from, modified_to]``, all pages.

        Dates are sent in UTC at second precision (Propeller's format), ``from`` rounded
        down so a boundary record is returned again rather than missed. No ``modified_from``:
        every company. One page is held at a time.
        """
        operation = "search_companies"
        body: dict[str, Any] = {}
        if modified_from is not None:
            date_filter = {"from": _date(modified_from)}
            if modified_to is not None:
                date_filter["to"] = _date(modified_to)
            body["dateModified"] = date_filter
        page_size = self._settings.page_size
        params: dict[str, str | int] = {"expands": ",".join(expands)} if expands else {}

        def fetch(page: int) -> Any:
            return self._call(
                "POST",
                f"{self._prefix}/companies/search",
                operation=operation,
                params=params,
                body={**body, "page": page, "offset": page_size},
            )

        for item in self._pages(fetch, operation, page_size):
            yield self._validate(PropellerCompany, item, operation)

    def list_addresses(self, source_id: str, *, type: str | None = None) -> list[PropellerAddress]:
        """The company's addresses, optionally only ``delivery`` or ``invoice`` ones."""
        operation = "list_addresses"
        params = self._lookup_params()
        if type is not None:
            params["type"] = type
        path = f"{self._company_path(source_id)}/addresses"

        def fetch(page: int) -> Any:
            paged = params if page == 1 else {**params, "page": page}
            return self._call("GET", path, operation=operation, params=paged)

        return [
            self._validate(PropellerAddress, item, operation)
            for item in self._pages(fetch, operation, None)
        ]

    def create_address(self, source_id: str, address: PropellerAddressInput) -> PropellerAddress:
        """Add an address to the company; the reply carries the new address ``id``."""
        operation = "create_address"
        body = address.to_json()
        payload = self._call(
            "POST",
            f"{self._company_path(source_id)}/addresses",
            operation=operation,
            params=self._lookup_params(),
            body=body,
        )
        data = self._data_object(payload, operation)
        return self._validate(PropellerAddress, {**body, **data}, operation)

    def upsert_addresses_bulk(
        self, source_id: str, addresses: Sequence[PropellerAddressInput]
    ) -> list[BulkOutcome]:
        """Create or update the company's addresses by ``code`` (no code: create), in order.

        The body is ``{"addresses": [...]}``, by analogy with ``{"companies": [...]}``:
        the docs name the endpoint but not its body.
        """
        operation = "upsert_addresses_bulk"
        outcomes: list[BulkOutcome] = []
        size = min(self._settings.bulk_batch_size, BULK_MAX_ITEMS)
        path = f"{self._company_path(source_id)}/addresses/bulk"
        for start in range(0, len(addresses), size):
            batch = addresses[start : start + size]
            payload = self._call(
                "POST",
                path,
                operation=operation,
                params=self._lookup_params(),
                body={"addresses": [a.to_json() for a in batch]},
            )
            keys: list[str | None] = [a.code for a in batch]
            outcomes.extend(self._outcomes(payload, keys, start, operation, "code"))
        return outcomes

    def delete_address(self, source_id: str, address_id: int) -> None:
        """Delete one address; an unknown one raises RecordMissingError (90006)."""
        self._call(
            "DELETE",
            f"{self._company_path(source_id)}/addresses/{address_id}",
            operation="delete_address",
            params=self._lookup_params(),
        )

    # ------------------------------------------------------------------- bulk

    def _outcomes(
        self,
        payload: Any,
        keys: list[str | None],
        offset: int,
        operation: str,
        key_name: str,
    ) -> list[BulkOutcome]:
        raw = self._data_list(payload, operation)
        items = [self._validate(_BulkItem, item, operation) for item in raw]
        if len(items) != len(keys):
            raise unexpected_shape(
                self._table, operation, f"{len(items)} outcomes for {len(keys)} items"
            )
        order = self._align(keys, items, operation)
        outcomes: list[BulkOutcome] = []
        for position, (key, item_index) in enumerate(zip(keys, order, strict=True)):
            item = items[item_index]
            index = offset + position
            if item.success:
                action = _ACTIONS.get(item.action or "")
                outcomes.append(BulkOutcome(index=index, key=key, action=action, id=item.id))
            else:
                error = self._item_error(item, raw[item_index], index, key, key_name, operation)
                outcomes.append(BulkOutcome(index=index, key=key, error=error))
        return outcomes

    def _align(self, keys: list[str | None], items: list[_BulkItem], operation: str) -> list[int]:
        """For each input, the index of its outcome: by position, or by key if reordered."""

        def same(key: str | None, item: _BulkItem) -> bool:
            return key is None or item.key is None or str(item.key) == key

        if all(same(k, item) for k, item in zip(keys, items, strict=True)):
            return list(range(len(keys)))
        unused = list(range(len(items)))
        order: list[int] = []
        for key in keys:
            match = next((i for i in unused if same(key, items[i])), None)
            if match is None:
                raise unexpected_shape(self._table, operation, "an input has no outcome")
            unused.remove(match)
            order.append(match)
        return order

    def _item_error(
        self,
        item: _BulkItem,
        raw: Any,
        index: int,
        key: str | None,
        key_name: str,
        operation: str,
    ) -> SyncError:
        code = item.error.code if item.error is not None else None
        status = item.error.status if item.error is not None else None
        vendor_code = str(code) if code is not None else None
        detail = f"item {index}" + (f", {key_name} {key}" if key is not None else "")
        snippet = redact(json.dumps(raw, ensure_ascii=False, default=str), max_chars=500)
        known = (
            vendor_code is not None
            and self._table.lookup(vendor_code=vendor_code, status_code=None).match == vendor_code
        )
        if not known and status is None:
            # No status to fall back on: an unknown per-item refusal is a data problem.
            return PermanentError(
                f"propeller {operation} failed, code {vendor_code or 'none'} ({detail})",
                system=self.system,
                operation=operation,
                vendor_code=vendor_code,
                response_excerpt=snippet,
                hint="Propeller refused this record; read the excerpt, fix it, then replay",
            )
        return self._table.error(
            operation=operation,
            status_code=status,
            vendor_code=vendor_code,
            response_excerpt=snippet,
            detail=detail,
        )
