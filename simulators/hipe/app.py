"""The HIPE by Packitoo simulator: companies, contacts, custom fields and CSV imports.

Follows the vendor guides (../shared/vendor-docs/000_*.txt), VENDORS.md §1 and §5, and the
HIPE section of docs/sandbox-conventions.md:

* ``X-ACCESS-TOKEN: sandbox-token`` on every ``/api`` call, else 401.
* ``/api/companies`` and ``/api/users/contacts`` speak the nestjsx/crud query language
  (:mod:`simulators.hipe.crud`); errors have NestJS's default bodies
  ``{"statusCode","message","error"}``; an unknown route is ``Cannot <METHOD> <path>``.
* ``externalId`` is NOT unique, as in the real product: two creates with one external id
  make two companies. That is the trap a sync must avoid, so the sandbox keeps it.
* Archiving is soft (``DELETE …/archived``, ``GET …/unarchived``); archived records stay
  visible to reads and searches.
* ``POST /api/imports`` queues a CSV import processed by a background thread: status
  1 (REQUESTED) → 2 (IN_PROGRESS) → 8 (done) → 4 (SENT: the guide's "the import result has
  been notified by email", ``notify_after_s`` after it ended), or 7 (CRASH) when the file
  cannot be read, or 3 (ABORTED: "cancelled or aborted") when a user cancels it
  (``POST /_sandbox/imports/{id}/abort``): it stops before its next chunk of rows, the rows
  already applied stay.

Also served, from the official n8n node: ``GET /api/users/me`` and the flat list
``GET /api/companies/pagination`` (``page``, ``limit``, ``sort``, ``search``), which answers
``{"data": […], "pagination": {"total", "page", "limit", "pageCount"}}`` as the node's mocks
read it (the shape is the node's assumption, not a documented contract).
"""

from __future__ import annotations

import json
import math
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from simulators._sandbox import LoadRefusedError, Simulator, VendorError
from simulators.handmade import Handmade
from simulators.hipe import _imports
from simulators.hipe._addresses import AddressError, Addresses
from simulators.hipe._fields import (
    COMPANY_DTO,
    COMPANY_SPEC,
    CONTACT_DTO,
    CUSTOM_FIELD_NODES,
    IMPORT_SPEC,
    USER_SPEC,
    IdKind,
    as_uuid,
    dto_for,
    merge_custom_fields,
    spec_for,
    validate_dto,
)
from simulators.hipe._qs import parse_query_string
from simulators.hipe.crud import (
    CrudBadRequestError,
    CrudOptions,
    ParsedRequest,
    QueryFailedError,
    Table,
    parse_param_id,
    parse_request,
)
from simulators.server import CREDENTIALS

ACCESS_TOKEN = CREDENTIALS["hipe"]["access_token"]
API_USER_ID = 1
IMPORT_CHUNK_ROWS = 500

Handler = Callable[[Request], Awaitable[Response]]


class HttpError(Exception):
    """An answer in NestJS's error shape, raised from inside a handler."""

    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


