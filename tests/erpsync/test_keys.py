"""Issue 15, point 5: record keys are namespaced by source system; the home source's are bare."""

from __future__ import annotations

from erpsync.flows import SOURCES
from erpsync.keys import HOME_SOURCES, key_source, record_key
from state.keys import Keys


def test_the_erp_keeps_bare_keys_so_existing_ledgers_stay_where_they_are() -> None:
    keys = Keys("erpsync")
    assert record_key("onlineerp", "customer", "42") == "42"
    assert record_key("onlineerp", "product", "P-1") == "P-1"
    assert record_key("atollon", "billing", "A7") == "A7"
    assert keys.ledger("hipe", "customer", record_key("onlineerp", "customer", "42")) == (
        "erpsync:ledger:hipe:customer:42"
    )


def test_a_propeller_company_and_an_erp_customer_with_one_id_share_no_key() -> None:
    keys = Keys("erpsync")
    erp, shop = record_key("onlineerp", "customer", "42"), record_key("propeller", "customer", "42")
    assert shop == "propeller:42"
    for build in (keys.ledger, keys.record_lock):
        assert build("hipe", "customer", erp) != build("hipe", "customer", shop)
    assert keys.ledger("hipe", "customer", shop) == "erpsync:ledger:hipe:customer:propeller:42"
    assert (
        keys.record_lock("hipe", "customer", shop) == "erpsync:lock:rec:hipe:customer:propeller:42"
    )


def test_the_namespace_of_a_key_is_read_back() -> None:
    for source, entity in SOURCES:
        for raw in ("42", "a:b", "propeller"):
            assert key_source(entity, record_key(source, entity, raw)) == source


def test_every_entity_has_a_home_source_among_its_sources() -> None:
    entities = {entity for _, entity in SOURCES}
    assert set(HOME_SOURCES) == entities
    assert all((source, entity) in SOURCES for entity, source in HOME_SOURCES.items())
