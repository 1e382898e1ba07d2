"""The Atollon sandbox's failures, driven over real HTTP: the fail shape for unknown
instances, bad JSON, business failures, unknown routes and injected faults."""

from __future__ import annotations

import httpx

from tests.support.atollon_sandbox import company, contact_post, failed, ok, records


def test_unknown_or_missing_instance_is_403_fail(atollon: httpx.Client) -> None:
    url = "/crab/crawler/contact"
    wrong = atollon.post(url, params={"instance": "production"}, json=company("A"))
    assert failed(wrong, 403) == "Unknown instance"
    with httpx.Client(base_url=str(atollon.base_url)) as bare:
        assert failed(bare.get("/crab/crawler/invoice_status"), 403) == "Unknown instance"
    assert records(atollon, "contacts") == []


def test_malformed_json_is_400_fail(atollon: httpx.Client) -> None:
    bad = atollon.post("/crab/crawler/contact", content=b"{not json")
    assert failed(bad, 400).startswith("Malformed JSON")
    empty = atollon.post("/crab/crawler/product", content=b"")
    assert failed(empty, 400).startswith("Malformed JSON")


def test_readable_but_invalid_body_is_a_business_failure_with_200(atollon: httpx.Client) -> None:
    assert "must be an object" in failed(contact_post(atollon, [1, 2]))
    assert "must be a list" in failed(contact_post(atollon, company("A", address={"city": "X"})))


def test_unknown_route_and_method_answer_in_fail_shape(atollon: httpx.Client) -> None:
    assert failed(atollon.post("/crab/crawler/nope", json={}), 404)
    assert failed(atollon.delete("/crab/crawler/contact"), 405)


def test_injected_vendor_code_answers_fail_with_200_and_changes_nothing(
    atollon: httpx.Client,
) -> None:
    rule = {"vendor_code": "Database locked", "path": "/crab/crawler/contact", "count": 1}
    assert atollon.post("/_sandbox/faults", json=rule).status_code == 200
    assert failed(contact_post(atollon, company("A", "C1"))) == "Database locked"
    assert records(atollon, "contacts") == []
    ok(contact_post(atollon, company("A", "C1")))


def test_injected_http_status_keeps_the_fail_shape(atollon: httpx.Client) -> None:
    atollon.post("/_sandbox/faults", json={"statuses": [503], "count": 1})
    assert failed(atollon.get("/crab/crawler/invoice_status"), 503)
