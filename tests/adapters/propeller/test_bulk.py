"""The Propeller adapter's bulk calls: one flat body, outcomes matched to their items,
batches in order, failures classified (httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.propeller import (
    PropellerAddressInput,
    PropellerCompanyRef,
    PropellerDirective,
)
from erpsync.errors import (
    DependencyError,
    ErrorClass,
    PermanentError,
)
from tests.support.propeller_api import (
    FakePropeller,
    assert_clean,
    bulk_reply,
    company_input,
    error_body,
    failed_item,
    make,
    ok_item,
    sent_json,
)


def test_bulk_maps_each_outcome_in_input_order() -> None:
    fake = FakePropeller(
        resource=bulk_reply(
            [
                ok_item("A", "create", 1),
                failed_item("B", 40007, "ParentCompanyNotFound"),
                ok_item("C", "update", 3),
                failed_item("D", 40008, "CompanyNotAllowed"),
            ]
        )
    )
    outcomes = make(fake).upsert_companies_bulk([company_input(k) for k in "ABCD"])
    assert [(o.index, o.key, o.ok) for o in outcomes] == [
        (0, "A", True),
        (1, "B", False),
        (2, "C", True),
        (3, "D", False),
    ]
    assert (outcomes[0].action, outcomes[0].id) == ("create", 1)
    assert (outcomes[2].action, outcomes[2].id) == ("update", 3)
    dependency, recycled = outcomes[1].error, outcomes[3].error
    assert type(dependency) is DependencyError
    assert dependency.vendor_code == "40007"
    assert dependency.operation == "upsert_companies_bulk"
    assert "sourceId B" in str(dependency)
    assert dependency.response_excerpt is not None
    assert "40007" in dependency.response_excerpt
    assert type(recycled) is PermanentError
    assert recycled.vendor_code == "40008"
    assert "recycle bin" in (recycled.hint or "")
    assert_clean(dependency)
    assert_clean(recycled)


def test_bulk_items_carry_email_and_phone_only_when_asked() -> None:
    """The reference's bulk fields leave them out, the guide's example takes ``email``: the
    caller chooses (``contact_inline``); by default a bulk item refuses them locally."""
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    client = make(fake)
    item = company_input("A", email="a@x.example", phone="")
    with pytest.raises(ValueError, match="email, phone"):
        client.upsert_companies_bulk([item])
    assert fake.requests == []
    (outcome,) = client.upsert_companies_bulk([item], contact_inline=True)
    assert outcome.ok
    (sent,) = json.loads(fake.requests[0].content)["companies"]
    assert (sent["email"], sent["phone"]) == ("a@x.example", "")


def test_bulk_outcomes_in_another_order_are_matched_by_key() -> None:
    fake = FakePropeller(
        resource=bulk_reply([ok_item("B", "update", 2), ok_item("A", "create", 1)])
    )
    outcomes = make(fake).upsert_companies_bulk([company_input("A"), company_input("B")])
    assert [(o.key, o.id) for o in outcomes] == [("A", 1), ("B", 2)]


def test_bulk_item_errors_follow_the_overrides() -> None:
    fake = FakePropeller(resource=bulk_reply([failed_item("A", 40007, "ParentCompanyNotFound")]))
    (outcome,) = make(fake, overrides={"40007": ErrorClass.PERMANENT}).upsert_companies_bulk(
        [company_input("A")]
    )
    assert type(outcome.error) is PermanentError


def test_bulk_item_with_an_unknown_code_is_permanent() -> None:
    fake = FakePropeller(resource=bulk_reply([failed_item("A", 77777, "Surprise")]))
    (outcome,) = make(fake).upsert_companies_bulk([company_input("A")])
    assert type(outcome.error) is PermanentError
    assert outcome.error.vendor_code == "77777"


def test_bulk_body_is_flat_with_settings_defaults_and_array_directives() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    address = PropellerAddressInput(
        type="invoice", street="Main", number="12", postal_code="9000", city="Gent", country="BE"
    )
    make(fake).upsert_companies_bulk(
        [
            company_input(
                "A",
                parent=PropellerCompanyRef(source_id="P", source="ERPSYNC"),
                addresses=[address],
            )
        ],
        directives=[PropellerDirective(operation="skipIfNotEmpty", fields=["name", "email"])],
    )
    (request,) = fake.requests
    assert request.url.path == "/v2/companies/bulk/sourceId"
    assert sent_json(request) == {
        "companies": [
            {
                "sourceId": "A",
                "source": "ERPSYNC",
                "language": "EN",
                "name": "Company A",
                "parent": {"sourceId": "P", "source": "ERPSYNC"},
                "addresses": [
                    {
                        "type": "invoice",
                        "street": "Main",
                        "number": "12",
                        "postalCode": "9000",
                        "city": "Gent",
                        "country": "BE",
                    }
                ],
            }
        ],
        "directives": [{"operation": "skipIfNotEmpty", "fields": ["name", "email"]}],
    }


def test_bulk_without_directives_leaves_the_key_out() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    make(fake).upsert_companies_bulk([company_input("A")])
    assert "directives" not in sent_json(fake.requests[0])


def test_bulk_splits_into_batches_and_keeps_the_order() -> None:
    def resource(request: httpx.Request) -> httpx.Response:
        keys = [c["sourceId"] for c in sent_json(request)["companies"]]
        return bulk_reply([ok_item(k, "create", int(k[1:])) for k in keys])(request)

    fake = FakePropeller(resource=resource)
    outcomes = make(fake, bulk_batch_size=2).upsert_companies_bulk(
        [company_input(f"C{i}") for i in range(5)]
    )
    assert [len(sent_json(r)["companies"]) for r in fake.requests] == [2, 2, 1]
    assert [(o.index, o.key, o.id) for o in outcomes] == [(i, f"C{i}", i) for i in range(5)]


def test_bulk_whole_request_failure_raises() -> None:
    fake = FakePropeller(resource=lambda r: httpx.Response(400, json=error_body(10007, 400)))
    with pytest.raises(PermanentError) as caught:
        make(fake).upsert_companies_bulk([company_input("A")])
    assert caught.value.vendor_code == "10007"
    assert_clean(caught.value)


def test_bulk_reply_missing_an_item_is_an_unexpected_shape() -> None:
    fake = FakePropeller(resource=bulk_reply([ok_item("A", "create", 1)]))
    with pytest.raises(PermanentError, match="1 outcomes for 2 items"):
        make(fake).upsert_companies_bulk([company_input("A"), company_input("B")])
