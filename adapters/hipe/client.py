"""The HIPE by Packitoo client: companies, contacts, custom fields and CSV imports.

HIPE's list endpoints speak the nestjsx/crud query language: ``s=`` is a JSON object
inside the query string, ``limit`` and ``page`` page, ``sort=field,ASC`` sorts. This
client builds ``s`` with :func:`json.dumps` and lets httpx percent-encode the query, so a
value with quotes, ``&``, ``%``, ``+``, accents, emoji or right-to-left text reaches HIPE
intact. Companies and contacts are matched on ``externalId`` with ``$eq``, never on the
guide's ``name $contL`` (a substring of the name matches unrelated companies), and
several live matches are an :class:`~erpsync.errors.AmbiguousMatchError`, because
``externalId`` is not unique in HIPE.

Every failure is classified once, by :mod:`adapters.hipe.errors`. No backoff loop lives
here, except the polling of an import's status, which is the import itself.
"""

from __future__ import annotations

from adapters._http import unexpected_shape
from adapters.hipe._transport import (
    COMPANIES,
    CONTACTS,
    CUSTOM_FIELD_NODES,
    IMPORTS,
    USERS,
    HipeTransport,
)
from adapters.hipe.companies import CompanyCalls
from adapters.hipe.contacts import ContactCalls
from adapters.hipe.imports import (
    CSV_DELIMITER,
    CSV_FIXED_COLUMNS,
    FORMULA_TRIGGERS,
    IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID,
    ImportCalls,
    build_companies_csv,
    neutralise_formula,
)
from adapters.hipe.models import HipeCustomFieldNode

__all__ = [
    "COMPANIES",
    "CONTACTS",
    "CSV_DELIMITER",
    "CSV_FIXED_COLUMNS",
    "CUSTOM_FIELD_NODES",
    "FORMULA_TRIGGERS",
    "IMPORTS",
    "IMPORT_TYPE_COMPANIES_BY_EXTERNAL_ID",
    "USERS",
    "HipeClient",
    "build_companies_csv",
    "neutralise_formula",
]


class HipeClient(CompanyCalls, ContactCalls, ImportCalls, HipeTransport):
    """Typed access to one HIPE instance through an injected ``httpx.Client``.

    The transport (calls, paging, matching) is in :mod:`._transport`, the operations by
    resource in :mod:`.companies`, :mod:`.contacts` and :mod:`.imports`.
    """

    # -- health ------------------------------------------------------------------------------

    def check(self) -> str:
        """One cheap authenticated call (``GET /api/users/me``): who the token acts as."""
        response = self._request("GET", f"{USERS}/me", operation="check")
        body = self._json(response, "check")
        if not isinstance(body, dict):
            raise unexpected_shape(self._table, "check", "the current user is not an object")
        who = body.get("email") or body.get("username") or body.get("id")
        return f"authenticated as HIPE user {who}" if who else "authenticated"

    # -- custom fields -----------------------------------------------------------------------

    def custom_field_nodes(self) -> list[HipeCustomFieldNode]:
        """The custom field definitions (keys, types, options) of this instance."""
        return self._list(CUSTOM_FIELD_NODES, {}, HipeCustomFieldNode, "custom_field_nodes")
