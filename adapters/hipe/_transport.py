"""The HIPE transport: one classified call, the nestjsx/crud query, paging, one-live matching.

:class:`HipeTransport` is the base of :class:`adapters.hipe.client.HipeClient`; the resource
groups (:mod:`adapters.hipe.companies`, :mod:`adapters.hipe.contacts`,
:mod:`adapters.hipe.imports`) build on it. HIPE's list endpoints speak the nestjsx/crud
query language: ``s=`` is a JSON object inside the query string, ``limit`` and ``page``
page, ``sort=field,ASC`` sorts; ``s`` is built with :func:`json.dumps` and httpx
percent-encodes the query.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from adapters._http import (
    ErrorTable,
    decode_json,
    excerpt,
    parse_retry_after,
    send,
    unexpected_shape,
)
from adapters.hipe.errors import (
    AMBIGUOUS_EXTERNAL_ID,
    RECORD_MISSING,
    condition_error,
    hipe_error_table,
)
from erpsync.errors import ErrorClass
from erpsync.redaction import redact
from erpsync.settings import HipeSettings

_M = TypeVar("_M", bound=BaseModel)

COMPANIES = "/api/companies"
CONTACTS = "/api/users/contacts"
USERS = "/api/users"
IMPORTS = "/api/imports"
CUSTOM_FIELD_NODES = "/api/custom-field-nodes"


def _search(condition: Mapping[str, Any]) -> str:
    """The ``s=`` value: JSON text, encoded later by httpx with the rest of the query."""
    return json.dumps(condition, ensure_ascii=False, separators=(",", ":"))


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required (HIPE dates are UTC)")
    # Milliseconds, truncated: $gte on a truncated instant can only include more, never less.
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class HipeTransport:
    """The plumbing every HIPE resource group shares, through an injected ``httpx.Client``."""

    system: str = "hipe"

    def __init__(
        self,
        http: httpx.Client,
        settings: HipeSettings,
        *,
        error_overrides: Mapping[str, ErrorClass] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._base_url = settings.base_url
        self._table: ErrorTable = hipe_error_table(error_overrides)
        self._sleep = sleep
        self._clock = clock

    @property
    def error_table(self) -> ErrorTable:
        """The routing table in force (with the configuration's overrides)."""
        return self._table

    # -- plumbing ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        record_operation: bool = False,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one call; a failed answer raises its classified error.

        A 404 is returned as it is with ``missing_ok`` (a get by id), a
        :class:`~erpsync.errors.RecordMissingError` with ``record_operation`` (PATCH,
        archive, unarchive of a HIPE id), and otherwise a wrong path (permanent).
        """
        headers = {"X-ACCESS-TOKEN": self._token()}
        response = send(
            self._http,
            method,
            self._base_url + path,
            table=self._table,
            operation=operation,
            headers=headers,
            **kwargs,
        )
        if response.is_success:
            return response
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code == 404 and record_operation:
            raise condition_error(
                self._table,
                RECORD_MISSING,
                operation=operation,
                detail="HTTP 404, the record does not exist",
                status_code=404,
                response_excerpt=self._excerpt(response),
            )
        raise self._table.error(
            operation=operation,
            status_code=response.status_code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            response_excerpt=self._excerpt(response),
        )

    def _excerpt(self, response: httpx.Response) -> str:
        """A redacted body excerpt; our token is removed even if it was never registered."""
        return redact(excerpt(response), extra_secrets=[self._token()])

    def _token(self) -> str:
        return self._settings.access_token.get_secret_value()

    def _json(self, response: httpx.Response, operation: str) -> Any:
        return decode_json(response, table=self._table, operation=operation)

    def _model(self, model: type[_M], data: Any, operation: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise unexpected_shape(
                self._table, operation, f"not a {model.__name__}: {exc.error_count()} problems"
            ) from exc

    def _call(
        self,
        model: type[_M],
        method: str,
        path: str,
        *,
        operation: str,
        record_operation: bool = False,
        **kwargs: Any,
    ) -> _M:
        response = self._request(
            method, path, operation=operation, record_operation=record_operation, **kwargs
        )
        return self._model(model, self._json(response, operation), operation)

    def _page_lists(
        self, path: str, params: Mapping[str, Any], model: type[_M], operation: str
    ) -> Iterator[list[_M]]:
        """Every page of a list, fetched ``page_size`` at a time until the last page.

        HIPE may answer the paginated envelope ``{data,count,total,page,pageCount}`` or a
        bare array. The envelope ends at ``pageCount``; a bare array ends at a page shorter
        than ``limit``; both end at an empty page.
        """
        limit = self._settings.page_size
        page = 1
        while True:
            query = {**params, "limit": limit, "page": page}
            response = self._request("GET", path, operation=operation, params=query)
            items, page_count = self._page_items(self._json(response, operation), operation)
            if not items:
                return
            yield [self._model(model, raw, operation) for raw in items]
            last = page >= page_count if page_count is not None else len(items) < limit
            if last:
                return
            page += 1

    def _pages(
        self, path: str, params: Mapping[str, Any], model: type[_M], operation: str
    ) -> Iterator[_M]:
        """Every record of a list (see :meth:`_page_lists`), each once.

        A record seen twice (it moved between pages while we read) is yielded once; a full
        page of repeats means the server ignores ``page``, which would loop forever, so it
        is an error.
        """
        seen: set[Any] = set()
        for page, records in enumerate(self._page_lists(path, params, model, operation), 1):
            fresh = 0
            for record in records:
                key = getattr(record, "id", None)
                if key is not None and key in seen:
                    continue
                seen.add(key)
                fresh += 1
                yield record
            if fresh == 0:
                raise unexpected_shape(self._table, operation, f"page {page} repeated a page")

    def _page_items(self, body: Any, operation: str) -> tuple[list[Any], int | None]:
        if isinstance(body, list):
            return body, None
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            page_count = body.get("pageCount")
            return body["data"], page_count if isinstance(page_count, int) else None
        raise unexpected_shape(self._table, operation, "neither a list nor a page of data")

    def _list(
        self, path: str, params: Mapping[str, Any], model: type[_M], operation: str
    ) -> list[_M]:
        """One unpaged list call (either answer shape)."""
        response = self._request("GET", path, operation=operation, params=params)
        items, _ = self._page_items(self._json(response, operation), operation)
        return [self._model(model, raw, operation) for raw in items]

    def _one_live(
        self, hits: list[_M], *, operation: str, external_id: str, what: str
    ) -> _M | None:
        """The one record for an external id; several live ones are ambiguous.

        Archived records stay visible in HIPE; when exactly one record is not archived it
        is the match, so archiving duplicates (the operator's fix) resolves the ambiguity.
        """
        if len(hits) <= 1:
            return hits[0] if hits else None
        live = [hit for hit in hits if not getattr(hit, "archived", False)]
        if len(live) == 1:
            return live[0]
        ids = ", ".join(str(getattr(hit, "id", "?")) for hit in hits)
        raise condition_error(
            self._table,
            AMBIGUOUS_EXTERNAL_ID,
            operation=operation,
            detail=f"{len(hits)} {what} have this externalId (HIPE ids {ids})",
            vendor_code=AMBIGUOUS_EXTERNAL_ID,
            hint=(
                f"several HIPE {what} have externalId {external_id}; "
                "archive the duplicates, then replay"
            ),
        )
