"""What a HIPE CSV import carries for a change, and what it leaves to the single path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from delivery.engine import ApplyContext
from delivery.sinks.hipe import HipeSink, ImportItem, survives_csv
from erpsync.errors import DependencyError
from erpsync.events import ChangeEvent
from erpsync.mapping import TargetMapping
from erpsync.settings import HipeSettings
from state.store import LedgerEntry


@pytest.fixture
def sink() -> Iterator[HipeSink]:
    settings = HipeSettings(base_url="http://127.0.0.1:9", access_token=SecretStr("t"))
    # bulk_item only maps: any call would fail loudly on this transport
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    mapped = HipeSink(settings, http, {"customer": TargetMapping()})
    yield mapped
    mapped.close()


def event(key: str = "C1", **payload: Any) -> ChangeEvent:
    body: dict[str, Any] = {"key": key, "name": "Acme & Fils", "phone": "514 555 0000"}
    body["active"] = True
    body.update(payload)
    return ChangeEvent.create(
        flow="customers",
        source="onlineerp",
        entity="customer",
        key=key,
        operation="upsert",
        payload=body,
        source_version=1,
        parent_key=body.get("parent_key"),
    )


def context(ledger: LedgerEntry | None = None, parent: LedgerEntry | None = None) -> ApplyContext:
    return ApplyContext(ledger=ledger, parent=parent, lookup=lambda entity, key: None)


def item(sink: HipeSink, ev: ChangeEvent, ctx: ApplyContext | None = None) -> ImportItem:
    found = sink.bulk_item(ev, ctx or context())
    assert found is not None
    return found


def test_formula_like_cells_are_detected_through_the_adapters_csv() -> None:
    assert survives_csv("phone", "514 555 0000")
    assert not survives_csv("phone", "+1 514 555 0000"), "the adapter prefixes a quote"
    assert survives_csv("name", 'Boîtes "Co", 100%')
    assert not survives_csv("name", "=HYPERLINK(1)")


def test_a_row_carries_the_record_and_its_parent_by_external_id(sink: HipeSink) -> None:
    found = item(sink, event("C2", parent_key="C1", email="a@b.c"))
    assert (found.row.external_id, found.row.name) == ("C2", "Acme & Fils")
    assert found.row.parent_external_id == "C1"
    assert (found.row.email, found.row.phone) == ("a@b.c", "514 555 0000")
    assert found.follow_up == {}
    assert found.known is False
    root = item(sink, event("C1"), context(ledger=LedgerEntry("f", 1, target_id="7")))
    assert root.row.parent_external_id == "", "an empty cell clears the parent, as PATCH does"
    assert root.known is True


def test_a_phone_the_csv_would_alter_is_left_out_and_patched_after(sink: HipeSink) -> None:
    found = item(sink, event(phone="+1 514 555 0000"))
    assert found.row.phone == ""
    assert found.follow_up == {"phone": "+1 514 555 0000"}


def test_what_an_import_cannot_do_takes_the_single_path(sink: HipeSink) -> None:
    assert sink.bulk_item(event(active=False), context()) is None, "archive"
    archived = LedgerEntry("f", 1, target_id="7", deleted=True)
    assert sink.bulk_item(event(), context(ledger=archived)) is None, "unarchive"
    assert sink.bulk_item(event(name="=1+2"), context()) is None, "a formula-like name"


def test_a_row_carries_the_mapped_custom_fields(sink: HipeSink) -> None:
    mapping = TargetMapping(custom_fields={"segment": "custom.segment", "erpNote": "custom.note"})
    sink.mappings = {"customer": mapping}
    found = item(sink, event(custom={"segment": "retail", "note": "Livrer le matin"}))
    assert found.row.custom_fields == {"segment": "retail", "erpNote": "Livrer le matin"}
    formula = event(custom={"segment": "retail", "note": "-5 % remise"})
    assert sink.bulk_item(formula, context()) is None, "a formula-like custom value: JSON"


def test_a_parent_hipe_never_received_makes_the_child_wait(sink: HipeSink) -> None:
    never_created = LedgerEntry("f", 1, target_id=None, deleted=True)
    with pytest.raises(DependencyError):
        sink.bulk_item(event("C2", parent_key="C1"), context(parent=never_created))
