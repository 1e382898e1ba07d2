"""Fingerprints: stable across releases, computed once per change.

The snapshot and every target's ledger hold fingerprints written by earlier releases; a
fingerprint that changed for the same content would make the next poll resend every
record. The values pinned here were computed by the release before Content existed
(``fingerprint({"op": operation, "payload": payload})``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erpsync.events import (
    ChangeEvent,
    Content,
    canonical_json,
    content_fingerprint,
    fingerprint,
)
from erpsync.models import parent_field
from tests.support import make_event

CUSTOMER: dict[str, Any] = {
    "key": "C000006",
    "name": 'Dupont & Fils "Émballages" 100% +',
    "parent_key": "C000004",
    "email": None,
    "phone": "+1 514 555 9459",
    "tax_number": None,
    "language": "FR",
    "active": True,
    "address": {
        "line1": "3151 rue Sainte-Catherine",
        "city": "Trois-Rivières",
        "region": "QC",
        "postal_code": "G9A 5H7",
        "country": "CA",
    },
    "custom": {"price": Decimal("12.50"), "tags": ["a", "ß\u2028😀"]},
}


def test_fingerprints_are_those_earlier_releases_stored() -> None:
    assert content_fingerprint("upsert", CUSTOMER) == "9df2696587d82ab7f6211085da927152"
    deleted = {"key": "C1", "active": False}
    assert Content.of("delete", deleted).fingerprint == "a691d92cea3e14557ff9d3f8696a227d"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(payload=st.dictionaries(st.text(), json_values, max_size=6))
def test_content_is_the_fingerprint_of_operation_and_payload(payload: dict[str, Any]) -> None:
    for operation in ("upsert", "delete"):
        content = Content.of(operation, payload)
        assert content.fingerprint == fingerprint({"op": operation, "payload": payload})
        assert content.text == canonical_json(payload)


class CountedDecimal(Decimal):
    """A Decimal that counts how often the canonical encoder writes it."""

    written = 0

    def to_integral(self, *args: Any, **kwargs: Any) -> Decimal:
        type(self).written += 1
        return super().to_integral(*args, **kwargs)


def test_an_event_built_from_its_content_does_not_serialise_the_payload_again() -> None:
    payload = {"key": "C1", "price": CountedDecimal("9.90")}
    content = Content.of("upsert", payload)
    CountedDecimal.written = 0
    built = make_event(payload, content=content)
    assert CountedDecimal.written == 0
    assert built.fingerprint == content.fingerprint == content_fingerprint("upsert", payload)
    assert built.payload == {"key": "C1", "price": "9.90"}
    alone = make_event(payload, detected_at=datetime.now(UTC))
    assert (alone.event_id, alone.payload) == (built.event_id, built.payload)


def test_content_of_another_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="content of a delete"):
        make_event({"key": "C1"}, content=Content.of("delete", {"key": "C1"}))


def test_a_persons_parent_is_its_employer_a_customer_and_a_customers_a_customer() -> None:
    # the pipeline waits for and reads the parent's ledger by this, on both paths
    person = ChangeEvent.create(
        flow="contacts", source="onlineerp", entity="person", key="P1", operation="upsert",
        payload={"key": "P1", "employer_key": "C1"}, source_version=1, parent_key="C1",
    )  # fmt: skip
    assert person.parent_record == ("customer", "C1")
    child = person.model_copy(update={"entity": "customer", "key": "C2"})
    assert child.parent_record == ("customer", "C1")
    assert person.model_copy(update={"parent_key": None}).parent_record is None
    assert (parent_field("person"), parent_field("customer")) == ("employer_key", "parent_key")
