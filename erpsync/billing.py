"""The invoice reference of Atollon billing work, shared by the billing producer and sink.

The producer (:mod:`producers.atollon`) names each invoice record by it; the saga
(:mod:`delivery.sinks.onlineerp`) sends it as the ERP invoice's ``Référence``, which lets
the ERP refuse a second invoice for the same work (``If-None-Match: *``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

#: Prefix of the invoice references erpsync creates from Atollon work.
REFERENCE_PREFIX = "ATL"
#: The longest reference made. The ERP's limit on ``Référence`` is not documented: 20
#: characters is a conservative guess (longer forms fall back to a pure hash).
REFERENCE_MAX_LEN = 20


def _digest(parts: Sequence[str], size: int) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


def billing_reference(activity_id: str, item_ids: Sequence[str]) -> str:
    """The invoice reference of some billing items of one activity (deterministic).

    ``ATL-<activity id>-<8 hex of the sorted item ids>``, or ``ATL-<16 hex>`` when that
    would be longer than :data:`REFERENCE_MAX_LEN`. The same items always give the same
    reference, whatever order Atollon lists them in; other items give another one.
    """
    parts = [activity_id, *sorted(set(item_ids))]
    readable = f"{REFERENCE_PREFIX}-{activity_id}-{_digest(parts, 4)}"
    if len(readable) <= REFERENCE_MAX_LEN:
        return readable
    return f"{REFERENCE_PREFIX}-{_digest(parts, 8)}"
