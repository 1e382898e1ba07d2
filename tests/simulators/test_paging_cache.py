"""A page of a list or search is O(page) (cached results, insertion-ordered keys), and the
answer after a write is the one a fresh scan gives: every write invalidates the cache.

Fast unit tests against the stores (no HTTP); the HTTP behaviour is in each simulator's tests.
"""

from __future__ import annotations

from typing import Any

from simulators.atollon._contacts import ContactStore
from simulators.atollon._request import IdSequence
from simulators.hipe._addresses import Addresses
from simulators.hipe._fields import COMPANY_SPEC
from simulators.hipe.crud import CrudOptions, Table, parse_request
from simulators.onlineerp._query import Condition, Query, SortKey
from simulators.onlineerp._store import EntityStore
from simulators.propeller.schema import CompanyInput, SearchRequest
from simulators.propeller.store import CompanyStore


def test_hipe_list_page_follows_every_write() -> None:
    table = Table(COMPANY_SPEC)
    for i, name in enumerate(["delta", "alpha", "omega", "bravo"], start=1):
        table.put({"id": i, "name": name, "externalId": f"E{i}"})
    query = {"filter": "name||$cont||a", "sort": "name,ASC", "limit": "2", "page": "1"}

    def page() -> Any:
        return table.query(parse_request(query), CrudOptions())

    first = page()
    assert [r["name"] for r in first["data"]] == ["alpha", "bravo"]
    assert first["total"] == 4
    assert page() == first  # the same query again: the cached answer, unchanged
    table.put({"id": 5, "name": "aardvark", "externalId": "E5"})  # new row sorts first
    table.put({"id": 2, "name": "zulu", "externalId": "E2"})  # alpha renamed: no longer matches
    again = page()
    assert [(r["id"], r["name"]) for r in again["data"]] == [(5, "aardvark"), (4, "bravo")]
    assert again["total"] == 4
    table.clear()
    emptied = page()
    assert emptied["data"] == []
    assert emptied["total"] == 0


def test_propeller_search_page_follows_every_write() -> None:
    ticks = iter(range(100))
    store = CompanyStore(lambda: f"2026-01-01T00:00:{next(ticks):02d}")
    a = store.create(CompanyInput(fields={"name": "A", "debtorId": "D1"}))
    b = store.create(CompanyInput(fields={"name": "B", "debtorId": "D1"}))
    c = store.create(CompanyInput(fields={"name": "C", "debtorId": "D2"}))
    request = SearchRequest(debtor_ids=frozenset({"D1"}), page=1, offset=2)
    assert store.search(request) == ([a, b], 2)
    assert store.search(request) == ([a, b], 2)
    store.update(a, CompanyInput(fields={"name": "A2"}))  # newer dateModified: sorts last
    assert store.search(request) == ([b, a], 2)
    store.update(c, CompanyInput(fields={"debtorId": "D1"}))  # now matches the filter
    assert store.search(request) == ([b, a], 3)
    assert store.search(SearchRequest(debtor_ids=frozenset({"D1"}), page=2, offset=2)) == (
        [c],
        3,
    )
    store.delete(b)
    assert store.search(request) == ([a, c], 2)
    store.restore(b)  # restored: modified now, last
    assert store.search(request) == ([a, c], 3)
    store.clear()
    assert store.search(request) == ([], 0)


def test_atollon_contact_pages_follow_inserts_and_reset() -> None:
    ids = IdSequence()
    store = ContactStore(ids)
    for name in ("One", "Two", "Three"):
        store.upsert(
            {"company": {"companyName": name}, "externalId": [{"system": "e", "id": name}]}
        )
    names = [[c["company"]["companyName"] for c in store.page(p, 2)] for p in (1, 2, 3)]
    assert names == [["One", "Two"], ["Three"], []]
    store.upsert(
        {"company": {"companyName": "Two bis"}, "externalId": [{"system": "e", "id": "Two"}]}
    )
    store.upsert(
        {"company": {"companyName": "Four"}, "externalId": [{"system": "e", "id": "Four"}]}
    )
    assert [c["company"]["companyName"] for c in store.page(2, 2)] == ["Three", "Four"]
    assert store.page(1, 10) == store.records()
    store.reset()
    ids.reset()
    assert store.page(1, 10) == []
    store.upsert({"company": {"companyName": "Five"}, "externalId": [{"system": "e", "id": "5"}]})
    assert [c["company"]["companyName"] for c in store.page(1, 10)] == ["Five"]


def test_onlineerp_filtered_page_follows_every_write() -> None:
    store = EntityStore("Customer", "Code", ["Code", "Name", "City"])
    for code, name, city in (("C1", "b", "X"), ("C2", "a", "X"), ("C3", "c", "Y")):
        store.put({"Code": code, "Name": name, "City": city})
    query = Query(
        conditions=(Condition(("City",), "X"),),
        orderby=(SortKey(("Name",)),),
        top=10,
        signature="City=X by Name",
    )
    assert [r["Code"] for r in store.page(query)] == ["C2", "C1"]
    store.put({"Code": "C3", "Name": "0", "City": "X"})
    assert [r["Code"] for r in store.page(query)] == ["C3", "C2", "C1"]
    store.delete("C2")
    assert [r["Code"] for r in store.page(query)] == ["C3", "C1"]


def test_hipe_company_addresses_follow_creates_and_deletes() -> None:
    addresses = Addresses(lambda: "2026-01-01T00:00:00.000Z")
    body = {"address": "Main 1", "city": "Brno", "country": "CZ", "zipCode": "60200"}
    first = addresses.create(1, [body, {**body, "address": "Main 2"}])
    other = addresses.create(2, body)
    third = addresses.create(1, {**body, "address": "Main 3"})
    assert addresses.of_company(1) == [*first, *third]
    addresses.delete(str(first[0]["id"]))
    assert addresses.of_company(1) == [first[1], *third]
    addresses.forget_company(1)
    assert addresses.of_company(1) == []
    assert addresses.of_company(2) == other
    assert list(addresses.rows.values()) == other
