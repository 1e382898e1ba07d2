"""The Propeller transport: the OAuth2 token, one classified call, paging and bulk outcomes.

:class:`PropellerTransport` is the base of :class:`adapters.propeller.client.PropellerClient`;
the resource groups (:mod:`adapters.propeller.companies`, :mod:`adapters.propeller.addresses`)
build on it. It owns the client-credentials token (cached, refreshed before expiry and once on
a 401), the envelope and paging rules, the alignment of bulk per-item outcomes with their
inputs, and the classification of every failure through :mod:`adapters.propeller.errors`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
from adapters.propeller.models import BulkOutcome
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


class PropellerTransport:
    """The plumbing every Propeller resource group shares, through an injected httpx client.

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
