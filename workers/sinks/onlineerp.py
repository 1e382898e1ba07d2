"""Atollon billing → ERP customer invoices (the billing saga lives here; see issue #6)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from erpsync.errors import ErrorClass, PermanentError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.settings import AtollonSettings, OnlineErpSettings
from workers.engine import ApplyContext, ApplyResult


class OnlineErpSink:
    """Creates customer invoices in the ERP, exactly once, then marks Atollon items Billed."""

    target = "onlineerp"

    def __init__(
        self,
        settings: OnlineErpSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
        *,
        atollon: AtollonSettings | None = None,
        atollon_http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.overrides = overrides
        self.atollon = atollon
        self.atollon_http = atollon_http

    def handles(self, entity: str) -> bool:
        return entity == "billing" and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        raise PermanentError(
            "the billing flow is not available yet",
            system="onlineerp",
            operation="create invoice",
            hint="disable the billing flow until erpsync supports it",
        )

    def close(self) -> None:
        self.http.close()
        if self.atollon_http is not None:
            self.atollon_http.close()
