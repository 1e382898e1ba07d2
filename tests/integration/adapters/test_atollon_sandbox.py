"""The Atollon adapter against the Atollon simulator over real HTTP on 127.0.0.1.

Both sides were written independently from the vendor's documentation and
docs/sandbox-conventions.md; what is asserted here is the documented behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import make_client
from adapters.atollon import (
    AtollonBillingUpdate,
    AtollonClient,
    AtollonCompany,
    AtollonCompanyPersonRelation,
    AtollonCompanyRelation,
    AtollonContactGroup,
    AtollonContactInput,
    AtollonPerson,
    AtollonProductInput,
    BillingStatus,
    ExternalId,
)
from adapters.atollon.invoices import AtollonInvoiceClient
from erpsync.errors import AuthError, DependencyError, PermanentError, TransientError
from erpsync.settings import AtollonSettings
from simulators.atollon import AtollonSimulator
from simulators.seed import ERP_SYSTEM, generate
from simulators.server import RunningSandbox, SandboxEndpoint

pytestmark = pytest.mark.integration

SEED = {"customers": 40, "activities": 4, "random_seed": 7}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[SandboxEndpoint]:
    with RunningSandbox(simulators={"atollon": AtollonSimulator()}) as running:
        yield running.endpoints["atollon"]


@pytest.fixture
def control(endpoint: SandboxEndpoint) -> Iterator[httpx.Client]:
    """The sandbox's control surface, reset before each test."""
    with httpx.Client(base_url=endpoint.url + "/_sandbox", timeout=30) as http:
        http.post("/reset").raise_for_status()
        yield http


@contextmanager
def _client(endpoint: SandboxEndpoint, instance: str = "sandbox") -> Iterator[AtollonClient]:
    settings = AtollonSettings(base_url=endpoint.api_url, instance=instance)
    with make_client(settings) as http:
        yield AtollonClient(http, settings)


@pytest.fixture
def atollon(endpoint: SandboxEndpoint, control: httpx.Client) -> Iterator[AtollonClient]:
    with _client(endpoint) as client:
        yield client


def company(key: str, name: str, parent: str | None = None) -> AtollonContactInput:
    relations = [AtollonCompanyRelation.to_parent(ERP_SYSTEM, parent)] if parent else None
    return AtollonContactInput(
        company=AtollonCompany(company_name=name, company_company_relation=relations),
        external_id=[ExternalId(system=ERP_SYSTEM, id=key)],
    )


def _carries(value: Any, key: str) -> bool:
    """Whether ``value`` holds an ``externalId`` list naming ``key`` for the ERP system."""
    if isinstance(value, list):
        return any(_carries(item, key) for item in value)
    if not isinstance(value, dict):
        return False
    ids = value.get("externalId")
    if isinstance(ids, list) and {"system": ERP_SYSTEM, "id": key} in ids:
        return True
    return any(_carries(item, key) for item in value.values())


