"""ERP customers → Propeller companies, by ``sourceId`` + ``source`` + ``language``.

**Equality, field by field.** Every change writes every field the mapping sends, a value
the source removed included: a cleared text field is sent as ``""``, a cleared enum field
as its documented default (:meth:`PropellerCompanyInput.writing`). A parent is attached and
moved with ``parent: {sourceId, source}``; detaching is not documented at all (the field
table knows only an object naming the parent), so the sink sends ``parent: null`` in a call
of its own and, when a Propeller refuses it (10007), logs ``propeller.detach_refused`` and
goes on: the one known limit of this target (:meth:`PropellerSink.known_limits`).

**Lifecycle that can be undone.** A deactivated customer keeps its company, marked by a
company attribute (``inactive_attribute``, default ``ERPSYNC_INACTIVE``: ``Y`` inactive,
``N`` active again). Why an attribute:

* ``DELETE`` sends the company to the recycle bin, from which only the backoffice restores
  it; every later write by the same ``sourceId`` answers 40008, for ever;
* a parent usergroup for inactive companies would move the company out of its place in the
  tree (its real parent, the pricing and addresses it inherits) and mix the lifecycle into
  ``parent``, which must mirror the ERP's parent; reactivating would need the move back;
* an attribute changes nothing else, is documented in bulk company items (doc 002: "Company
  bulk endpoints support bulk change of attributes"), so a load carries it in the same call,
  and writing it again undoes it, any number of times.

The single path writes the marker with a one-item ``bulk/sourceId`` call (lookup key and
``attributes`` only, ``skipCreate``) when it must change; the bulk path puts it in every
item. A customer *deleted* in the source is marked inactive too, unless the operator sets
``on_source_delete = "delete"``: then, and only then, its company goes to the recycle bin.

**E-mail and phone in bulk: two readings of the docs** (``bulk_contact_fields``). The
endpoint reference's field list leaves ``email`` and ``phone`` out of bulk items (and
Propeller refuses an undocumented key with 10007); the integration guide's bulk example
names ``email`` in ``skipIfNotEmpty`` on a bulk company payload, i.e. takes it as a bulk
field (VENDORS §2.7).

* ``inline``: the items carry both; a load costs one call per batch.
* ``patch``: the items carry documented fields only; e-mail and phone reach the company by a
  ``PATCH`` of those two fields after the bulk call, for the records whose e-mail or phone
  needs writing (a new company with one of them, or values that differ from the ones last
  written, known from the ledger): about one call per record on such data.
* ``auto`` (default): inline, until a bulk call is refused whole with 10007 naming
  ``email`` or ``phone`` as an extraneous key; then the sink logs
  ``propeller.bulk_fields_refused`` once, sends that same batch again the ``patch`` way
  (nothing lost, nothing dead-lettered: one refused call) and keeps ``patch`` for the rest
  of the process.

What the sink last wrote that the API cannot tell it cheaply (the marker, the parent, a
digest of e-mail and phone) rides in the ledger's ``extra``; when it is unknown (a first
write, a ledger from before, a write interrupted, a reconcile's forced repair), the sink
writes everything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import structlog

from adapters.propeller import (
    BulkOutcome,
    PropellerAttributeValue,
    PropellerClient,
    PropellerCompany,
    PropellerCompanyInput,
)
from adapters.propeller.models import NOT_IN_BULK, PropellerCompanyRef, python_name
from delivery.batch import BulkItemResult
from delivery.engine import Action, ApplyContext, ApplyResult
from delivery.sinks import follow_ups
from delivery.sinks import propeller_addresses as addresses
from delivery.sinks.addresses import canonical, digest, split, warn_incomplete
from delivery.sinks.propeller_written import Written, digest_contact
from delivery.sinks.view import Observed, View, view
from erpsync.errors import (
    ErrorClass,
    PermanentError,
    RecordExistsError,
    RecordMissingError,
    SyncError,
)
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping, resolve
from erpsync.models import Company, CompanyAddress
from erpsync.settings import PropellerSettings

log = structlog.get_logger("erpsync.worker")

#: view field of each company field the sink always writes; mapped extras are ``custom.<json>``
BASE_VIEW = {"name": "name", "email": "email", "phone": "phone", "tax_number": "tax_number"}
#: what a company read must carry for its view; the documented search leaves these out
READ_FIELDS = frozenset({"email", "phone", "parent", "attributes"})
#: companies' sourceIds remembered while paging, to name parents without a read (bounded,
#: least recently used first out: a few MB, whatever the tenant's size)
PARENT_CACHE_SIZE = 50_000


@dataclass(frozen=True)
class Row:
    """A canonical customer as the sink writes it: every mapped field, ``None`` = clear."""

    key: str
    values: dict[str, Any]
    parent_key: str | None
    active: bool
    #: the addresses Propeller can hold, and the codes of those it cannot (incomplete)
    addresses: tuple[CompanyAddress, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def contact(self) -> str:
        return digest_contact(self.values.get("email"), self.values.get("phone"))

    @property
    def address_digest(self) -> str:
        return digest(canonical(self.addresses))

    def written(self) -> Written:
        """What writing this row leaves in Propeller, for the ledger."""
        return Written(
            not self.active,
            self.parent_key,
            self.contact,
            self.address_digest,
            tuple(a.code for a in self.addresses),
        )


@dataclass(frozen=True)
class BulkItem:
    """One company of a bulk call, and what follows it (e-mail, phone, a detach); its body
    is built when sent, with or without e-mail and phone (:attr:`PropellerSink.inline`)."""

    row: Row
    previous: Written | None


class PropellerSink:
    """Upserts Propeller companies (single calls or bulk), marks inactive ones reversibly."""

    target = "propeller"

    def __init__(
        self,
        settings: PropellerSettings,
        http: httpx.Client,
        mappings: Mapping[str, TargetMapping],
        overrides: Mapping[str, ErrorClass] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.mappings = mappings
        self.client = PropellerClient(http, settings, error_overrides=overrides)
        #: whether bulk items carry e-mail and phone now (``auto`` starts inline)
        self.inline = settings.bulk_contact_fields != "patch"
        self._switch = threading.Lock()

    def handles(self, entity: str) -> bool:
        return entity == "customer" and entity in self.mappings

    def needs_parent(self, event: ChangeEvent) -> bool:
        # An inactive company keeps its parent too: it mirrors the whole record.
        return event.operation == "upsert"

    # ------------------------------------------------------------------ mapping

    def row(self, payload: Mapping[str, Any]) -> Row:
        """Every field the mapping sends for a canonical customer (raises ValidationError)."""
        company = Company.model_validate(payload)
        mapping = self.mappings.get("customer", TargetMapping())
        values: dict[str, Any] = {
            "name": company.name,
            "tax_number": company.tax_number,
            "email": company.email,
            "phone": company.phone,
        }
        for field, path in mapping.fields.items():
            values[python_name(field)] = resolve(payload, path)
        kept, dropped = split(company.addresses, addresses.REQUIRED)
        return Row(company.key, values, company.parent_key, company.active, kept, dropped)

    def marker(self, active: bool) -> PropellerAttributeValue:
        """The lifecycle attribute: ``N`` for an active company, ``Y`` for an inactive one."""
        return PropellerAttributeValue(
            name=self.settings.inactive_attribute, value="N" if active else "Y"
        )

    def company_input(
        self, row: Row, *, bulk: bool = False, inline: bool = False
    ) -> PropellerCompanyInput:
        """The company body: every mapped field (clears included), the parent if any; in
        bulk, with the lifecycle marker, and without e-mail and phone unless ``inline``."""
        drop = bulk and not inline
        values = {k: v for k, v in row.values.items() if not (drop and k in NOT_IN_BULK)}
        values.update(
            source_id=row.key, source=self.settings.source, language=self.settings.language
        )
        if row.parent_key:
            values["parent"] = PropellerCompanyRef(
                source_id=row.parent_key, source=self.settings.source
            )
        if bulk:
            values["attributes"] = [self.marker(row.active)]
            if row.addresses:
                values["addresses"] = addresses.inputs(row.addresses)
        return PropellerCompanyInput.writing(values)

    # ------------------------------------------------------------- single path

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        if event.operation == "delete":
            return self._deleted(event, context)
        row = self.row(event.payload)
        previous = None if context.forced else Written.of(context.ledger)
        body = self.company_input(row)
        company: PropellerCompany
        known = context.ledger is not None and not context.ledger.deleted
        if not known and row.addresses:
            return self._one_item_bulk(row)
        created = False
        if known:
            try:
                company = self.client.update_company(row.key, body)
            except RecordMissingError:
                company, created = self.client.create_company(body), True
        else:
            try:
                company, created = self.client.create_company(body), True
            except RecordExistsError:
                company = self.client.update_company(row.key, body)
        if not created:
            self._detach_if_needed(row, previous)
        self._write_addresses(row, previous, created=created)
        action: Action = "created" if created else "updated"
        if (created and not row.active) or (not created and _marker_stale(row, previous)):
            self.client.set_attributes(row.key, [self.marker(row.active)])
            if not row.active:
                action = "archived"
            elif previous is not None:
                action = "unarchived"
        return ApplyResult(action, target_id=str(company.id), extra=row.written().extra())

    def _one_item_bulk(self, row: Row) -> ApplyResult:
        """A company the ledger does not know, with addresses: one bulk upsert carries it,
        its addresses and its marker (create or update by ``sourceId``: one call, where
        create then the address call would be two, each a chance to fail and start over),
        with what follows a bulk item (e-mail and phone, a detach, addresses gone)."""
        (result,) = self.apply_bulk([BulkItem(row, None)], lambda: None)
        if not isinstance(result, ApplyResult):
            raise result
        return result

    def _deleted(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        """A customer deleted in the source: marked inactive, or binned if configured."""
        if self.settings.on_source_delete == "delete":
            with contextlib.suppress(RecordMissingError):  # already gone: the goal is reached
                self.client.delete_company(event.key)
            return ApplyResult("deleted", deleted=True)
        if not self.client.set_attributes(event.key, [self.marker(False)]):
            return ApplyResult("unchanged", deleted=True)  # never synced, or binned by hand
        previous = None if context.forced else Written.of(context.ledger)
        extra = None
        if previous is not None:
            extra = dataclasses.replace(previous, inactive=True).extra()
        return ApplyResult("archived", extra=extra)

    def _write_addresses(self, row: Row, previous: Written | None, *, created: bool) -> None:
        """The single path's addresses: written when they differ from the ledger's (or it
        cannot say), the ones gone deleted."""
        warn_incomplete(self.target, row.key, row.dropped, addresses.REQUIRED)
        if previous is not None and previous.addresses == row.address_digest:
            return
        codes = None if previous is None else previous.codes
        addresses.write(self.client, row.key, row.addresses, codes, created=created)

    def _detach_if_needed(self, row: Row, previous: Written | None) -> None:
        """Detach a company whose parent the source removed (or may have: unknown)."""
        if not _detach_due(row, previous):
            return
        try:
            self.client.detach_parent(row.key)
        except PermanentError as error:
            if error.vendor_code != "10007":
                raise
            log.warning(
                "propeller.detach_refused",
                key=row.key,
                hint="this Propeller refuses parent null; detaching a parent is not "
                "documented: move the company in the backoffice",
            )

    # ---------------------------------------------------------------- bulk path

    def bulk_item(self, event: ChangeEvent, context: ApplyContext) -> BulkItem | None:
        """The bulk item of an upsert (active or not); None for a deletion (single path)."""
        if event.operation == "delete":
            return None
        row = self.row(event.payload)
        warn_incomplete(self.target, row.key, row.dropped, addresses.REQUIRED)
        return BulkItem(row, Written.of(context.ledger))

    def apply_bulk(
        self, items: Sequence[BulkItem], keepalive: Callable[[], None]
    ) -> list[BulkItemResult]:
        """One bulk upsert, then per record what the items did not carry (e-mail and phone
        when they need writing, a detach), a few at a time; each item's outcome or error.

        ``auto``: a call refused because the items carry e-mail or phone is sent again
        without them, here (one refused call, not a batch of single calls)."""
        inline = self.inline
        try:
            outcomes = self._upsert(items, inline=inline)
        except PermanentError as refusal:
            if not (inline and self.settings.bulk_contact_fields == "auto"):
                raise
            refused = _refused_contact_fields(refusal)
            if not refused:
                raise
            self._fall_back_to_patch(refused)
            inline = False
            outcomes = self._upsert(items, inline=False)
        applied = [
            (index, item, outcome.action == "create", outcome.id)
            for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True))
            if outcome.error is None
        ]
        failed = self._follow_ups(
            [(index, item, created) for index, item, created, _ in applied],
            keepalive,
            inline=inline,
        )
        by_index: dict[int, BulkItemResult] = {
            i: o.error for i, o in enumerate(outcomes) if o.error is not None
        }
        for index, item, created, company_id in applied:
            error = failed.get(index)
            by_index[index] = (
                error if error is not None else self._bulk_result(item, created, company_id)
            )
        return [by_index[index] for index in range(len(items))]

    def _upsert(self, items: Sequence[BulkItem], *, inline: bool) -> list[BulkOutcome]:
        companies = [self.company_input(i.row, bulk=True, inline=inline) for i in items]
        return self.client.upsert_companies_bulk(companies, contact_inline=inline)

    def _fall_back_to_patch(self, refused: Sequence[str]) -> None:
        """``auto``: this Propeller follows the reference page; e-mail and phone by PATCH
        from now on in this process (the warning once, whichever thread sees it first)."""
        with self._switch:
            if not self.inline:
                return
            self.inline = False
        log.warning(
            "propeller.bulk_fields_refused",
            fields=list(refused),
            decision="bulk items carry documented fields only from now on; e-mail and "
            "phone follow by one PATCH per company that needs them (this batch resent so)",
            hint="set systems.propeller.bulk_contact_fields = 'patch' to skip the refused "
            "call at start-up",
        )

    def _bulk_result(self, item: BulkItem, created: bool, company_id: int | None) -> ApplyResult:
        row = item.row
        written = row.written()
        action: Action = "created" if created else "updated"
        if not row.active and (created or _marker_stale(row, item.previous)):
            action = "archived"
        elif row.active and item.previous is not None and item.previous.inactive:
            action = "unarchived"
        target_id = str(company_id) if company_id is not None else None
        return ApplyResult(action, target_id=target_id, extra=written.extra())

    def _follow_ups(
        self,
        applied: Sequence[tuple[int, BulkItem, bool]],
        keepalive: Callable[[], None],
        *,
        inline: bool,
    ) -> dict[int, SyncError]:
        """The follow-up calls of the applied items, a few at a time
        (:func:`delivery.sinks.follow_ups.run_all`); the records' locks kept alive
        meanwhile. Failures by index: the single path retries those records whole."""
        due = [
            (index, item, created)
            for index, item, created in applied
            if _due(item, created, inline=inline)
        ]
        outcomes = follow_ups.run_all(
            [partial(self._follow_up, item, created=created, inline=inline)
             for _, item, created in due],
            keepalive,
        )  # fmt: skip
        return {
            index: outcome
            for (index, _, _), outcome in zip(due, outcomes, strict=True)
            if isinstance(outcome, SyncError)
        }

    def _follow_up(self, item: BulkItem, *, created: bool, inline: bool) -> None:
        row, previous = item.row, item.previous
        if not inline and _contact_due(item, created):
            body = PropellerCompanyInput.writing(
                {
                    "source_id": row.key,
                    "email": row.values.get("email"),
                    "phone": row.values.get("phone"),
                }
            )
            self.client.update_company(row.key, body)
        if not created:
            self._detach_if_needed(row, previous)
        if _addresses_gone(item, created):
            addresses.delete_others(self.client, row.key, [a.code for a in row.addresses])

    # ------------------------------------------------------------ reconcile views

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        """What Propeller shows for a canonical customer, from the body the sink writes."""
        row = self.row(payload)
        written = self.company_input(row)
        fields: dict[str, Any] = {_view_name(name): getattr(written, name) for name in row.values}
        fields["parent_key"] = row.parent_key
        fields["active"] = row.active
        fields["addresses"] = addresses.expected(row.addresses)
        return view(fields)

    def observed(self, entity: str) -> Iterator[Observed]:
        """Every company carrying our ``source``, page by page (the search), one page held.

        A search result lacking a field of the view (the documented search lists neither
        e-mail, phone nor parent) is completed by a read of that company; a parent is named
        by its ``sourceId``, from the companies already paged or one read by id.
        """
        names = [name for name in self.row_fields() if name not in BASE_VIEW]
        parents = _ParentKeys(self.client, self.settings.source)
        language = self.settings.language.upper()
        for company in self.client.search_companies(
            modified_from=None, expands=("sources", "attributes")
        ):
            key = company.source_id_for(self.settings.source)
            if key is None or (company.language or language).upper() != language:
                continue
            parents.remember(company.id, key)
            if not company.model_fields_set >= READ_FIELDS:
                full = self.client.get_company(key, expands=("sources", "attributes"))
                if full is None:
                    continue  # deleted since the page was read
                company = full
            fields: dict[str, Any] = {
                "name": company.name,
                "email": company.email,
                "phone": company.phone,
                "tax_number": company.tax_number,
                "parent_key": parents.key_of(company),
                "active": self._active(company),
                "addresses": addresses.observed(self.client, key),
            }
            for name in names:
                fields[_view_name(name)] = getattr(company, name, None)
            yield Observed(key=key, target_id=str(company.id), fields=view(fields))

    def known_limits(self, entity: str) -> list[str]:
        """``parent_key``: detaching a parent is not documented (``parent`` is an object
        naming the parent; nothing says how to leave one). The sink sends ``parent: null``,
        which the sandbox takes; a Propeller that refuses it keeps the old parent. Only the
        detach is undocumented: a target parent that differs from a source parent is drift.
        """
        return ["parent_key"]

    def row_fields(self) -> list[str]:
        """The python names of the company fields the mapping writes."""
        mapping = self.mappings.get("customer", TargetMapping())
        return [
            *BASE_VIEW,
            *(python_name(f) for f in mapping.fields if python_name(f) not in BASE_VIEW),
        ]

    def _active(self, company: PropellerCompany) -> bool | None:
        if company.attributes is None:
            return None  # this Propeller did not return attributes: unknown
        return company.attribute(self.settings.inactive_attribute) != "Y"

    def close(self) -> None:
        self.http.close()


def _contact_due(item: BulkItem, created: bool) -> bool:
    """Whether a bulk item's e-mail and phone must follow by PATCH: a new company with
    either, an existing one whose values differ from those last written (or unknown)."""
    row, previous = item.row, item.previous
    if created:
        return row.values.get("email") is not None or row.values.get("phone") is not None
    return previous is None or previous.contact != row.contact


def _detach_due(row: Row, previous: Written | None) -> bool:
    """Whether an existing company must be detached: no parent now, one then (or unknown)."""
    return not row.parent_key and (previous is None or previous.parent is not None)


def _addresses_gone(item: BulkItem, created: bool) -> bool:
    """Whether a bulk item's company may hold addresses the source no longer has."""
    previous = item.previous
    codes = [a.code for a in item.row.addresses]
    return addresses.removal_due(
        codes, None if previous is None else previous.codes, created=created
    )


