"""ERP customers → HIPE companies, matched on ``externalId`` (never on name)."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import httpx
import structlog

from adapters.hipe import (
    HipeClient,
    HipeCompany,
    HipeCompanyImportRow,
    HipeCompanyInput,
    HipeId,
    build_companies_csv,
    hipe_id,
)
from delivery.batch import BulkItemResult
from delivery.engine import ApplyContext, ApplyResult, missing_parent
from delivery.sinks import follow_ups, hipe_addresses
from delivery.sinks.addresses import split, warn_incomplete
from delivery.sinks.view import Observed, View, view
from erpsync.errors import (
    AmbiguousMatchError,
    ErrorClass,
    RecordMissingError,
    SyncError,
    TransientError,
)
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, apply_custom, resolve
from erpsync.models import Company, CompanyAddress
from erpsync.settings import HipeSettings

log = structlog.get_logger("erpsync.worker")

#: HIPE company attribute -> view field (delivery.sinks.view)
VIEW_FIELDS = {
    "name": "name",
    "email": "email",
    "phone": "phone",
    "vat": "tax_number",
    "website": "website",
}
#: the attributes every company body carries (the others only when the mapping sets them)
_ALWAYS_WRITTEN = frozenset({"name", "email", "phone", "vat"})
#: parents remembered while reconcile reads the companies (ids -> external ids); bounded,
#: so memory does not grow with the number of companies
PARENT_CACHE_SIZE = 10_000
#: CSV columns a company row may carry besides externalId, name and parentExternalId
_ROW_TEXT_FIELDS = ("email", "phone", "vat", "website")
#: the changed-since listing that finds the ids of imported companies starts this long
#: before the import was sent (HIPE's clock and ours may differ a little); a company the
#: listing misses is looked up by its external id, one call
IMPORT_LISTING_MARGIN_S = 30.0
#: how long the custom field definitions (their types) are trusted before being read again
CUSTOM_TYPES_TTL_S = 300.0
#: times the changed-since listing after an import is started when refused for the rate,
#: and the longest ``Retry-After`` waited for it (a longer one: the look-ups instead)
LISTING_ATTEMPTS = 3
LISTING_RETRY_MAX_S = 30.0


def _created_since(company: HipeCompany, since: datetime) -> bool:
    """True when HIPE says the company was created at or after ``since`` (an import's)."""
    return company.created_at is not None and company.created_at >= since


def as_number(text: str) -> int | float | None:
    """The number a text spells (``10`` → 10, ``2.50`` → 2.5), or None when it spells none."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def survives_csv(column: str, value: str) -> bool:
    """True when the import's CSV carries ``value`` unchanged in ``column``.

    The adapter neutralises cells a spreadsheet would run as formulas by prefixing ``'``
    (OWASP's advice); a phone written ``+1 514 …`` would arrive in HIPE as ``'+1 514 …``.
    Asking the adapter's own CSV builder keeps this check right if its rule changes (for
    example to let plain phone numbers through).
    """
    fields: dict[str, Any] = {"external_id": "x", "name": "x"}
    if column.startswith("customFields."):
        fields["custom_fields"] = {column.removeprefix("customFields."): value}
    else:
        fields[column] = value
    header, cells = list(csv.reader(io.StringIO(build_companies_csv(
        [HipeCompanyImportRow(**fields)]).decode("utf-8"), newline="")))  # fmt: skip
    return cells[header.index(column)] == value


@dataclass(frozen=True)
class ImportItem:
    """One company of a CSV import, and what the import cannot carry for it."""

    key: str
    row: HipeCompanyImportRow
    known: bool  # the ledger knows it: "updated", else "created"
    #: fields withheld from the CSV because it would alter them (a phone's leading ``+``):
    #: set by a PATCH by id right after the import
    follow_up: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the addresses HIPE can hold (a CSV row carries none: written after the import), and
    #: the digest of those the ledger says were written last (None: unknown)
    addresses: tuple[CompanyAddress, ...] = ()
    previous: str | None = None


class HipeSink:
    """Creates, patches, archives and unarchives HIPE companies; imports large loads.

    HIPE does not enforce unique ``externalId``: two concurrent creates would make a
    duplicate. The engine's per-record lock serialises events of one record, the ledger
    remembers HIPE's id after the first create, and a lookup by ``externalId`` (several
    hits = ambiguity, dead-lettered) guards the create when the ledger does not know it.

    In bulk (:mod:`delivery.batch`), active companies go through one CSV import of type 16
    (upsert by external id, rows in order, parents first), polled to its end while the
    records' locks are kept alive. Afterwards one changed-since listing teaches the ledger
    HIPE's ids, so later single updates PATCH by id. A field the CSV would alter (a phone
    starting with ``+`` gets the adapter's formula-neutralising ``'``) is left out of the
    file and PATCHed right after, with the addresses, a few companies at a time; companies
    HIPE archived take the single path (an import does not unarchive), as do deletions.
    """

    target = "hipe"
    #: parents (HIPE id -> external id) the view remembers from the pages it read
    parent_cache_size = PARENT_CACHE_SIZE

    def __init__(
        self,
        settings: HipeSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.overrides = overrides
        self.client = HipeClient(http, settings, error_overrides=overrides)
        self._custom_types: dict[str, str] = {}
        self._custom_types_at: float | None = None
        self.addresses = hipe_addresses.AddressWriter(self.client)

    @property
    def create_window_s(self) -> float:
        """How long a create may take to land: connecting, sending, waiting for the answer."""
        return self.settings.connect_timeout_s + 2 * self.settings.timeout_s

    def handles(self, entity: str) -> bool:
        return entity == "customer" and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        return event.operation == "upsert" and bool(event.payload.get("active", True))

    def company_input(
        self, event: ChangeEvent, parent_id: HipeId | None, *, with_parent: bool = True
    ) -> HipeCompanyInput:
        """The company body of an event: every mapped field, ``None`` where it has no value."""
        return self.body(event.payload, parent_id, with_parent=with_parent)

    def body(
        self, payload: Mapping[str, Any], parent_id: HipeId | None, *, with_parent: bool = True
    ) -> HipeCompanyInput:
        """The company body of a canonical record (``parentId`` left out without a parent)."""
        company = Company.model_validate(payload)
        mapping = self.mappings.get("customer", TargetMapping())
        fields: dict[str, object] = {
            "name": company.name,
            "external_id": company.key,
            "email": company.email,
            "phone": company.phone,
            "vat": company.tax_number,
        }
        if with_parent:
            fields["parent_id"] = parent_id
        for field, path in mapping.fields.items():
            fields[field] = resolve(payload, path)
        custom = self._typed(apply_custom(mapping, payload))
        if custom:
            fields["custom_fields"] = custom  # a None value removes the field in HIPE
        return HipeCompanyInput.model_validate(fields)

    def _typed(self, custom: dict[str, Any]) -> dict[str, Any]:
        """Source values are text: one mapped to a HIPE custom field of type ``number``
        goes as a JSON number (the guide's ``"myCustomFieldNumber": 10``). The types are
        read from ``GET /api/custom-field-nodes`` only when a value could be a number."""
        numbers = {k: as_number(v) for k, v in custom.items() if isinstance(v, str)}
        numbers = {k: n for k, n in numbers.items() if n is not None}
        if not numbers:
            return custom
        types = self.custom_field_types()
        return {k: numbers[k] if types.get(k) == "number" and k in numbers else v
                for k, v in custom.items()}  # fmt: skip

    def custom_field_types(self) -> dict[str, str]:
        """HIPE's custom field keys and types, read again every ``CUSTOM_TYPES_TTL_S``."""
        now = time.monotonic()
        if self._custom_types_at is None or now - self._custom_types_at > CUSTOM_TYPES_TTL_S:
            nodes = self.client.custom_field_nodes()
            self._custom_types = {n.key: n.type or "" for n in nodes if n.key}
            self._custom_types_at = now
        return self._custom_types

    def _parent_if_known(
        self, event: ChangeEvent, context: ApplyContext
    ) -> tuple[bool, HipeId | None]:
        """An inactive record's parent: ``(True, id)`` when HIPE has it, ``(True, None)``
        without a parent, ``(False, None)`` when the parent is not in HIPE (the company
        then keeps the parent it has: an inactive record does not wait for its parent)."""
        if not event.parent_key:
            return True, None
        parent = context.lookup(event.entity, event.parent_key)
        if parent is None or not parent.target_id:
            return False, None
        return True, hipe_id(parent.target_id)

    def _existing(self, key: str, context: ApplyContext) -> HipeCompany | None:
        if context.ledger is not None and context.ledger.target_id:
            found = self.client.get_company(hipe_id(context.ledger.target_id))
            if found is not None:
                return found
        return self.client.find_company(key)

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        existing = self._existing(event.key, context)
        if event.operation == "delete" or not event.payload.get("active", True):
            if existing is None and event.operation == "upsert":
                return self._create_archived(event, context)
            if existing is None:
                # gone from the source before HIPE ever had it: a deletion carries no
                # fields to create the company with, and nothing is there to archive
                return ApplyResult("deleted", deleted=True)
            try:
                if event.operation == "upsert":
                    # an archived company's fields still follow the ERP's (equality holds
                    # for every record, and a reactivation finds them current)
                    known, known_parent = self._parent_if_known(event, context)
                    body = self.company_input(event, known_parent, with_parent=known)
                    self.client.update_company(existing.id, body)
                if not existing.archived:
                    self.client.archive_company(existing.id)
            except RecordMissingError:
                return ApplyResult("deleted", deleted=True)
            return ApplyResult("archived", target_id=str(existing.id), deleted=True)

        parent_id = None
        if context.parent is not None:
            if not context.parent.target_id:
                # The parent's ledger names no HIPE company (it was deleted in the source
                # before it was ever created here): HIPE links by id, so the child waits.
                raise missing_parent(event, self.target)
            parent_id = hipe_id(context.parent.target_id)
        body = self.company_input(event, parent_id)
        addresses = self._addresses(event.key, event.payload)
        previous = None
        if context.ledger is not None and not context.forced:
            previous = hipe_addresses.previous_digest(context.ledger.extra)
        extra = hipe_addresses.ledger_extra(addresses)
        if existing is None:
            # HIPE keeps no unique externalId: a create sent by a worker that died or was
            # cut off may land after this look-up; wait until it no longer can.
            with context.create_in_doubt(self.create_window_s):
                created = self.client.create_company(body)
            self.addresses.write(created.id, addresses, None, created=True)
            return ApplyResult("created", target_id=str(created.id), extra=extra)
        action = "updated"
        if existing.archived:
            self.client.unarchive_company(existing.id)
            action = "unarchived"
        updated = self.client.update_company(existing.id, body)
        self.addresses.write(updated.id, addresses, previous, created=False)
        return ApplyResult(action, target_id=str(updated.id), extra=extra)  # type: ignore[arg-type]

    def _addresses(self, key: str, payload: Mapping[str, Any]) -> tuple[CompanyAddress, ...]:
        """The addresses HIPE can hold (the others named in a warning)."""
        kept, dropped = split(Company.model_validate(payload).addresses, hipe_addresses.REQUIRED)
        warn_incomplete(self.target, key, dropped, hipe_addresses.REQUIRED)
        return kept

    def _create_archived(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        """An inactive record HIPE does not have yet: created with its fields, then archived.

        HIPE mirrors every ERP customer, inactive ones as archived companies. Recording the
        deactivation without a write would also make the record's earlier changes stale:
        a creation still waiting (for its parent, a retry) would be skipped when it comes
        back, and HIPE would never get the company. Like a creation, it waits for its
        parent (HIPE links by id; nothing later would attach it).
        """
        known, parent_id = self._parent_if_known(event, context)
        if not known:
            raise missing_parent(event, self.target)
        body = self.company_input(event, parent_id)
        with context.create_in_doubt(self.create_window_s):
            created = self.client.create_company(body)
        self.client.archive_company(created.id)
        return ApplyResult("archived", target_id=str(created.id), deleted=True)

    # -- views for reconcile -------------------------------------------------------------
    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What HIPE should show for a canonical record, from the body the sink sends."""
        values = self.body(payload, None).model_dump(by_alias=False, exclude_unset=True)
        fields: dict[str, Any] = {
            name: values[attr] for attr, name in VIEW_FIELDS.items() if attr in values
        }
        fields["parent_key"] = payload.get("parent_key")
        fields["active"] = bool(payload.get("active", True))
        kept, _ = split(Company.model_validate(payload).addresses, hipe_addresses.REQUIRED)
        fields["addresses"] = hipe_addresses.expected(kept)
        for key, value in (values.get("custom_fields") or {}).items():
            fields[f"custom.{key}"] = value
        return view(fields)

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every HIPE company with an external id, page by page (duplicates each apart).

        ``parent_key`` is the parent's external id: parents are remembered from the pages
        read (a bounded cache) and those not seen are fetched with one search a page.
        """
        mapping = self.mappings.get(entity, TargetMapping())
        written = [a for a in VIEW_FIELDS if a in _ALWAYS_WRITTEN or a in mapping.fields]
        parents: OrderedDict[HipeId, str] = OrderedDict()

        def remember(company: HipeCompany) -> None:
            parents[company.id] = company.external_id or f"(HIPE company {company.id})"
            parents.move_to_end(company.id)
            if len(parents) > self.parent_cache_size:
                parents.popitem(last=False)

        for page in self.client.iter_company_pages():
            for company in page:
                remember(company)
            needed = {c.parent_id for c in page if c.parent_id is not None}
            # this page's parents held apart: remembering the ones fetched may evict others
            named = {pid: parents[pid] for pid in needed if pid in parents}
            for parent in self.client.companies_by_ids(needed - named.keys()):
                remember(parent)
                named[parent.id] = parents[parent.id]
            for company in page:
                if not company.external_id:
                    continue
                fields: dict[str, Any] = {VIEW_FIELDS[a]: getattr(company, a) for a in written}
                if company.parent_id is None:
                    fields["parent_key"] = None
                else:
                    fields["parent_key"] = named.get(
                        company.parent_id, f"(HIPE company {company.parent_id}, not found)"
                    )
                fields["active"] = not company.archived
                fields["addresses"] = self.addresses.observed(company.id)
                for key in mapping.custom_fields:
                    fields[f"custom.{key}"] = company.custom_fields.get(key)
                yield Observed(company.external_id, str(company.id), view(fields))

    def known_limits(self, entity: str) -> list[str]:
        """HIPE's documented API writes and clears every field the sink sends."""
        return []

    # -- bulk: CSV import ---------------------------------------------------------------
    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> ImportItem | None:
        """The import row of an active company; None when the single path must apply it."""
        if event.operation == "delete" or not event.payload.get("active", True):
            return None
        if context.ledger is not None and context.ledger.deleted:
            return None  # archived in HIPE: the single path unarchives it
        if context.parent is not None and not context.parent.target_id:
            raise missing_parent(event, self.target)  # as apply: the parent is not in HIPE
        body = self.company_input(event, None)
        if not body.name or not survives_csv("name", body.name):
            return None  # the single path refuses or sends it unaltered through JSON
        values = body.model_dump(exclude_unset=True)  # by alias: HIPE's names
        custom = values.get("customFields") or {}
        if any(
            not isinstance(v, str | int | float | bool | None)
            or (isinstance(v, str) and not survives_csv(f"customFields.{k}", v))
            for k, v in custom.items()
        ):
            return None  # lists and formula-like text: JSON carries them faithfully
        row: dict[str, Any] = {
            "external_id": event.key,
            "name": body.name,
            # "" empties the parent, as the single path's ``parentId: null`` does
            "parent_external_id": event.parent_key or "",
            "custom_fields": custom,
        }
        follow_up: dict[str, Any] = {}
        for name in _ROW_TEXT_FIELDS:
            if name not in values:
                continue  # not mapped: the column stays out and HIPE keeps its value
            value = values[name]
            if isinstance(value, str) and not survives_csv(name, value):
                follow_up[name] = value
                row[name] = ""
            else:
                row[name] = "" if value is None else value
        known = context.ledger is not None
        previous = None
        if context.ledger is not None and not context.forced:
            previous = hipe_addresses.previous_digest(context.ledger.extra)
        addresses = self._addresses(event.key, event.payload)
        return ImportItem(
            event.key, HipeCompanyImportRow(**row), known, follow_up, addresses, previous
        )

    def apply_bulk(
        self, items: Sequence[ImportItem], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        """One CSV import; row errors to their items; ids learned; withheld fields PATCHed."""

        def sleep(seconds: float) -> None:
            keepalive()
            time.sleep(seconds)

        importer = HipeClient(self.http, self.settings, error_overrides=self.overrides, sleep=sleep)
        since = datetime.now(UTC) - timedelta(seconds=IMPORT_LISTING_MARGIN_S)
        started = time.perf_counter()
        outcome = importer.import_companies([item.row for item in items])
        imported = time.perf_counter()
        keepalive()
        results: list[BulkItemResult | None] = [None] * len(items)
        for row_error in outcome.errors:
            if 1 <= row_error.row <= len(items):
                results[row_error.row - 1] = importer.import_row_error(row_error)
        ids, created = self._imported_ids(
            {item.key for item, r in zip(items, results, strict=True) if r is None}, since, sleep
        )
        listed = time.perf_counter()
        # each company's id, withheld fields and addresses: a few at a time, the target's
        # rate limit the bound (one after the other, the pace is one over the round trip)
        pending = [index for index, result in enumerate(results) if result is None]
        finished = follow_ups.run_all(
            [
                partial(self._finish, items[i], ids.get(items[i].key), created, since)
                for i in pending
            ],
            keepalive,
        )
        for index, result in zip(pending, finished, strict=True):
            results[index] = result
        log.info(
            "sync.import_done",
            import_id=outcome.import_id,
            rows=len(items),
            row_errors=len(outcome.errors),
            follow_ups=sum(1 for item in items if item.follow_up),
            import_s=round(imported - started, 3),
            listing_s=round(listed - imported, 3),
            follow_up_s=round(time.perf_counter() - listed, 3),
        )
        return [r for r in results if r is not None]

    def _imported_ids(
        self, keys: set[str], since: datetime, sleep: Callable[[float], None]
    ) -> tuple[dict[str, list[HipeId]], set[HipeId]]:
        """HIPE's ids of the imported companies, from one changed-since listing, and those
        of them created since then (their addresses need no listing: they have none).

        The listing pages by ``updatedAt``; companies other workers write meanwhile move to
        its end, so a page may shift and a company be missed, or the adapter may refuse a
        page it saw twice. A listing refused for the rate (429 with ``Retry-After``) starts
        again once that is over (a few times): cut, it would cost a look-up per company
        and an address listing per new one. Whatever it did not find is looked up one by one.
        """
        found: dict[str, list[HipeId]] = {}
        created: set[HipeId] = set()
        if not keys:
            return found, created
        for attempt in range(1, LISTING_ATTEMPTS + 1):
            try:
                for company in self.client.iter_companies_changed_since(since):
                    if company.external_id in keys:
                        ids = found.setdefault(company.external_id, [])
                        if company.id not in ids:
                            ids.append(company.id)
                        if _created_since(company, since):
                            created.add(company.id)
            except SyncError as error:
                wait = error.retry_after_s
                if attempt < LISTING_ATTEMPTS and isinstance(error, TransientError) and wait:
                    log.info("sync.import_listing_retried", error=str(error), delay_s=wait)
                    sleep(min(wait, LISTING_RETRY_MAX_S))
                    continue
                log.info("sync.import_listing_cut", error=str(error), found=len(found))
            break
        return found, created

    def _finish(
        self, item: ImportItem, ids: list[HipeId] | None, created: set[HipeId], since: datetime
    ) -> BulkItemResult:
        """The item's result: its id (looked up alone if the listing missed it), follow-up."""
        try:
            if ids is None:
                company = self.client.find_company(item.key)
                if company is None:
                    raise RecordMissingError(
                        f"hipe import reported {item.key} applied, but it is not found",
                        system="hipe",
                        operation="import_companies",
                        hint="retried on the single path",
                    )
                ids = [company.id]
                if _created_since(company, since):
                    created = {*created, company.id}
            if len(ids) > 1:
                raise AmbiguousMatchError(
                    f"hipe has {len(ids)} companies with externalId {item.key}",
                    system="hipe",
                    operation="import_companies",
                    vendor_code="ambiguous-external-id",
                    hint="archive or merge the duplicates in HIPE, then replay",
                )
            company_id = ids[0]
            if item.follow_up:
                self.client.update_company(company_id, HipeCompanyInput(**item.follow_up))
            new = not item.known and company_id in created
            self.addresses.write(company_id, item.addresses, item.previous, created=new)
        except SyncError as error:
            return error
        extra = hipe_addresses.ledger_extra(item.addresses)
        if item.known:
            return ApplyResult("updated", target_id=str(company_id), extra=extra)
        return ApplyResult("created", target_id=str(company_id), extra=extra)

    def close(self) -> None:
        self.http.close()
