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

from adapters.propeller._transport import (
    BULK_MAX_ITEMS,
    DEFAULT_TOKEN_LIFETIME_S,
    PropellerTransport,
)
from adapters.propeller.addresses import AddressCalls
from adapters.propeller.companies import CompanyCalls

__all__ = ["BULK_MAX_ITEMS", "DEFAULT_TOKEN_LIFETIME_S", "PropellerClient"]


class PropellerClient(CompanyCalls, AddressCalls, PropellerTransport):
    """Typed access to Propeller companies and addresses through an injected httpx client.

    The transport (token, calls, paging, bulk outcomes) is in :mod:`._transport`, the
    operations by resource in :mod:`.companies` and :mod:`.addresses`.
    Meant for one thread at a time (one client per Celery worker process); the token cache
    is still guarded by a lock so that sharing a client between threads cannot corrupt it.
    """

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
