"""bench.addresses: the load it measures has one to three addresses per customer."""

from __future__ import annotations

from adapters.onlineerp import ErpCustomer
from bench.addresses import customers_with_addresses
from producers.onlineerp import customer_payload


def test_every_customer_has_one_to_three_addresses_with_codes_of_their_own() -> None:
    customers = customers_with_addresses(300)
    counts = []
    for raw in customers:
        addresses = customer_payload(ErpCustomer.model_validate(raw), {})["addresses"]
        codes = [a["code"] for a in addresses]
        assert len(set(codes)) == len(codes)
        assert all(a["line1"] and a["city"] and a["country"] for a in addresses)
        counts.append(len(addresses))
    assert set(counts) == {1, 2, 3}
    assert customers_with_addresses(300) == customers, "the same load every run"
