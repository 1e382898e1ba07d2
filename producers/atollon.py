"""Atollon billing stream: activities with items ToBeInvoiced, one invoice record per activity.

Billing is Atollon's work queue, so change detection is state-based: every poll lists the
items in state ``ToBeInvoiced`` (``GET billing``), groups them per activity (and per
customer and currency, which one invoice cannot mix; per kind of item when the flow keeps
time sheets apart), and maps each group onto a canonical :class:`~erpsync.models.Invoice`.
An activity's customer is its ``customerContact``, else its ``contact``
(:func:`customer_key`). The snapshot base then does the rest: a new or changed
group is an upsert, and an activity that left the list (its items were billed, cancelled or
postponed) is a ``delete``, which the billing sink treats as nothing to do.

The invoice's ``reference`` is derived from the activity and its billing item ids
(:func:`erpsync.billing.billing_reference`, shared with the saga): the same work
always gives the same reference, which lets the ERP refuse a second invoice for it
(``If-None-Match: *``).

Records are mapped without validation: an activity whose customer has no ERP key still
becomes an event, and the sink dead-letters it as invalid source data with a hint, while
the other activities flow on.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.atollon import (
    AtollonBillingActivity,
    AtollonBillingItem,
    AtollonClient,
    BillingType,
    parse_datetime,
)
from erpsync.billing import billing_reference
from producers.base import SnapshotStream, SourceRecord


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text or None


def _line(item: AtollonBillingItem, erp_system: str) -> dict[str, Any]:
    """One item as a canonical invoice line: a product line when the product has an ERP key."""
    description = (
        _text(item.name)
        or _text(item.product_name)
        or _text(item.description)
        or f"Atollon billing item {item.id}"
    )
    return {
        "product_key": item.product_external_id_for(erp_system),
        "description": description,
        # Missing amounts stay missing: the sink refuses the invoice rather than bill 0.
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "vat_rate": item.vat_value,
        "source_item_id": item.id,
    }


def _invoice_date(activity: AtollonBillingActivity, items: Sequence[AtollonBillingItem]) -> str:
    """The latest billing date of the items (else the activity's dates), as an ISO date."""
    dates = [d for d in (item.billing_datetime for item in items) if d is not None]
    if dates:
        return max(dates).date().isoformat()
    for text in (activity.activity.modified, activity.activity.created):
        when = parse_datetime(text)
        if when is not None:
            return when.date().isoformat()
    return ""


def invoice_payload(
    entry: AtollonBillingActivity,
    items: Sequence[AtollonBillingItem],
    *,
    customer_key: str | None,
    currency: str | None,
    erp_system: str,
    today: Callable[[], dt.date],
) -> dict[str, Any]:
    """Some items of one activity as a canonical invoice (a dict; validated by the sink)."""
    activity = entry.activity
    ordered = sorted(items, key=lambda item: item.id)
    item_ids = [item.id for item in ordered]
    label = " ".join(p for p in (_text(activity.ref_id), _text(activity.name)) if p)
    date = _invoice_date(entry, ordered) or today().isoformat()
    return {
        "reference": billing_reference(activity.id, item_ids),
        "customer_key": customer_key,
        "description": f"Atollon {label or activity.id}",
        "date": date,
        "currency": currency,
        "lines": [_line(item, erp_system) for item in ordered],
        "activity_id": activity.id,
        "project_id": entry.project.id if entry.project is not None else None,
        "billing_item_ids": item_ids,
    }


@dataclass
class _Group:
    entry: AtollonBillingActivity
    items: dict[str, AtollonBillingItem] = field(default_factory=dict)


#: ``time_sheets`` (the billing flow's ``mapping.onlineerp.fields.time_sheets``): time-sheet
#: items (billing type 2) on the same invoice as the activity's other items, or on their own
TIME_SHEETS_TOGETHER = "together"
TIME_SHEETS_APART = "apart"
TIME_SHEETS_CHOICES = (TIME_SHEETS_TOGETHER, TIME_SHEETS_APART)
TIME_SHEETS_OPTION = "time_sheets"
#: the last part of the key of an activity's time-sheet invoice when they are kept apart
TIME_SHEETS_PART = "timesheets"


def time_sheets_option(mapping: Mapping[str, Mapping[str, Any]]) -> str:
    """The billing flow's ``mapping.onlineerp.fields.time_sheets`` (default: together)."""
    fields = (mapping.get("onlineerp") or {}).get("fields") or {}
    value = fields.get(TIME_SHEETS_OPTION, TIME_SHEETS_TOGETHER)
    return str(value)


def customer_key(entry: AtollonBillingActivity, erp_system: str) -> str | None:
    """The ERP customer of an activity: its ``customerContact``'s ERP key, else its
    ``contact``'s (the export carries both; either may be absent or lack our key)."""
    for contact in (entry.customer_contact, entry.contact):
        found = contact.external_id_for(erp_system) if contact is not None else None
        if found:
            return found
    return None


def _kind(item: AtollonBillingItem, time_sheets: str) -> str:
    if time_sheets == TIME_SHEETS_APART and item.billing_type == BillingType.TIME_SHEET_ITEMS:
        return TIME_SHEETS_PART
    return ""


def billing_records(
    activities: Sequence[AtollonBillingActivity],
    erp_system: str,
    *,
    time_sheets: str = TIME_SHEETS_TOGETHER,
    today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
) -> list[SourceRecord]:
    """One record per activity (per customer and currency, when an activity mixes them, and
    per kind of item when time sheets are kept apart).

    The key is the activity id; only an activity split in several groups gets keys
    ``<activity>/<customer>/<currency>`` (``/timesheets`` added for its time-sheet items
    kept apart). An item listed twice counts once.
    """
    if time_sheets not in TIME_SHEETS_CHOICES:
        raise ValueError(f"time_sheets must be one of {', '.join(TIME_SHEETS_CHOICES)}")
    groups: dict[tuple[str, str, str, str], _Group] = {}
    for entry in activities:
        customer = customer_key(entry, erp_system) or ""
        for item in entry.billing_items:
            currency = _text(item.currency) or ""
            kind = _kind(item, time_sheets)
            group = groups.setdefault((entry.activity.id, customer, currency, kind), _Group(entry))
            group.items.setdefault(item.id, item)
    per_activity = Counter(activity for activity, _, _, _ in groups)
    records = []
    for (activity_id, customer, currency, kind), group in sorted(groups.items()):
        key = (
            activity_id
            if per_activity[activity_id] == 1
            else "/".join(
                [activity_id, customer or "-", currency or "-", *([kind] if kind else [])]
            )
        )
        payload = invoice_payload(
            group.entry,
            list(group.items.values()),
            customer_key=customer or None,
            currency=currency or None,
            erp_system=erp_system,
            today=today,
        )
        records.append(SourceRecord(key, payload))
    return records


@dataclass
class AtollonBilling(SnapshotStream):
    """Atollon billing items ``ToBeInvoiced``, as one invoice record per activity."""

    client: AtollonClient = field(kw_only=True)
    time_sheets: str = field(default=TIME_SHEETS_TOGETHER, kw_only=True)

    def pages(self) -> Iterator[list[SourceRecord]]:
        # The crawler answers the whole work queue at once: one page.
        yield billing_records(
            self.client.list_billing(), self.client.erp_system, time_sheets=self.time_sheets
        )
