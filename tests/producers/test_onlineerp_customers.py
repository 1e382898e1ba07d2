"""ERP customers: fingerprinted from the ERP's JSON, validated only when changed.

A poll fingerprints every customer; a customer whose values have the types the ERP model
declares is fingerprinted from canonical text assembled straight from the JSON, which must
be, byte for byte, what validating and mapping it gives (else every poll would resend it,
or an upgrade would resend everything). A customer found changed is validated and mapped
before its event is built; a broken one still becomes an event the targets dead-letter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import httpx
import pytest
from celery import Celery
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from adapters.onlineerp import ErpCustomer, InvalidRecord, OnlineErpClient
from erpsync.events import Content, canonical_json
from erpsync.settings import OnlineErpSettings
from producers.base import Producer, SourceRecord, UncheckedRecord
from producers.onlineerp import (
    OnlineErpCustomers,
    customer_payload,
    customer_text,
    invalid_customer_payload,
)
from simulators.seed import generate
from state.keys import Keys

SOURCE_FIELDS = {
    "number": "NoClient",
    "city": "Adresse.Ville",
    "active": "EstActif",
    "address": "Adresse",
    "segment": "Segment",
    "deep": "Extra.Niveau",
    "nowhere": "Adresse.Nulle.Part",
}


def model_text(raw: Any, source_fields: dict[str, str]) -> str:
    """What validating and mapping the record gives, as canonical text."""
    return canonical_json(customer_payload(ErpCustomer.model_validate(raw), source_fields))


def test_every_seeded_customer_takes_the_fast_path_to_the_same_text() -> None:
    for raw in generate(3000, products=0, activities=0).customers:
        for source_fields in ({}, SOURCE_FIELDS):
            assert customer_text(raw, source_fields) == model_text(raw, source_fields)


texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8) | st.sampled_from(
    ["", " ", "  padded  ", 'quote " and \\ backslash', "tab\tnew\nline", "é😀\u2028"]
)
values = st.none() | texts | st.booleans() | st.integers() | st.floats(allow_nan=False)
optional_texts = st.none() | texts
TEXT_FIELDS = ["NoClientParent", "Courriel", "Telephone", "NoTPS", "Langue"]
ADDRESS_FIELDS = ["Ligne1", "Ville", "Province", "CodePostal", "Pays"]


def mostly(draw: st.DrawFn, typed: st.SearchStrategy[Any]) -> Any:
    """A value of the declared type, now and then anything."""
    return draw(values) if draw(st.integers(0, 15)) == 0 else draw(typed)


@st.composite
def raw_addresses(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 15)) == 0:
        return draw(values)
    address = {f: mostly(draw, optional_texts) for f in ADDRESS_FIELDS if draw(st.booleans())}
    if draw(st.integers(0, 7)) == 0:
        address[draw(st.sampled_from(["city", "Zone"]))] = draw(values)
    return address


@st.composite
def raw_delivery(draw: st.DrawFn) -> Any:
    """``AdressesLivraison``: a list of coded addresses, sometimes odd (no code, a code
    twice, blank, not a list, the model's own names)."""
    if draw(st.integers(0, 15)) == 0:
        return draw(values)
    found = []
    for _ in range(draw(st.integers(0, 3))):
        item = draw(raw_addresses())
        if isinstance(item, dict) and draw(st.integers(0, 9)):
            item["CodeAdresse"] = mostly(draw, st.sampled_from(["L1", "L2", " L3 ", "", " "]))
        if isinstance(item, dict) and draw(st.integers(0, 11)) == 0:
            item["code"] = "L9"
        found.append(item)
    return found


@st.composite
def raw_customers(draw: st.DrawFn) -> Any:
    """ERP JSON, mostly typed as the model declares, sometimes not (wrong types, missing or
    blank keys, the model's own field names, extra fields)."""
    if draw(st.integers(0, 30)) == 0:
        return draw(values)
    raw: dict[str, Any] = {
        f: mostly(draw, optional_texts) for f in TEXT_FIELDS if draw(st.booleans())
    }
    if draw(st.integers(0, 15)):
        raw["NoClient"] = mostly(draw, st.sampled_from(["C1", " C2 ", "é", "", "  "]) | texts)
    if draw(st.integers(0, 15)):
        raw["NomClient"] = mostly(draw, texts)
    if draw(st.booleans()):
        raw["EstActif"] = mostly(draw, st.booleans())
    if draw(st.booleans()):
        raw["Adresse"] = draw(st.none() | raw_addresses())
    if draw(st.booleans()):
        raw["AdressesLivraison"] = draw(st.none() | raw_delivery())
    if draw(st.integers(0, 7)) == 0:
        raw[draw(st.sampled_from(["name", "email", "active", "address"]))] = draw(values)
    if draw(st.booleans()):
        raw[draw(st.sampled_from(["Segment", "Extra"]))] = draw(
            values | st.fixed_dictionaries({"Niveau": values})
        )
    return raw


@settings(max_examples=400)
@given(raw=raw_customers(), with_fields=st.booleans())
def test_the_fast_text_is_the_models_or_nothing(raw: Any, with_fields: bool) -> None:
    source_fields = SOURCE_FIELDS if with_fields else {}
    text = customer_text(raw, source_fields)
    if text is None:
        return
    # Where the fast path answers, the model accepts the record and maps it to that text.
    assert text == model_text(raw, source_fields)


def test_custom_fields_are_read_as_the_native_text_fields_stripped_and_blank_absent() -> None:
    fields = {"segment": "Segment", "note": "Extra.Note", "count": "Extra.Count"}
    for segment, note, expected in (
        ("  retail ", "Livrer le matin", {"segment": "retail", "note": "Livrer le matin"}),
        ("   ", "", {}),
        (None, "  x  ", {"note": "x"}),
    ):
        raw: dict[str, Any] = {"NoClient": "C1", "NomClient": "Acme", "Segment": segment}
        raw["Extra"] = {"Note": note, "Count": 0}
        text = customer_text(raw, fields)
        assert text is not None
        assert json.loads(text)["custom"] == {**expected, "count": 0}
        assert text == model_text(raw, fields), "the fast path reads them as the model's"


def test_records_the_model_would_coerce_or_refuse_are_left_to_it() -> None:
    good = generate(1, products=0, activities=0).customers[0]
    for change in (
        {"EstActif": "true"},  # the model coerces it
        {"EstActif": None},  # the model refuses it
        {"Telephone": 5145550000},
        {"NoClient": ""},
        {"Adresse": {"Ville": 7}},
        {"Adresse": {"city": "Montréal"}},  # the model reads its field names too
        {"email": "x@exemple.qc.ca"},
        {"AdressesLivraison": {"CodeAdresse": "L1"}},  # not a list: refused
        {"AdressesLivraison": [{"CodeAdresse": "L1", "Ville": 7}]},
        {"AdressesLivraison": [{"code": "L1", "Ville": "Laval"}]},
    ):
        assert customer_text({**good, **change}, {}) is None, change
    missing_name = {k: v for k, v in good.items() if k != "NomClient"}
    assert customer_text(missing_name, {}) is None
    with pytest.raises(ValidationError):
        ErpCustomer.model_validate(missing_name)


def test_every_address_with_a_value_becomes_one_of_the_customers_addresses_by_code() -> None:
    raw = {
        "NoClient": "C1",
        "NomClient": "Acme",
        "Adresse": {"Ligne1": " 1 rue A ", "Ville": "Laval", "Pays": "CA"},
        "AdressesLivraison": [
            {"CodeAdresse": "D1", "Ligne1": "2 rue B", "Ville": "Québec", "Province": "QC"},
            {"CodeAdresse": "D2", "Ligne1": None, "Ville": " ", "Pays": None},  # empty: none
            {"CodeAdresse": "D1", "Ligne1": "3 rue C"},  # the code again: left out
        ],
    }
    text = customer_text(raw, {})
    assert text is not None
    assert text == model_text(raw, {})
    assert json.loads(text)["addresses"] == [
        {
            "code": "invoice",
            "type": "invoice",
            "line1": "1 rue A",
            "city": "Laval",
            "region": None,
            "postal_code": None,
            "country": "CA",
        },
        {
            "code": "delivery:D1",
            "type": "delivery",
            "line1": "2 rue B",
            "city": "Québec",
            "region": "QC",
            "postal_code": None,
            "country": None,
        },
    ]
    cleared = {**raw, "Adresse": {"Ville": None}, "AdressesLivraison": None}
    assert json.loads(customer_text(cleared, {}) or "")["addresses"] == []


# --- the stream over the ERP's HTTP API ----------------------------------------------------


@dataclass
class Erp:
    """The ERP's customer list, paged by ``$top``/``$skip`` as the HUB pages it."""

    customers: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/Entity/Customer")
        top, skip = int(request.url.params["$top"]), int(request.url.params["$skip"])
        return httpx.Response(200, json=self.customers[skip : skip + top])


@dataclass
class CountingCustomers(OnlineErpCustomers):
    """The customers stream, remembering which records it was asked to confirm."""

    confirmed: list[str] = field(default_factory=list)

    def confirm(self, records: list[UncheckedRecord]) -> list[SourceRecord]:
        self.confirmed.extend(r.key for r in records)
        return super().confirm(records)


@pytest.fixture
def erp() -> Erp:
    return Erp([dict(c) for c in generate(25, products=0, activities=0).customers])


@pytest.fixture
def customers(erp: Erp) -> Iterator[CountingCustomers]:
    settings = OnlineErpSettings(
        base_url="https://erp.example/api", licence_code="LIC", secret=SecretStr("s3cr3t-abc")
    )
    http = httpx.Client(base_url=settings.base_url, transport=httpx.MockTransport(erp.handle))
    client = OnlineErpClient(http, settings)
    yield CountingCustomers(
        "customers", "onlineerp", "customer", ["propeller"], client=client, page_size=10
    )
    http.close()


@pytest.fixture
def producer() -> Iterator[Producer]:
    app = Celery("customers-test", broker="memory://", set_as_current=False)
    app.conf.task_serializer = "json"
    yield Producer(app, fakeredis.FakeRedis(decode_responses=True), Keys("customers"))
    app.close()


def test_fingerprints_match_what_the_models_path_stored(
    erp: Erp, customers: CountingCustomers, producer: Producer
) -> None:
    """Snapshots written by the model's path (earlier releases) find nothing changed."""
    snapshot = producer.keys.snapshot("onlineerp", "customer")
    producer.redis.hset(
        snapshot,
        mapping={
            c["NoClient"]: Content.of(
                "upsert", customer_payload(ErpCustomer.model_validate(c), {})
            ).fingerprint
            for c in erp.customers
        },
    )
    result = producer.poll(customers)
    assert (result.records, result.events) == (25, 0)
    assert customers.confirmed == []


def test_only_changed_customers_are_validated_and_broken_ones_still_sent(
    erp: Erp, customers: CountingCustomers, producer: Producer
) -> None:
    first = producer.poll(customers)
    assert (first.records, first.events) == (25, 25)
    customers.confirmed.clear()
    erp.customers[3]["Telephone"] = "+1 438 555 0101"
    erp.customers[12]["NomClient"] = None  # saved without a name by another tool
    erp.customers[20]["EstActif"] = "false"  # coerced by the model: the fast path declines
    result = producer.poll(customers)
    # The changed customer is confirmed by the model; the broken and the coercible ones
    # never took the fast path: the model read them in the scan already.
    assert customers.confirmed == [erp.customers[3]["NoClient"]]
    assert (result.records, result.changed, result.deleted) == (25, 3, 0)
    latest = producer.redis.hgetall(producer.keys.latest("onlineerp", "customer"))
    assert {k for k, v in latest.items() if int(v) > 25} == {
        erp.customers[i]["NoClient"] for i in (3, 12, 20)
    }
    snapshot = producer.redis.hgetall(producer.keys.snapshot("onlineerp", "customer"))
    for index in (3, 20):
        valid = ErpCustomer.model_validate(erp.customers[index])
        expected = Content.of("upsert", customer_payload(valid, {})).fingerprint
        assert snapshot[valid.number] == expected
    broken = OnlineErpClient.check_customer(erp.customers[12])
    assert isinstance(broken, InvalidRecord)
    expected = Content.of("upsert", invalid_customer_payload(broken, {})).fingerprint
    assert snapshot[erp.customers[12]["NoClient"]] == expected, "sent as it is, to dead-letter"
    del erp.customers[7]
    gone = producer.poll(customers)
    assert (gone.records, gone.changed, gone.deleted, gone.events) == (24, 0, 1, 1)
