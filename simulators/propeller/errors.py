"""Propeller's error catalogue and its error body.

Every failure of the REST API answers
``{"error": {"code", "status", "type", "messages", "moreInfo"}}`` (vendor docs, core
concepts / errors). The table holds the generic and company codes the docs list, plus the
two the sandbox conventions add (401 InvalidAccessToken, 429 TooManyRequests).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response

from simulators._sandbox import VendorError

MORE_INFO = "https://www.propel.us/docs/errors/{code}"

#: seconds a 429 asks the client to wait when the fault rule names none
DEFAULT_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ErrorKind:
    """One row of the vendor's error table."""

    code: int
    status: int
    type: str
    message: str


ERRORS: dict[int, ErrorKind] = {
    kind.code: kind
    for kind in (
        ErrorKind(401, 401, "InvalidAccessToken", "Invalid or expired access token"),
        ErrorKind(429, 429, "TooManyRequests", "Too many requests"),
        ErrorKind(10005, 400, "InvalidJSONPayload", "Invalid JSON payload"),
        ErrorKind(10006, 400, "InvalidLookupKey", "Invalid lookup key"),
        ErrorKind(10007, 400, "SchemaValidationException", "Schema validation failed"),
        ErrorKind(10008, 404, "NotFound", "Resource not found"),
        ErrorKind(10015, 400, "PaginatedResponseException", "Invalid pagination parameters"),
        ErrorKind(10016, 400, "LookupKeyNotFound", "Lookup key not found in payload"),
        ErrorKind(10017, 400, "PayloadValidationError", "Payload validation error"),
        ErrorKind(40004, 400, "CompanyExists", "Company already exists"),
        ErrorKind(
            40005,
            400,
            "CompanyMultipleFound",
            "Multiple companies found. Please provide additional filters",
        ),
        ErrorKind(40006, 404, "CompanyNotFound", "Company does not exist"),
        ErrorKind(40007, 404, "ParentCompanyNotFound", "Parent company not found"),
        ErrorKind(40008, 405, "CompanyNotAllowed", "Company is not allowed"),
        ErrorKind(90006, 404, "AddressNotFound", "Address does not exist"),
    )
}

_BY_TYPE: dict[str, ErrorKind] = {kind.type: kind for kind in ERRORS.values()}


def error_body(code: int, status: int, type_: str, messages: list[str]) -> dict[str, Any]:
    """The vendor's error body."""
    return {
        "error": {
            "code": code,
            "status": status,
            "type": type_,
            "messages": messages,
            "moreInfo": MORE_INFO.format(code=code),
        }
    }


class PropellerError(Exception):
    """A failure the simulator answers with the vendor's error body."""

    def __init__(self, code: int, *messages: str) -> None:
        kind = ERRORS[code]
        self.kind = kind
        self.messages = list(messages) or [kind.message]
        super().__init__(f"{kind.code} {kind.type}")

    def body(self) -> dict[str, Any]:
        """The whole error body, as the API answers it."""
        return error_body(self.kind.code, self.kind.status, self.kind.type, self.messages)

    def item_error(self) -> dict[str, Any]:
        """The ``error`` member of a failed bulk item (sandbox conventions)."""
        return {"code": self.kind.code, "type": self.kind.type, "messages": self.messages}

    def headers(self) -> dict[str, str]:
        """Headers the answer carries (a 429 says when to come back)."""
        if self.kind.code == 429:
            return {"Retry-After": str(DEFAULT_RETRY_AFTER_S)}
        return {}

    def response(self) -> Response:
        """The HTTP answer."""
        return JSONResponse(self.body(), status_code=self.kind.status, headers=self.headers())

    def vendor_error(self) -> VendorError:
        """The same answer as the sandbox's fault injection wants it."""
        return VendorError(self.kind.status, self.body(), self.headers())


def http_error(status: int, message: str) -> VendorError:
    """A plain HTTP failure (unknown route, wrong method, injected status) in vendor shape."""
    if status == 404:
        return PropellerError(10008, message).vendor_error()
    if status in ERRORS and ERRORS[status].status == status:
        return PropellerError(status, message).vendor_error()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Http Error"
    type_ = "".join(word.capitalize() for word in phrase.replace("-", " ").split())
    return VendorError(status, error_body(status, status, type_, [message]))


def injected_error(code: str) -> VendorError:
    """The answer for a ``vendor_code`` fault: a code (``"40005"``) or a type name."""
    kind = _BY_TYPE.get(code)
    if kind is None and code.strip().isdigit():
        kind = ERRORS.get(int(code))
    if kind is None:
        status = int(HTTPStatus.INTERNAL_SERVER_ERROR)
        return VendorError(
            status,
            error_body(
                int(code) if code.strip().isdigit() else status,
                status,
                "InternalServerError",
                [f"injected vendor error {code}"],
            ),
        )
    return PropellerError(kind.code).vendor_error()
