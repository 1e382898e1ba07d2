"""The one exception root of erpsync, classified by what the caller must do next.

Adapters map every vendor failure (HTTP status, vendor error code, transport exception)
onto exactly one of these classes, once, at the adapter boundary. Workers decide what to
do from the class alone; they never look at HTTP or vendor JSON.

    ErpSyncError
    ├── ConfigError                  settings or flow file invalid; nothing starts
    └── SyncError                    a call to a system failed (system, operation, status…)
        ├── TransientError           retry with backoff + full jitter, honour retry_after_s
        ├── DependencyError          something it needs is not there yet: wait longer, retry
        ├── ConflictError            recoverable: the worker fixes the call and goes on
        │   ├── RecordExistsError    create hit an existing record → update instead
        │   └── RecordMissingError   update/delete hit no record → create (or done, for delete)
        ├── PermanentError           data or mapping problem: dead-letter with the vendor code
        │   ├── AmbiguousMatchError  several target records claim one source key
        │   └── ReadUnsupportedError the target offers no read of these records (a known
        │                            limitation: reconcile reports it, nothing is retried)
        └── AuthError                authentication/configuration: open the target's circuit

Messages name the system, the operation and the status; they never contain a response
body, a header or a secret. A redacted excerpt of the body travels separately in
``response_excerpt`` (for the dead-letter entry), already passed through
:func:`erpsync.redaction.redact`.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorClass(enum.StrEnum):
    """What must happen next when a call fails."""

    TRANSIENT = "transient"
    DEPENDENCY = "dependency"
    CONFLICT = "conflict"
    PERMANENT = "permanent"
    AUTH = "auth"


class Action(enum.StrEnum):
    """The worker's default action for an error class (shown by ``erpsync errors``)."""

    RETRY = "retry with backoff"
    WAIT = "wait for dependency, retry"
    RECOVER = "fix the call and go on"
    DEAD_LETTER = "dead-letter"
    OPEN_CIRCUIT = "open the target's circuit"


DEFAULT_ACTIONS: dict[ErrorClass, Action] = {
    ErrorClass.TRANSIENT: Action.RETRY,
    ErrorClass.DEPENDENCY: Action.WAIT,
    ErrorClass.CONFLICT: Action.RECOVER,
    ErrorClass.PERMANENT: Action.DEAD_LETTER,
    ErrorClass.AUTH: Action.OPEN_CIRCUIT,
}


class ErpSyncError(Exception):
    """Root of every error erpsync raises on purpose."""


class ConfigError(ErpSyncError):
    """The settings or the flow file are invalid; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"{count} configuration problem{'s' if count != 1 else ''}")

    def __str__(self) -> str:
        head = super().__str__()
        return head + "".join(f"\n  - {p}" for p in self.problems)


class SyncError(ErpSyncError):
    """A call to an external system failed; the subclass says what to do next."""

    error_class: ErrorClass = ErrorClass.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        system: str,
        operation: str,
        status_code: int | None = None,
        vendor_code: str | None = None,
        vendor_name: str | None = None,
        retry_after_s: float | None = None,
        response_excerpt: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.system = system
        self.operation = operation
        self.status_code = status_code
        self.vendor_code = vendor_code
        self.vendor_name = vendor_name
        self.retry_after_s = retry_after_s
        self.response_excerpt = response_excerpt
        self.hint = hint

    @property
    def code(self) -> str:
        """The most specific code known: the vendor's, else the HTTP status, else the class."""
        if self.vendor_code:
            return self.vendor_code
        if self.status_code is not None:
            return f"http-{self.status_code}"
        return self.error_class.value

    @property
    def rate_limited(self) -> bool:
        """The target refused the call for its rate (HTTP 429): it did nothing and asks for
        a wait, so the call is sound and is retried without spending an attempt."""
        return self.status_code == 429

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (no body beyond the redacted excerpt, no secret)."""
        return {
            "error_class": self.error_class.value,
            "error_type": type(self).__name__,
            "message": str(self),
            "system": self.system,
            "operation": self.operation,
            "status_code": self.status_code,
            "vendor_code": self.vendor_code,
            "vendor_name": self.vendor_name,
            "retry_after_s": self.retry_after_s,
            "response_excerpt": self.response_excerpt,
            "hint": self.hint,
        }


class TransientError(SyncError):
    """Timeouts, dropped connections, 429, 502/503/504: retry with backoff."""

    error_class = ErrorClass.TRANSIENT


class DependencyError(SyncError):
    """Something the record needs (its parent, its customer) is not in the target yet."""

    error_class = ErrorClass.DEPENDENCY


class ConflictError(SyncError):
    """The target's state differs from what the call assumed; the worker can fix the call."""

    error_class = ErrorClass.CONFLICT


class RecordExistsError(ConflictError):
    """A create found the record already there (Propeller 40004): update it instead."""


class RecordMissingError(ConflictError):
    """An update or delete found no record (Propeller 40006): create it, or call it done."""


class PermanentError(SyncError):
    """Bad data, bad mapping or a refusal that retrying cannot fix: dead-letter."""

    error_class = ErrorClass.PERMANENT


class AmbiguousMatchError(PermanentError):
    """Several target records claim the same source key; an operator must remove one."""


class ReadUnsupportedError(PermanentError):
    """The target offers no read of these records: a known limitation, not bad data.

    Reconcile reports the target as one that cannot be read (Atollon's crawler documents
    no read of contacts; a real instance may refuse the sandbox's undocumented one).
    """


class AuthError(SyncError):
    """Credentials or configuration refused after a refresh: stop consuming this target."""

    error_class = ErrorClass.AUTH


ERROR_TYPES: dict[ErrorClass, type[SyncError]] = {
    ErrorClass.TRANSIENT: TransientError,
    ErrorClass.DEPENDENCY: DependencyError,
    ErrorClass.CONFLICT: ConflictError,
    ErrorClass.PERMANENT: PermanentError,
    ErrorClass.AUTH: AuthError,
}