def _strings(value: Any) -> set[str]:
    """Every string and number held anywhere in ``value``, as text."""
    if isinstance(value, dict):
        return set().union(*(_strings(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(item) for item in value))
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {str(value)}
    return set()


def records_with_external_id(control: httpx.Client, key: str) -> list[Any]:
    """Stored records (of any entity) whose own ``externalId`` names ``key``."""
    entities = control.get("/records/-").json()["entities"]
    return [
        record
        for entity in entities
        for record in control.get(f"/records/{entity}").json()
        if _carries(record, key)
    ]


def test_check_reaches_the_instance(atollon: AtollonClient) -> None:
    assert "invoice states" in atollon.check()


def test_company_contact_is_created_then_updated_by_external_id(
    atollon: AtollonClient, control: httpx.Client
) -> None:
    created = atollon.upsert_contact(company("C900001", "Gagnon Emballages inc."))
    updated = atollon.upsert_contact(company("C900001", 'Dupont & Fils "Émballages" 100% +'))

    assert created.contact_id
    assert updated.contact_id == created.contact_id
    assert updated.external_id_for(ERP_SYSTEM) == "C900001"
    [stored] = records_with_external_id(control, "C900001")
    assert 'Dupont & Fils "Émballages" 100% +' in _strings(stored)


def test_deactivation_is_recorded_as_the_inactive_group(
    atollon: AtollonClient, control: httpx.Client
) -> None:
    first = atollon.upsert_contact(company("C900009", "Roy Transport enr."))
    inactive = company("C900009", "Roy Transport enr.").model_copy(
        update={"contact_group": [AtollonContactGroup(name="Inactive")]}
    )

    again = atollon.upsert_contact(inactive)

    assert again.contact_id == first.contact_id
    [stored] = records_with_external_id(control, "C900009")
    assert "Inactive" in _strings(stored)


def test_child_company_relates_to_its_parent(atollon: AtollonClient, control: httpx.Client) -> None:
    parent = atollon.upsert_contact(company("C900010", "Morin Distribution ltée"))
    child = atollon.upsert_contact(company("C900011", "Morin Distribution (Québec)", "C900010"))

    assert child.contact_id != parent.contact_id
    [stored] = records_with_external_id(control, "C900011")
    # The stored child names its parent, by external id or by Atollon contact id.
    assert {"C900010", parent.contact_id} & _strings(stored)


def test_relation_to_a_missing_parent_waits_as_a_dependency(atollon: AtollonClient) -> None:
    with pytest.raises(DependencyError) as caught:
        atollon.upsert_contact(company("C900021", "Orphan inc.", parent="C999999"))

    error = caught.value
    assert error.vendor_code == "FAIL:related-contact-not-found"
    assert error.operation == "upsert_contact"
    assert "C999999" not in str(error)  # the vendor's message stays in the excerpt


def test_person_contact_binds_to_its_employer(atollon: AtollonClient) -> None:
    atollon.upsert_contact(company("C900030", "Lavoie Imprimerie inc."))
    person = AtollonContactInput(
        person=AtollonPerson(
            first_name="Marie",
            last_name="Lavoie",
            company_person_relation=[
                AtollonCompanyPersonRelation(
                    company_external_id=[ExternalId(system=ERP_SYSTEM, id="C900030")],
                    position_desc="Comptable",
                )
            ],
        ),
        external_id=[ExternalId(system=ERP_SYSTEM, id="C900030-1")],
    )

    result = atollon.upsert_contact(person)

    assert result.contact_id
    assert result.external_id_for(ERP_SYSTEM) == "C900030-1"


def test_person_whose_employer_is_missing_waits_as_a_dependency(atollon: AtollonClient) -> None:
    person = AtollonContactInput(
        person=AtollonPerson(
            last_name="Bouchard",
            company_person_relation=[
                AtollonCompanyPersonRelation(
                    company_external_id=[ExternalId(system=ERP_SYSTEM, id="C999998")]
                )
            ],
        ),
        external_id=[ExternalId(system=ERP_SYSTEM, id="C999998-1")],
    )

    with pytest.raises(DependencyError) as caught:
        atollon.upsert_contact(person)

    assert caught.value.vendor_code == "FAIL:related-contact-not-found"


def test_product_is_created_then_updated_by_external_id(atollon: AtollonClient) -> None:
    product = AtollonProductInput(
        name="Boîte carton simple cannelure #1",
        ref_id="P90001",
        unit_price_currency_name="CAD",
        external_id=[ExternalId(system=ERP_SYSTEM, id="P90001")],
    )

    created = atollon.upsert_product(product)
    updated = atollon.upsert_product(product.model_copy(update={"description": "Nouvelle"}))

    assert created.product_id
    assert updated.product_id == created.product_id
    assert created.product_refid == "P90001"
    assert updated.external_id_for(ERP_SYSTEM) == "P90001"


def test_seeded_billing_is_listed_then_marked_billed_idempotently(
    atollon: AtollonClient, control: httpx.Client
) -> None:
    control.post("/seed", json=SEED).raise_for_status()
    expected = generate(
        SEED["customers"], activities=SEED["activities"], random_seed=SEED["random_seed"]
    ).activities

    listed = atollon.list_billing()

    by_id = {entry.activity.id: entry for entry in listed}
    assert set(by_id) == {a["activity"]["id"] for a in expected}
    for source in expected:
        entry = by_id[source["activity"]["id"]]
        assert [item.id for item in entry.billing_items] == [
            item["id"] for item in source["billingItems"]
        ]
        assert all(i.billing_status == BillingStatus.TO_BE_INVOICED for i in entry.billing_items)
        # the seed names one customer in ten as ``contact`` only
        assert (entry.customer_contact is None) == (source["customerContact"] is None)
        customer = entry.customer_contact or entry.contact
        assert customer is not None
        assert (
            customer.external_id_for(ERP_SYSTEM)
            == (source["customerContact"] or source["contact"])["externalId"][0]["id"]
        )
        assert [item.billing_type for item in entry.billing_items] == [
            item["billingType"] for item in source["billingItems"]
        ]
        first = entry.billing_items[0]
        assert first.product_external_id_for(ERP_SYSTEM) == first.product_refid
        assert first.unit_price is not None
        assert first.billing_datetime is not None

    done = listed[0]
    update = AtollonBillingUpdate.mark(done.activity.id, [i.id for i in done.billing_items])
    atollon.update_billing([update])
    atollon.update_billing([update])  # a replay after a lost answer must succeed

    remaining = {entry.activity.id for entry in atollon.list_billing()}
    assert done.activity.id not in remaining
    assert remaining == set(by_id) - {done.activity.id}
    billed = {e.activity.id: e for e in atollon.list_billing(BillingStatus.BILLED)}
    assert [i.id for i in billed[done.activity.id].billing_items] == [
        i.id for i in done.billing_items
    ]


def test_unknown_billing_item_is_a_permanent_failure(
    atollon: AtollonClient, control: httpx.Client
) -> None:
    control.post("/seed", json=SEED).raise_for_status()
    activity = atollon.list_billing()[0].activity.id

    with pytest.raises(PermanentError) as caught:
        atollon.update_billing([AtollonBillingUpdate.mark(activity, ["no-such-item"])])

    assert caught.value.vendor_code == "FAIL:billing-item-not-found"
    assert caught.value.status_code == 200


def test_invoice_statuses_are_listed(atollon: AtollonClient) -> None:
    states = atollon.invoice_statuses()

    assert states
    assert all(state.state_id and state.name for state in states)


def test_documents_of_billing_activities_can_be_downloaded(
    atollon: AtollonClient, control: httpx.Client
) -> None:
    control.post("/seed", json=SEED).raise_for_status()
    documents = [doc for entry in atollon.list_billing() for doc in entry.documents]
    assert documents, "the seeded billing export lists no document to download"

    content = atollon.download_document(documents[0].id)

    assert content


def test_unknown_document_is_not_returned_as_content(atollon: AtollonClient) -> None:
    with pytest.raises(PermanentError) as caught:
        atollon.download_document("999999999")

    assert caught.value.operation == "download_document"
    assert caught.value.vendor_code == "FAIL"
    assert caught.value.status_code == 200


def test_wrong_instance_is_an_auth_error(endpoint: SandboxEndpoint, control: httpx.Client) -> None:
    with (
        _client(endpoint, instance="not-our-instance") as client,
        pytest.raises(AuthError) as caught,
    ):
        client.check()

    error = caught.value
    assert error.vendor_code == "FAIL:unknown-instance"
    assert error.status_code == 403
    assert error.hint is not None
    assert "instance name" in error.hint


def test_server_trouble_is_transient(atollon: AtollonClient, control: httpx.Client) -> None:
    control.post(
        "/faults", json={"statuses": [503], "path": "/crab/crawler/contact", "count": 1}
    ).raise_for_status()

    with pytest.raises(TransientError) as caught:
        atollon.upsert_contact(company("C900040", "Fortin Menuiserie"))
    result = atollon.upsert_contact(company("C900040", "Fortin Menuiserie"))

    assert caught.value.status_code == 503
    assert result.contact_id


def test_dropped_connection_is_transient(atollon: AtollonClient, control: httpx.Client) -> None:
    control.post(
        "/faults", json={"drop_rate": 1.0, "path": "/crab/crawler/product", "count": 1}
    ).raise_for_status()

    with pytest.raises(TransientError):
        atollon.upsert_product(
            AtollonProductInput(
                name="Film étirable", external_id=[ExternalId(system=ERP_SYSTEM, id="P90002")]
            )
        )


def test_the_adapter_reads_back_every_contact_and_product_page_by_page(
    endpoint: SandboxEndpoint, control: httpx.Client
) -> None:
    """The read the crawler does not document, as the sandbox conventions define it."""
    settings = AtollonSettings(base_url=endpoint.api_url, instance="sandbox", page_size=3)
    with make_client(settings) as http:
        atollon = AtollonClient(http, settings)
        atollon.upsert_contact(company("P1", "Mère"))
        for number in range(6):
            atollon.upsert_contact(company(f"C{number}", f"Fille {number}", parent="P1"))
        for number in range(4):
            atollon.upsert_product(
                AtollonProductInput(
                    name=f"Produit {number}",
                    unit_price=None if number else Decimal("2.5"),
                    status_name="Inactive" if number == 3 else "Active",
                    external_id=[ExternalId(system=ERP_SYSTEM, id=f"P{number}")],
                )
            )

        contacts = list(atollon.iter_contacts())
        products = list(atollon.iter_products())

    assert [c.external_id_for(ERP_SYSTEM) for c in contacts] == ["P1"] + [f"C{n}" for n in range(6)]
    child = contacts[1]
    assert child.company is not None
    assert child.company.company_name == "Fille 0"
    (relation,) = child.company.company_company_relation
    assert relation.company_external_id == [ExternalId(system=ERP_SYSTEM, id="P1")]
    assert child.contact_group == []
    assert [(p.name, p.unit_price, p.status_name) for p in products] == [
        ("Produit 0", 2.5, "Active"),
        ("Produit 1", None, "Active"),
        ("Produit 2", None, "Active"),
        ("Produit 3", None, "Inactive"),
    ]
    requests = control.get("/stats").json()["requests"]
    reads = {r["route"]: r["count"] for r in requests if r["method"] == "GET"}
    assert reads["/crab/crawler/contact"] == 3, "7 contacts, pages of 3"
    assert reads["/crab/crawler/product"] == 2, "4 products, pages of 3"


def test_order_received_reads_the_pages_order_and_one_a_user_entered(
    endpoint: SandboxEndpoint, control: httpx.Client
) -> None:
    entered = {
        "invoiceNumber": "SO-7",
        "customer": {"customerExternalId": [{"system": ERP_SYSTEM, "id": "C7"}]},
        "rows": [{"orderIndex": 0, "value": {"netTotal": 120, "currency": "CAD"}}],
        "totals": {"currency": "CAD", "total": 137.97, "totalWithVAT": 137.97},
    }
    order_id = control.post("/orders", json=entered).json()["id"]
    settings = AtollonSettings(base_url=endpoint.api_url, instance="sandbox")
    with make_client(settings) as http:
        client = AtollonInvoiceClient(http, settings)
        example = client.get_order_received("133683101")
        order = client.get_order_received(str(order_id))
        with pytest.raises(PermanentError):
            client.get_order_received("404")
    assert (example.invoice_number, example.journal_name) == ("232410001", "Sales Order")
    assert order.customer is not None
    assert order.customer.customer_external_id == [ExternalId(system=ERP_SYSTEM, id="C7")]
    assert order.totals is not None
    assert (order.totals.total, order.rows[0].value.net_total) == (Decimal("137.97"), Decimal(120))
