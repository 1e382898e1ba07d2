"""The Propeller REST API simulator: OAuth2 tokens, companies, bulk upserts, search, addresses.

Follows the vendor docs (``../shared/vendor-docs/001_*``, ``002_*``, VENDORS.md §2) and, where
they are silent, docs/sandbox-conventions.md. Time comes from an injectable clock, so tests
can expire the 30-minute tokens and pin ``dateModified`` without waiting.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators._sandbox import SeedRequest, Simulator, VendorError
from simulators.handmade import Handmade
from simulators.propeller.errors import PropellerError, http_error, injected_error
from simulators.propeller.schema import (
    BULK_MODES,
    DATE_FORMAT,
    parse_address_body,
    parse_address_bulk,
    parse_address_type,
    parse_bulk,
    parse_create,
    parse_patch,
    parse_search,
)
from simulators.propeller.store import Company, CompanyStore
from simulators.server import CREDENTIALS

#: lifetime of a bearer token (vendor docs: 30 minutes)
TOKEN_TTL_S = 1800
#: tokens kept before expired ones are swept (a benchmark may ask for many)
_TOKEN_SWEEP_AT = 10_000

Handler = Callable[[Request], Awaitable[Response]]


def _oauth_error(status: int, error: str, description: str, **headers: str) -> Response:
    """An OAuth2 error answer of the token endpoint (RFC 6749 §5.2)."""
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


def _expands(request: Request) -> frozenset[str]:
    raw = request.query_params.get("expands", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PropellerError(10005, "Request body is not valid JSON") from None


def _ok(data: Any, message: str, status: int = 200) -> Response:
    return JSONResponse({"data": data, "messages": [message], "total": 1}, status_code=status)


class PropellerSimulator(Simulator):
    """Propeller B2B commerce (REST v2), a target of companies and their addresses."""

    name = "propeller"
    non_mutating = frozenset({("POST", "/oauth2/token"), ("POST", "/v2/companies/search")})

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        client_id: str = CREDENTIALS["propeller"]["client_id"],
        client_secret: str = CREDENTIALS["propeller"]["client_secret"],
        bulk: str = "guide",
    ) -> None:
        """``bulk``: ``guide`` (default) takes ``email`` and ``phone`` in bulk items, as the
        integration guide's example does; ``strict`` refuses them with 10007, as the
        endpoint reference's field list implies (docs/sandbox-conventions.md)."""
        if bulk not in BULK_MODES:
            raise ValueError(f"bulk must be one of {', '.join(BULK_MODES)}, not {bulk!r}")
        super().__init__()
        self.bulk_mode = bulk
        self.clock: Callable[[], float] = clock or time.time
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens: dict[str, float] = {}
        self.store = CompanyStore(self._timestamp)

    def _timestamp(self) -> str:
        """Now as the API writes dates: UTC, whole seconds, no zone."""
        return time.strftime(DATE_FORMAT, time.gmtime(self.clock()))

    # --- tokens ---------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A new bearer token valid for :data:`TOKEN_TTL_S` seconds from the clock's now."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        with self.lock:
            if len(self._tokens) >= _TOKEN_SWEEP_AT:
                self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + TOKEN_TTL_S
        return token

    def expire_tokens(self) -> None:
        """Let every token issued so far expire now (tests of refresh on 401)."""
        now = self.clock()
        with self.lock:
            self._tokens = dict.fromkeys(self._tokens, now)

    def restore_from_recycle_bin(self, source: str, source_id: str) -> int:
        """Restore the binned companies with this source key, as an operator does in the
        backoffice (the API cannot: vendor docs); returns how many were restored."""
        with self.lock:
            binned = [
                c
                for c in self.store.companies.values()
                if c.deleted and (source, source_id) in c.sources
            ]
            for company in binned:
                self.store.restore(company)
        return len(binned)

    def _authorize(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise PropellerError(401, "Missing bearer access token")
        with self.lock:
            expires_at = self._tokens.get(token)
        if expires_at is None:
            raise PropellerError(401, "Invalid access token")
        if self.clock() >= expires_at:
            raise PropellerError(401, "Access token expired")

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str, str, bool]:
        """(client id, secret, whether Basic auth carried them)."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return "", "", True
            client_id, _, secret = decoded.partition(":")
            return unquote(client_id), unquote(secret), True
        return form.get("client_id", ""), form.get("client_secret", ""), False

    async def _token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "only client_credentials is supported"
            )
        client_id, secret, basic = self._client_credentials(request, form)
        valid = secrets.compare_digest(
            client_id.encode(), self._client_id.encode()
        ) & secrets.compare_digest(secret.encode(), self._client_secret.encode())
        if not valid:
            challenge = {"WWW-Authenticate": 'Basic realm="propeller"'} if basic else {}
            return _oauth_error(401, "invalid_client", "Client authentication failed", **challenge)
        return JSONResponse(
            {
                "access_token": self.issue_token(),
                "expires_in": TOKEN_TTL_S,
                "token_type": "Bearer",
                "scope": "profile",
            },
            headers={"Cache-Control": "no-store"},
        )

    # --- companies ------------------------------------------------------------------------

    def _lookup(self, request: Request, *, sub_resource: bool = False) -> Company:
        language = request.query_params.get("language")
        return self.store.find(
            request.path_params["lookupKey"],
            request.path_params["lookupValue"],
            source=request.query_params.get("source"),
            language=language.upper() if language else None,
            sub_resource=sub_resource,
        )

    async def _create(self, request: Request) -> Response:
        given = parse_create(await _json_body(request))
        with self.lock:
            company = self.store.create(given)
            body = self.store.represent(company, _expands(request))
        return _ok(body, "Company created", 201)

    async def _get(self, request: Request) -> Response:
        with self.lock:
            body = self.store.represent(self._lookup(request), _expands(request))
        return _ok(body, "Completed")

    async def _patch(self, request: Request) -> Response:
        given = parse_patch(await _json_body(request))
        with self.lock:
            company = self.store.update(self._lookup(request), given)
            body = self.store.represent(company, _expands(request))
        return _ok(body, "Company updated")

    async def _delete(self, request: Request) -> Response:
        with self.lock:
            self.store.delete(self._lookup(request))
        return JSONResponse({"data": {}, "messages": ["Company deleted"]})

    async def _bulk(self, request: Request) -> Response:
        lookup_key = request.path_params["lookupKey"]
        if lookup_key not in ("id", "sourceId"):
            raise PropellerError(
                10006,
                f"Invalid lookup key [{lookup_key}], key must contain one of the following "
                "values: [id,sourceId,]",
            )
        bulk = parse_bulk(await _json_body(request), lookup_key, strict=self.bulk_mode == "strict")
        with self.lock:
            outcomes = self.store.bulk(lookup_key, bulk.companies, bulk.directives)
        return JSONResponse({"data": outcomes, "messages": ["Completed"], "total": len(outcomes)})

    async def _search(self, request: Request) -> Response:
        search = parse_search(await _json_body(request))
        expands = _expands(request)
        with self.lock:
            page, total = self.store.search(search)
            data = [self.store.represent(c, expands) for c in page]
        start = (search.page - 1) * search.offset + 1 if data else 0
        return JSONResponse(
            {
                "data": data,
                "messages": ["Completed"],
                "start": start,
                "end": start + len(data) - 1 if data else 0,
                "page": search.page,
                "offset": search.offset,
                "total": total,
                "pages": -(-total // search.offset),
            }
        )

    # --- addresses ------------------------------------------------------------------------

    async def _list_addresses(self, request: Request) -> Response:
        type_ = parse_address_type(request.query_params.get("type"))
        with self.lock:
            company = self._lookup(request, sub_resource=True)
            data = [
                self.store.represent_address(a) for a in self.store.list_addresses(company, type_)
            ]
        return JSONResponse({"data": data, "messages": ["Completed"], "total": len(data)})

    async def _add_address(self, request: Request) -> Response:
        given = parse_address_body(await _json_body(request))
        with self.lock:
            address = self.store.add_address(self._lookup(request, sub_resource=True), given)
            body = self.store.represent_address(address)
        return _ok(body, "Address created", 201)

    async def _get_address(self, request: Request) -> Response:
        with self.lock:
            company = self._lookup(request, sub_resource=True)
            address = self.store.get_address(company, request.path_params["addressId"])
            body = self.store.represent_address(address)
        return _ok(body, "Completed")

    async def _patch_address(self, request: Request) -> Response:
        given = parse_address_body(await _json_body(request), partial=True)
        with self.lock:
            company = self._lookup(request, sub_resource=True)
            address = self.store.get_address(company, request.path_params["addressId"])
            address.fields.update(given.fields)
            body = self.store.represent_address(address)
        return _ok(body, "Address updated")

    async def _delete_address(self, request: Request) -> Response:
        with self.lock:
            company = self._lookup(request, sub_resource=True)
            self.store.delete_address(
                self.store.get_address(company, request.path_params["addressId"])
            )
        return JSONResponse({"data": {}, "messages": ["Address deleted"]})

    async def _bulk_addresses(self, request: Request) -> Response:
        items = parse_address_bulk(await _json_body(request))
        with self.lock:
            company = self._lookup(request, sub_resource=True)
            outcomes = [
                {
                    "action": action,
                    "id": address.id,
                    "key": address.fields["code"],
                    "lookupKey": "code",
                    "success": True,
                }
                for action, address in self.store.upsert_addresses(company, items)
            ]
        return JSONResponse({"data": outcomes, "messages": ["Completed"], "total": len(outcomes)})

    # --- wiring ---------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Bearer token first, then the handler; vendor errors become the vendor's body."""

        async def endpoint(request: Request) -> Response:
            try:
                self._authorize(request)
                return await handler(request)
            except PropellerError as exc:
                return exc.response()

        return endpoint

    def routes(self) -> list[BaseRoute]:
        """``/oauth2/token`` and the REST v2 company resources."""
        company = "/v2/companies/{lookupKey}/{lookupValue}"
        guarded = self._guarded
        return [
            Route("/oauth2/token", self._token, methods=["POST"]),
            Route("/v2/companies", guarded(self._create), methods=["POST"]),
            Route("/v2/companies/search", guarded(self._search), methods=["POST"]),
            Route("/v2/companies/bulk/{lookupKey}", guarded(self._bulk), methods=["POST"]),
            Route(company, guarded(self._get), methods=["GET"]),
            Route(company, guarded(self._patch), methods=["PATCH"]),
            Route(company, guarded(self._delete), methods=["DELETE"]),
            Route(f"{company}/addresses", guarded(self._list_addresses), methods=["GET"]),
            Route(f"{company}/addresses", guarded(self._add_address), methods=["POST"]),
            Route(f"{company}/addresses/bulk", guarded(self._bulk_addresses), methods=["POST"]),
            Route(
                f"{company}/addresses/{{addressId}}", guarded(self._get_address), methods=["GET"]
            ),
            Route(
                f"{company}/addresses/{{addressId}}",
                guarded(self._patch_address),
                methods=["PATCH"],
            ),
            Route(
                f"{company}/addresses/{{addressId}}",
                guarded(self._delete_address),
                methods=["DELETE"],
            ),
        ]

    # --- the sandbox surface --------------------------------------------------------------

    def error(self, status: int, message: str) -> VendorError:
        """Plain HTTP failures in Propeller's error body (an unknown route is 10008)."""
        return http_error(status, message)

    def vendor_error(self, code: str) -> VendorError:
        """The exact body and status of a Propeller error code (or type name)."""
        return injected_error(code)

    def entities(self) -> list[str]:
        """``companies`` and ``addresses``."""
        return ["companies", "addresses"]

    def records(self, entity: str) -> list[Any] | None:
        """Companies (the recycle bin too, flagged ``recycleBin``) or addresses."""
        with self.lock:
            if entity == "companies":
                return [
                    {
                        **self.store.represent(c, frozenset({"sources", "attributes"})),
                        "recycleBin": c.deleted,
                        "dateDeleted": c.date_deleted,
                    }
                    for c in self.store.companies.values()
                ]
            if entity == "addresses":
                return [
                    {**self.store.represent_address(a), "companyId": a.company_id}
                    for a in self.store.addresses.values()
                ]
        return None

    def reset(self) -> None:
        """Forget every company and address; issued tokens stay valid (they are not records)."""
        with self.lock:
            self.store.clear()

    def load_handmade(self, companies: Sequence[Handmade]) -> int:
        """Companies created in the backoffice: no ``sourceId``, no ``source``."""
        for made in companies:
            body: dict[str, Any] = {"name": made.name}
            if made.email is not None:
                body["email"] = made.email
            if made.tax_number is not None:
                body["taxNumber"] = made.tax_number
            self.store.create(parse_create(body))
        return len(companies)

    def seed(self, request: SeedRequest) -> dict[str, int]:
        """Nothing: Propeller is a target, filled by the sync."""
        return {}