def _due(item: BulkItem, created: bool, *, inline: bool) -> bool:
    """Whether a bulk item needs a follow-up call at all."""
    if not created and _detach_due(item.row, item.previous):
        return True
    if _addresses_gone(item, created):
        return True
    return not inline and _contact_due(item, created)


#: a 10007 message naming e-mail or phone as a key bulk items may not carry
_EXTRANEOUS_CONTACT = re.compile(r"extraneous key \[(email|phone)\]")


def _refused_contact_fields(error: PermanentError) -> list[str]:
    """The contact fields a whole-call 10007 names as extraneous keys (none: another cause)."""
    if error.vendor_code != "10007":
        return []
    text = f"{error} {error.response_excerpt or ''}"
    return sorted(set(_EXTRANEOUS_CONTACT.findall(text)))


def _marker_stale(row: Row, previous: Written | None) -> bool:
    """Whether an existing company's lifecycle marker must be written."""
    return previous is None or previous.inactive == row.active


def _view_name(field: str) -> str:
    """The view field of a company field: the base names, else ``custom.<json name>``."""
    if field in BASE_VIEW:
        return BASE_VIEW[field]
    alias = (
        PropellerCompanyInput.model_fields[field].alias
        if field in PropellerCompanyInput.model_fields
        else None
    )
    return f"custom.{alias or field}"


class _ParentKeys:
    """Propeller ids → our ``sourceId``s, bounded; a miss reads the parent by id."""

    def __init__(self, client: PropellerClient, source: str) -> None:
        self.client = client
        self.source = source
        self.known: OrderedDict[int, str | None] = OrderedDict()

    def remember(self, company_id: int, key: str | None) -> None:
        self.known[company_id] = key
        self.known.move_to_end(company_id)
        if len(self.known) > PARENT_CACHE_SIZE:
            self.known.popitem(last=False)

    def key_of(self, company: PropellerCompany) -> str | None:
        parent = company.parent
        if parent is None:
            return None
        if parent.source_id is not None and parent.source in (None, self.source):
            return parent.source_id
        if parent.id is None:
            return None
        if parent.id in self.known:
            self.known.move_to_end(parent.id)
        else:
            found = self.client.get_company_by_id(parent.id)
            self.remember(parent.id, found.source_id_for(self.source) if found else None)
        key = self.known[parent.id]
        # A parent erpsync did not write has no key of ours: name it so it shows as drift.
        return key if key is not None else f"propeller-id:{parent.id}"
