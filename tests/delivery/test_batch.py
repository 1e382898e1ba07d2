"""How batches are cut: parents first, families together, full batches, cycles survived, and
which polls are batched at all."""

from __future__ import annotations

from delivery.batch import BulkRoute, plan_batches, split_for_bulk
from erpsync.events import Delivery
from tests.support.bulk import TARGET, delivery, event, keys_of


def test_batches_put_parents_first_and_keep_families_together() -> None:
    # C3 is listed before its parent C1; C4 is a grandchild of C1 through C2.
    loads = [delivery("C3", "C1"), delivery("C1"), delivery("X1"), delivery("C2", "C1"),
             delivery("C4", "C2"), delivery("X2", "X1")]  # fmt: skip
    batches = plan_batches(loads, size=4)
    assert [keys_of(b) for b in batches] == [["C1", "C3", "C2", "C4"], ["X1", "X2"]]


def test_a_family_larger_than_a_batch_spans_consecutive_batches_in_order() -> None:
    loads = [delivery("P")] + [delivery(f"K{i}", "P") for i in range(4)] + [delivery("Z")]
    batches = plan_batches(loads, size=2)
    assert [keys_of(b) for b in batches] == [["P", "K0"], ["K1", "K2"], ["K3", "Z"]]
    assert all(len(b) <= 2 for b in batches)


def test_batches_end_full_when_a_later_family_fits_where_an_earlier_did_not() -> None:
    loads = [delivery("A"), delivery("B"), delivery("B1", "B"), delivery("C"),
             delivery("C1", "C"), delivery("C2", "C"), delivery("D"), delivery("E")]  # fmt: skip
    batches = plan_batches(loads, size=4)
    assert [keys_of(b) for b in batches] == [["A", "B", "B1", "D"], ["C", "C1", "C2", "E"]]
    assert len(plan_batches([delivery(f"K{i}") for i in range(1000)], size=200)) == 5


def test_a_parent_cycle_in_the_source_does_not_hang_the_planner() -> None:
    batches = plan_batches([delivery("A", "B"), delivery("B", "A")], size=10)
    assert sorted(keys_of(batches[0])) == ["A", "B"]


def test_only_large_polls_of_active_upserts_for_bulk_targets_are_batched() -> None:
    routes = {TARGET: BulkRoute(TARGET, batch_size=2, min_records=3)}
    upserts = [delivery(f"C{i}") for i in range(3)]
    gone = Delivery(event=event("D1", operation="delete"), target=TARGET)
    inactive = Delivery(event=event("I1", active=False), target=TARGET)
    other = delivery("C0", target="atollon")
    singles, batches = split_for_bulk([*upserts, gone, inactive, other], routes, volume=3)
    assert keys_of(singles) == ["D1", "I1", "C0"]
    assert [keys_of(b) for b in batches] == [["C0", "C1"], ["C2"]]
    singles, batches = split_for_bulk(upserts, routes, volume=2)
    assert (keys_of(singles), batches) == (["C0", "C1", "C2"], []), "a small poll stays single"
