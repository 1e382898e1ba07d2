"""One package per vendor (``adapters.atollon``, ``.hipe``, ``.onlineerp``, ``.propeller``), and
the HTTP base they share, exported here for the rest of erpsync: building a client from a
system's settings (:func:`make_client`, :func:`tls_verification`), sending a request with
transport failures classified (:func:`send`), a vendor's table of error classes
(:class:`ErrorTable`), ``Retry-After`` (:func:`parse_retry_after`) and the largest answer read
(:data:`MAX_RESPONSE_BYTES`). The implementation is :mod:`adapters._http`; outside
``adapters/``, import these names from ``adapters``.
"""

from __future__ import annotations

from adapters._http import (
    MAX_RESPONSE_BYTES,
    ErrorRule,
    ErrorTable,
    make_client,
    parse_retry_after,
    send,
    tls_verification,
)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ErrorRule",
    "ErrorTable",
    "make_client",
    "parse_retry_after",
    "send",
    "tls_verification",
]