def nest_body(status: int, message: str | list[str]) -> dict[str, Any]:
    """NestJS's default exception body: ``error`` is the reason phrase when a message is set."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if isinstance(message, str) and message.lower() == phrase.lower():
        # new UnauthorizedException() and the 500 of an unexpected error look like this
        return {"statusCode": status, "message": message}
    return {"statusCode": status, "message": message, "error": phrase}


def _now() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class HipeSimulator(Simulator):
    """HIPE over HTTP, state in memory (see the module docstring for what it serves)."""

    name = "hipe"

    def __init__(
        self,
        *,
        default_limit: int | None = None,
        max_limit: int | None = None,
        notify_after_s: float | None = 2.0,
        ids: IdKind = "int",
    ) -> None:
        """``default_limit``/``max_limit`` are the crud controller's ``query.limit`` and
        ``query.maxLimit``; HIPE's values are not published, so neither is set by default
        (a list without ``limit`` returns every match, as the library does then).
        ``notify_after_s``: an import that ended (8) is SENT (4) this long after (None:
        never; held imports wait for a step instead). ``ids``: companies and users get
        integer ids (1, 2, …) or UUIDs (the guide's shape), in creation order either way.
        """
        super().__init__()
        self.ids: IdKind = ids
        self.company_dto = dto_for(COMPANY_DTO, ids)
        self.contact_dto = dto_for(CONTACT_DTO, ids)
        self.notify_after_s = notify_after_s
        self._aborted: set[str] = set()
        self.crud_options = CrudOptions(limit=default_limit, max_limit=max_limit)
        self.companies = Table(spec_for(COMPANY_SPEC, ids))
        self.users = Table(spec_for(USER_SPEC, ids))
        self.imports = Table(spec_for(IMPORT_SPEC, ids))
        self.addresses = Addresses(self._timestamp)
        #: the parse of the latest crud list request (for tests comparing with the library)
        self.last_parsed: ParsedRequest | None = None
        self._last_time = ""
        self._generation = 0
        self._jobs: queue.Queue[tuple[int, str, bytes, str]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._holding = False
        self._steps = threading.Semaphore(0)
        self._files: dict[str, bytes] = {}
        self.reset()

    # -- the Simulator contract -----------------------------------------------------------

    def reset(self) -> None:
        """Forget every record; a running import stops at its next chunk."""
        with self.lock:
            self._generation += 1
            self.companies.clear()
            self.users.clear()
            self.imports.clear()
            self.addresses.clear()
            self._files.clear()
            self._aborted.clear()
            self._next = {"company": 1, "user": 1, "import": 1}
            self.release_imports()
            now = self._timestamp()
            self.users.put(
                {
                    "id": self._take_id("user"),
                    "email": "api@sandbox.hipe.test",
                    "firstName": "Sandbox",
                    "lastName": "API",
                    "phoneNumber": None,
                    "mobilePhone": None,
                    "job": None,
                    "externalId": None,
                    "role": "admin",
                    "collaborationIds": [],
                    "customFields": {},
                    "archived": False,
                    "createdAt": now,
                    "updatedAt": now,
                }
            )

    def records(self, entity: str) -> list[Any] | None:
        """``companies``, ``contacts`` (users with the contact role) and ``imports``."""
        if entity == "companies":
            return list(self.companies.rows.values())
        if entity == "contacts":
            return [u for u in self.users.rows.values() if u["role"] == "contact"]
        if entity == "imports":
            return list(self.imports.rows.values())
        if entity == "addresses":
            return list(self.addresses.rows.values())
        return None

    def entities(self) -> list[str]:
        """The entity names ``/_sandbox/records/{entity}`` accepts."""
        return ["companies", "contacts", "imports", "addresses"]

    def error(self, status: int, message: str) -> VendorError:
        """NestJS's default error body."""
        return VendorError(status, nest_body(status, message))

    def vendor_error(self, code: str) -> VendorError:
        """HIPE has no vendor codes: a numeric ``vendor_code`` is taken as the HTTP status."""
        if code.isdigit() and 400 <= int(code) <= 599:
            status = int(code)
            return self.error(status, HTTPStatus(status).phrase)
        return self.error(500, "Internal server error")

    # -- imports: test and demo control ---------------------------------------------------

    def hold_imports(self) -> None:
        """Make imports wait at each status change until :meth:`step_import` (tests, demo)."""
        with self.lock:
            self._holding = True
            self._steps = threading.Semaphore(0)

    def step_import(self) -> None:
        """Let a held import past its next status change."""
        self._steps.release()

    def release_imports(self) -> None:
        """Stop holding imports; a waiting one goes on at once."""
        self._holding = False
        self._steps.release()

    def load_handmade(self, companies: Sequence[Handmade]) -> int:
        """Companies created in HIPE's interface: no ``externalId``."""
        for made in companies:
            values = {"name": made.name, "email": made.email, "vat": made.tax_number}
            self.companies.put(
                _imports.new_company(
                    values, company_id=self._take_id("company"), now=self._timestamp()
                )
            )
        return len(companies)

    def abort_import(self, job_id: str) -> dict[str, Any] | None:
        """A user cancels an import: a waiting one ends at once with status 3, a running
        one before its next chunk of rows; one that has ended stays as it is."""
        with self.lock:
            job = self.imports.rows.get(job_id)
            if job is None:
                return None
            if job["status"] in (1, 2):
                self._aborted.add(job_id)
                if job["status"] == 1:
                    self.imports.put({**job, "status": 3, "updatedAt": self._timestamp()})
            return dict(self.imports.rows[job_id])

    def control_routes(self) -> list[BaseRoute]:
        """What a HIPE user does by hand: cancel an import."""
        return [Route("/_sandbox/imports/{id}/abort", self._abort_route, methods=["POST"])]

    async def _abort_route(self, request: Request) -> Response:
        job = self.abort_import(request.path_params["id"])
        if job is None:
            return JSONResponse(nest_body(404, "Import not found"), status_code=404)
        return JSONResponse(job)

    def load(self, entity: str, bodies: Sequence[Any]) -> list[Any] | None:
        """``companies``: each body as ``POST /api/companies`` takes it; one that also says
        ``"archived": true`` is archived next, as ``DELETE …/archived`` would."""
        if entity != "companies":
            return None
        answers: list[Any] = []
        for index, body in enumerate(bodies):
            fields = dict(body) if isinstance(body, dict) else body
            archived = isinstance(fields, dict) and fields.pop("archived", False) is True
            try:
                company = self._create(fields)
            except HttpError as exc:
                raise LoadRefusedError(index, str(exc.message)) from exc
            if archived:
                company = {**company, "archived": True}
                self.companies.put(company)
            answers.append(company)
        return answers

    # -- plumbing -------------------------------------------------------------------------

    def _timestamp(self) -> str:
        now = _now()
        if now < self._last_time:
            now = self._last_time
        self._last_time = now
        return now

    def _take_id(self, kind: str) -> Any:
        """The next id of ``kind``: an integer, or with UUID ids a company's or user's
        UUID whose first digits count up (they sort in creation order, as integers do)."""
        value = self._next[kind]
        self._next[kind] = value + 1
        if self.ids == "uuid" and kind in ("company", "user"):
            return str(uuid.UUID(int=(value << 96) | uuid.uuid4().int >> 32, version=4))
        return value

    @property
    def api_user_id(self) -> Any:
        """The id of the API's own user (the first user)."""
        return next(iter(self.users.rows))

    def routes(self) -> list[BaseRoute]:
        """The HIPE API, then a catch-all answering unknown routes as Express does."""
        api = self._api
        return [
            Route("/api/companies", api(self._list_companies), methods=["GET"]),
            Route("/api/companies", api(self._create_company), methods=["POST"]),
            Route("/api/companies/pagination", api(self._paginate_companies), methods=["GET"]),
            Route("/api/companies/{id}", api(self._get_company), methods=["GET"]),
            Route("/api/companies/{id}", api(self._patch_company), methods=["PATCH"]),
            Route("/api/companies/{id}/archived", api(self._archive_company), methods=["DELETE"]),
            Route("/api/companies/{id}/unarchived", api(self._unarchive_company), methods=["GET"]),
            Route("/api/companies/{id}/addresses", api(self._company_addresses), methods=["GET"]),
            Route("/api/companies/{id}/addresses", api(self._create_addresses), methods=["POST"]),
            Route(
                "/api/addresses/{id}",
                api(self._one_address),
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route("/api/users/contacts", api(self._list_contacts), methods=["GET"]),
            Route("/api/users/contacts", api(self._create_contact), methods=["POST"]),
            Route("/api/users/me", api(self._me), methods=["GET"]),
            Route("/api/users/{id}", api(self._get_user), methods=["GET"]),
            Route("/api/users/{id}", api(self._patch_user), methods=["PATCH"]),
            Route("/api/users/{id}/archived", api(self._archive_user), methods=["DELETE"]),
            Route("/api/users/{id}/unarchived", api(self._unarchive_user), methods=["GET"]),
            Route("/api/custom-field-nodes", api(self._custom_field_nodes), methods=["GET"]),
            Route("/api/imports", api(self._create_import), methods=["POST"]),
            Route("/api/imports", api(self._list_imports), methods=["GET"]),
            Route("/api/imports/{id}", api(self._get_import), methods=["GET"]),
            Route(
                "/{path:path}",
                self._no_route,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            ),
        ]

    def _api(self, handler: Handler) -> Handler:
        """Token check first (a guard runs before pipes), then NestJS error mapping."""

        async def endpoint(request: Request) -> Response:
            if request.headers.get("x-access-token") != ACCESS_TOKEN:
                return JSONResponse(nest_body(401, "Unauthorized"), status_code=401)
            try:
                return await handler(request)
            except CrudBadRequestError as exc:
                return JSONResponse(nest_body(400, exc.message), status_code=400)
            except QueryFailedError:
                return JSONResponse(nest_body(500, "Internal server error"), status_code=500)
            except (HttpError, AddressError) as exc:
                return JSONResponse(nest_body(exc.status, exc.message), status_code=exc.status)
            except HTTPException as exc:  # e.g. a malformed multipart body
                return JSONResponse(
                    nest_body(exc.status_code, exc.detail), status_code=exc.status_code
                )

        return endpoint

    async def _no_route(self, request: Request) -> Response:
        message = f"Cannot {request.method} {request.url.path}"
        return JSONResponse(nest_body(404, message), status_code=404)

    @staticmethod
    def _query(request: Request) -> ParsedRequest:
        raw = request.scope.get("query_string", b"").decode("latin-1")
        return parse_request(parse_query_string(raw))

    @staticmethod
    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except UnicodeDecodeError as exc:
            raise HttpError(400, "Unexpected token in JSON at position 0") from exc
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"Unexpected token in JSON at position {exc.pos}") from exc

    def _one(
        self, table: Table, raw_id: str, parsed: ParsedRequest | None = None
    ) -> dict[str, Any]:
        key: Any
        if self.ids == "uuid":  # the controller's ParseUUIDPipe
            key = as_uuid(raw_id)
            if key is None:
                raise HttpError(400, "Validation failed (uuid is expected)")
        else:
            key = parse_param_id(raw_id)
        found = table.get_one(parsed or ParsedRequest(), key)
        if found is None:
            raise HttpError(404, f"{table.spec.alias} not found")
        return found

    # -- companies ------------------------------------------------------------------------

    async def _list_companies(self, request: Request) -> Response:
        parsed = self._query(request)
        with self.lock:
            self.last_parsed = parsed
            result = self.companies.query(parsed, self.crud_options)
        return JSONResponse(result)

    async def _get_company(self, request: Request) -> Response:
        parsed = self._query(request)
        with self.lock:
            return JSONResponse(self._one(self.companies, request.path_params["id"], parsed))

    def _check_parent(self, parent_id: int | None, company_id: int | None) -> None:
        if parent_id is None:
            return
        seen = {company_id}
        cursor: int | None = parent_id
        while cursor is not None:
            if cursor in seen:
                raise HttpError(400, "parentId would make a company its own ancestor")
            parent = self.companies.rows.get(cursor)
            if parent is None:
                raise HttpError(400, f"parentId: company {cursor} not found")
            seen.add(cursor)
            cursor = parent["parentId"]

    def _company_values(self, body: Any, current: dict[str, Any] | None) -> dict[str, Any]:
        values, errors = validate_dto(body, self.company_dto, partial=current is not None)
        if errors:
            raise HttpError(400, errors)
        if "customFields" in values:
            base = current["customFields"] if current is not None else {}
            merged, problems = merge_custom_fields("COMPANIES", base, values["customFields"])
            if problems:
                raise HttpError(400, problems)
            values["customFields"] = merged
        return values

    async def _create_company(self, request: Request) -> Response:
        body = await self._json_body(request)
        with self.lock:
            company = self._create(body)
        return JSONResponse(company, status_code=201)

    def _create(self, body: Any) -> dict[str, Any]:
        """``POST /api/companies``: the company made from ``body`` (the caller holds the lock)."""
        values = self._company_values(body, None)
        self._check_parent(values.get("parentId"), None)
        company = _imports.new_company(
            values, company_id=self._take_id("company"), now=self._timestamp()
        )
        self.companies.put(company)
        return company

    async def _patch_company(self, request: Request) -> Response:
        body = await self._json_body(request)
        with self.lock:
            current = self._one(self.companies, request.path_params["id"])
            values = self._company_values(body, current)
            if "parentId" in values:
                self._check_parent(values["parentId"], current["id"])
            company = {**current, **values, "updatedAt": self._timestamp()}
            self.companies.put(company)
        return JSONResponse(company)

    def _set_archived(self, table: Table, raw_id: str, archived: bool) -> Response:
        with self.lock:
            current = self._one(table, raw_id)
            record = {**current, "archived": archived, "updatedAt": self._timestamp()}
            table.put(record)
        return JSONResponse(record)

    async def _archive_company(self, request: Request) -> Response:
        return self._set_archived(self.companies, request.path_params["id"], True)

    async def _unarchive_company(self, request: Request) -> Response:
        return self._set_archived(self.companies, request.path_params["id"], False)

    async def _paginate_companies(self, request: Request) -> Response:
        params = request.query_params
        try:
            page = int(params.get("page", "1"))
            limit = int(params.get("limit", "10"))
        except ValueError as exc:
            raise HttpError(400, "page and limit must be integers") from exc
        if page < 1 or limit < 1:
            raise HttpError(400, "page and limit must be positive")
        sort_field, _, order = params.get("sort", "id,ASC").partition(",")
        if sort_field not in ("id", "name", "createdAt", "updatedAt") or order not in (
            "ASC",
            "DESC",
        ):
            raise HttpError(400, "sort must be name|createdAt|updatedAt,ASC|DESC")
        needle = params.get("search", "").lower()
        with self.lock:
            rows = [
                r
                for r in self.companies.rows.values()
                if not needle
                or any(needle in str(r.get(k) or "").lower() for k in ("name", "externalId"))
            ]
        rows.sort(key=lambda r: (r.get(sort_field) or "", r["id"]), reverse=order == "DESC")
        total = len(rows)
        data = rows[(page - 1) * limit : page * limit]
        return JSONResponse(
            {
                "data": data,
                "pagination": {
                    "total": total,
                    "page": page,
                    "limit": limit,
                    "pageCount": max(1, math.ceil(total / limit)),
                },
            }
        )

    # -- company addresses (simulators.hipe._addresses) ----------------------------------

    async def _company_addresses(self, request: Request) -> Response:
        with self.lock:
            company = self._one(self.companies, request.path_params["id"])
            return JSONResponse(self.addresses.of_company(company["id"]))

    async def _create_addresses(self, request: Request) -> Response:
        body = await self._json_body(request)
        with self.lock:
            company = self._one(self.companies, request.path_params["id"])
            created = self.addresses.create(company["id"], body)
        return JSONResponse(created if isinstance(body, list) else created[0], status_code=201)

    async def _one_address(self, request: Request) -> Response:
        raw_id = request.path_params["id"]
        body = await self._json_body(request) if request.method == "PATCH" else None
        with self.lock:
            if request.method == "PATCH":
                return JSONResponse(self.addresses.update(raw_id, body))
            if request.method == "DELETE":
                return JSONResponse(self.addresses.delete(raw_id))
            return JSONResponse(self.addresses.one(raw_id))

    # -- users and contacts ---------------------------------------------------------------

    def _contact_values(self, body: Any, current: dict[str, Any] | None) -> dict[str, Any]:
        values, errors = validate_dto(body, self.contact_dto, partial=current is not None)
        if errors:
            raise HttpError(400, errors)
        for company_id in values.get("collaborationIds") or []:
            if company_id not in self.companies.rows:
                raise HttpError(400, f"collaborationIds: company {company_id} not found")
        if "customFields" in values:
            base = current["customFields"] if current is not None else {}
            merged, problems = merge_custom_fields("CONTACTS", base, values["customFields"])
            if problems:
                raise HttpError(400, problems)
            values["customFields"] = merged
        return values

    async def _list_contacts(self, request: Request) -> Response:
        parsed = self._query(request)
        options = CrudOptions(
            limit=self.crud_options.limit,
            max_limit=self.crud_options.max_limit,
            filter=[{"role": {"$eq": "contact"}}],
        )
        with self.lock:
            self.last_parsed = parsed
            result = self.users.query(parsed, options)
        return JSONResponse(result)

    async def _create_contact(self, request: Request) -> Response:
        body = await self._json_body(request)
        with self.lock:
            values = self._contact_values(body, None)
            now = self._timestamp()
            contact = {
                "id": self._take_id("user"),
                "email": values.get("email"),
                "firstName": values.get("firstName"),
                "lastName": values.get("lastName"),
                "phoneNumber": values.get("phoneNumber"),
                "mobilePhone": values.get("mobilePhone"),
                "job": values.get("job"),
                "externalId": values.get("externalId"),
                "role": "contact",
                "collaborationIds": values.get("collaborationIds") or [],
                "customFields": values.get("customFields", {}),
                "archived": False,
                "createdAt": now,
                "updatedAt": now,
            }
            self.users.put(contact)
        return JSONResponse(contact, status_code=201)

    async def _me(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse(self.users.rows[self.api_user_id])

    async def _get_user(self, request: Request) -> Response:
        parsed = self._query(request)
        with self.lock:
            return JSONResponse(self._one(self.users, request.path_params["id"], parsed))

    async def _patch_user(self, request: Request) -> Response:
        body = await self._json_body(request)
        with self.lock:
            current = self._one(self.users, request.path_params["id"])
            values = self._contact_values(body, current)
            user = {**current, **values, "updatedAt": self._timestamp()}
            self.users.put(user)
        return JSONResponse(user)

    async def _archive_user(self, request: Request) -> Response:
        return self._set_archived(self.users, request.path_params["id"], True)

    async def _unarchive_user(self, request: Request) -> Response:
        return self._set_archived(self.users, request.path_params["id"], False)

    async def _custom_field_nodes(self, request: Request) -> Response:
        return JSONResponse(CUSTOM_FIELD_NODES)

    # -- imports --------------------------------------------------------------------------

    async def _create_import(self, request: Request) -> Response:
        async with request.form() as form:
            kind = form.get("type")
            delimiter = form.get("delimiter")
            upload = form.get("csv")
            problems = []
            if (
                not isinstance(kind, str)
                or kind.strip() != _imports.IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID
            ):
                problems.append("type must be one of the following values: 16")
            if delimiter not in _imports.DELIMITERS:
                problems.append("delimiter must be one of the following values: ,, ;")
            if not isinstance(upload, UploadFile):
                problems.append("csv file is required")
            if problems or not isinstance(upload, UploadFile) or not isinstance(delimiter, str):
                raise HttpError(400, problems)
            data = await upload.read()
        with self.lock:
            now = self._timestamp()
            code = self._take_id("import")
            job_id = str(uuid.uuid4())
            job = {
                "id": job_id,
                "code": code,
                "type": _imports.IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID,
                "status": 1,
                "delimiter": delimiter,
                "createdById": self.api_user_id,
                "fileId": str(uuid.uuid4()),
                "dryRun": False,
                "allowDelete": False,
                "fileArchived": False,
                "stats": {},
                "total": 0,
                "processed": 0,
                "created": 0,
                "updated": 0,
                "errors": [],
                "createdAt": now,
                "updatedAt": now,
            }
            self.imports.put(job)
            self._jobs.put((self._generation, job_id, data, delimiter))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="hipe-imports", daemon=True)
                self._worker.start()
        return JSONResponse(job, status_code=201)

    async def _get_import(self, request: Request) -> Response:
        with self.lock:
            job = self.imports.rows.get(request.path_params["id"])
        if job is None:
            raise HttpError(404, "Import not found")
        return JSONResponse(job)

    async def _list_imports(self, request: Request) -> Response:
        parsed = self._query(request)
        with self.lock:
            result = self.imports.query(parsed, self.crud_options)
        return JSONResponse(result)

    # -- the import worker (a background thread) ------------------------------------------

    def _work(self) -> None:
        while True:
            generation, job_id, data, delimiter = self._jobs.get()
            try:
                self._run_import(generation, job_id, data, delimiter)
            except Exception:  # noqa: BLE001 - a bug must not kill the worker; mark a crash
                self._update_job(generation, job_id, status=7)

    def _checkpoint(self) -> None:
        while self._holding:
            if self._steps.acquire(timeout=0.05):
                return

    def _update_job(self, generation: int, job_id: str, **changes: Any) -> bool:
        """Apply ``changes`` to the job; False when a reset has forgotten it."""
        with self.lock:
            job = self.imports.rows.get(job_id)
            if generation != self._generation or job is None:
                return False
            self.imports.put({**job, **changes, "updatedAt": self._timestamp()})
            return True

    def _is_aborted(self, generation: int, job_id: str) -> bool:
        """True (and the job set to 3, ABORTED) when a user cancelled it."""
        with self.lock:
            if job_id not in self._aborted:
                return False
            self._update_job(generation, job_id, status=3)
            return True

    def _run_import(self, generation: int, job_id: str, data: bytes, delimiter: str) -> None:
        self._checkpoint()
        if self._is_aborted(generation, job_id):
            return
        if not self._update_job(generation, job_id, status=2):
            return
        self._checkpoint()
        try:
            parsed = _imports.read_csv(data, delimiter)
        except _imports.UnreadableFileError as exc:
            error = {"row": 0, "externalId": None, "message": str(exc)}
            self._update_job(generation, job_id, status=7, errors=[error])
            return
        total = len(parsed.rows)
        if not self._update_job(generation, job_id, total=total):
            return
        created = updated = 0
        errors: list[dict[str, Any]] = []
        for start in range(0, total, IMPORT_CHUNK_ROWS):
            if start:
                self._checkpoint()  # held imports stop between chunks too (tests)
            if self._is_aborted(generation, job_id):
                return
            with self.lock:
                if generation != self._generation:
                    return
                now = self._timestamp()
                for number, cells in enumerate(
                    parsed.rows[start : start + IMPORT_CHUNK_ROWS], start=start + 1
                ):
                    try:
                        outcome = _imports.apply_row(
                            self.companies,
                            parsed.header,
                            cells,
                            next_id=lambda: self._take_id("company"),
                            now=now,
                        )
                    except _imports.RowError as exc:
                        at = parsed.header.index("externalId")
                        external_id = (cells[at] or None) if at < len(cells) else None
                        errors.append(
                            {"row": number, "externalId": external_id, "message": str(exc)}
                        )
                        continue
                    if outcome == "created":
                        created += 1
                    else:
                        updated += 1
                self._update_job(
                    generation,
                    job_id,
                    processed=min(total, start + IMPORT_CHUNK_ROWS),
                    created=created,
                    updated=updated,
                    errors=list(errors),
                )
        self._checkpoint()
        if self._is_aborted(generation, job_id):
            return
        stats = {"total": total, "created": created, "updated": updated, "errors": len(errors)}
        if not self._update_job(generation, job_id, status=8, stats=stats, processed=total):
            return
        self._notify_later(generation, job_id)

    def _notify_later(self, generation: int, job_id: str) -> None:
        """The result is "notified by email": status 4 (SENT) a moment after the end."""
        if self._holding:
            self._checkpoint()
            self._update_job(generation, job_id, status=4)
        elif self.notify_after_s is not None:
            timer = threading.Timer(
                self.notify_after_s, self._update_job, (generation, job_id), {"status": 4}
            )
            timer.daemon = True
            timer.start()
