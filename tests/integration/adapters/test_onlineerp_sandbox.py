"""The OnlineERP adapter against the OnlineERP simulator over real HTTP on 127.0.0.1.

The adapter and the simulator are written independently from the vendor documentation and
docs/sandbox-conventions.md; these tests are where the two readings meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from adapters.onlineerp import (
    ErpAddress,
    ErpBillTo,
    ErpCustomer,
    ErpInvoice,
    ErpInvoiceLine,
    ErpProduct,
    ErpProductGroup,
    OnlineErpClient,
    where,
)
from erpsync.errors import (
    AuthError,
    DependencyError,
    PermanentError,
    RecordExistsError,
    RecordMissingError,
    TransientError,
)
from erpsync.settings import OnlineErpSettings
from simulators.onlineerp import OnlineErpSimulator
from simulators.seed import generate
from simulators.server import RunningSandbox

pytestmark = pytest.mark.integration

SECRET = "sandbox-secret"
SEED_CUSTOMERS = 50
SEED_PRODUCTS = 12


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"onlineerp": OnlineErpSimulator()}) as sandbox:
        yield sandbox


@pytest.fixture
def control(running: RunningSandbox) -> Iterator[httpx.Client]:
    """The sandbox's control surface, reset before each test."""
    with httpx.Client(base_url=running.endpoints["onlineerp"].url, timeout=30) as http:
        assert http.post("/_sandbox/reset").status_code == 200
        yield http


def erp_settings(running: RunningSandbox, **overrides: Any) -> OnlineErpSettings:
    values: dict[str, Any] = {
        "base_url": running.endpoints["onlineerp"].api_url,
        "licence_code": "SANDBOX",
        "secret": SecretStr(SECRET),
        "timeout_s": 30.0,
    }
    values.update(overrides)
    return OnlineErpSettings(**values)


@contextmanager
def client_with(running: RunningSandbox, **overrides: Any) -> Iterator[OnlineErpClient]:
    settings = erp_settings(running, **overrides)
    with make_client(settings) as http:
        yield OnlineErpClient(http, settings)


@pytest.fixture
def erp(running: RunningSandbox, control: httpx.Client) -> Iterator[OnlineErpClient]:
    with client_with(running) as client:
        yield client


@pytest.fixture
def seeded(control: httpx.Client, erp: OnlineErpClient) -> OnlineErpClient:
    answer = control.post(
        "/_sandbox/seed", json={"customers": SEED_CUSTOMERS, "products": SEED_PRODUCTS}
    )
    assert answer.status_code == 200
    return erp


def vendor_gets(control: httpx.Client) -> int:
    stats = control.get("/_sandbox/stats").json()
    return int(stats["by_method"].get("GET", 0))


def new_customer(number: str = "T000001", **changes: Any) -> ErpCustomer:
    values: dict[str, Any] = {
        "number": number,
        "name": "Boîtes & Co <test> 'quoted' 100% +",
        "email": "compta@boites.example",
        "phone": "+1 418 555 0101",
        "address": ErpAddress(
            line1="12 rue Principale",
            city="Québec",
            province="QC",
            postal_code="G1R 4P5",
            country="CA",
        ),
        "gst_number": "123456789RT0001",
        "language": "FR",
        "active": True,
    }
    values.update(changes)
    return ErpCustomer(**values)


def invoice_for(
    customer: str = "C000001", product: str = "P00001", reference: str = "ATL-ACT-00001"
) -> ErpInvoice:
    return ErpInvoice(
        reference=reference,
        description="Intervention 1",
        bill_to=ErpBillTo(customer_number=customer),
        lines=[
            ErpInvoiceLine(product_number=product, quantity=Decimal(3), unit_price=Decimal("10.5")),
            ErpInvoiceLine(description="Travaux facturables"),
        ],
    )


# --------------------------------------------------------------------------- reads


def test_check_answers_with_the_sandbox_credentials(erp: OnlineErpClient) -> None:
    assert "SANDBOX" in erp.check()


def test_customers_are_listed_in_pages_in_key_order(
    seeded: OnlineErpClient, control: httpx.Client
) -> None:
    expected = generate(SEED_CUSTOMERS, SEED_PRODUCTS).customers
    before = vendor_gets(control)
    pages = list(seeded.iter_customer_pages(page_size=20))
    assert [len(page) for page in pages] == [20, 20, 10]
    assert vendor_gets(control) - before == 3, "the short last page ends the scan"
    customers = [c for page in pages for c in page]
    assert [c.number for c in customers] == [c["NoClient"] for c in expected]
    assert [c.name for c in customers] == [c["NomClient"] for c in expected]
    assert [c.parent_number for c in customers] == [c["NoClientParent"] for c in expected]
    first = customers[0]
    assert first.address is not None
    assert first.address.city == expected[0]["Adresse"]["Ville"]
    assert first.gst_number == expected[0]["NoTPS"]


def test_a_page_size_dividing_the_count_ends_on_an_empty_page(
    seeded: OnlineErpClient, control: httpx.Client
) -> None:
    before = vendor_gets(control)
    numbers = [c.number for c in seeded.iter_customers(page_size=25)]
    assert len(numbers) == SEED_CUSTOMERS
    assert len(set(numbers)) == SEED_CUSTOMERS
    assert vendor_gets(control) - before == 3, "two full pages, then an empty one"


def test_products_are_listed_with_their_group_and_price(seeded: OnlineErpClient) -> None:
    expected = generate(SEED_CUSTOMERS, SEED_PRODUCTS).products
    products = list(seeded.iter_products(page_size=5))
    assert [p.number for p in products] == [p["NoProduit"] for p in expected]
    assert [p.price for p in products] == [Decimal(str(p["PrixVente"])) for p in expected]
    assert [p.group.code if p.group else None for p in products] == [
        p["GroupeProduit"]["CodeGroupe"] for p in expected
    ]
    assert len(list(seeded.iter_product_pages(page_size=5))) == 3


def test_filters_on_sub_fields_and_on_names_with_quotes(seeded: OnlineErpClient) -> None:
    data = generate(SEED_CUSTOMERS, SEED_PRODUCTS)
    clothes = [
        p.number
        for p in seeded.iter_products(filter=where({"GroupeProduit.CodeGroupe": "vêtements"}))
    ]
    assert clothes == [
        p["NoProduit"] for p in data.products if p["GroupeProduit"]["CodeGroupe"] == "vêtements"
    ]
    assert clothes, "the seed has products in that group"
    for name in ['Dupont & Fils "Émballages" 100% +', "L'Étoile du Nord — Café & Thé"]:
        expected = [c["NoClient"] for c in data.customers if c["NomClient"] == name]
        found = [c.number for c in seeded.iter_customers(filter=where({"NomClient": name}))]
        assert found == expected
        assert found, name
    assert list(seeded.iter_customers(filter=where({"NomClient": "nobody's here"}))) == []


def test_a_malformed_filter_is_a_permanent_error(seeded: OnlineErpClient) -> None:
    with pytest.raises(PermanentError) as caught:
        list(seeded.iter_customers(filter="NoClient eq"))
    assert caught.value.status_code == 400
    assert caught.value.vendor_code == "InvalidFilter"


def test_get_reads_one_record_or_none(seeded: OnlineErpClient) -> None:
    customer = seeded.get_customer("C000006")
    assert customer is not None
    assert customer.name == 'Dupont & Fils "Émballages" 100% +'
    assert seeded.get_customer("C999999") is None
    product = seeded.get_product("P00002")
    assert product is not None
    assert product.number == "P00002"
    assert seeded.get_product("P99999") is None


# --------------------------------------------------------------------------- writes


def test_customer_create_update_delete(erp: OnlineErpClient) -> None:
    created = erp.create_customer(new_customer())
    assert created.number == "T000001"
    assert created.name == "Boîtes & Co <test> 'quoted' 100% +"
    assert erp.get_customer("T000001") == created

    with pytest.raises(RecordExistsError) as exists:
        erp.create_customer(new_customer())
    assert exists.value.vendor_code == "Exists"
    assert exists.value.status_code == 409

    updated = erp.update_customer(new_customer(name="Boîtes & Co ltée", active=False))
    assert updated.name == "Boîtes & Co ltée"
    assert updated.active is False
    stored = erp.get_customer("T000001")
    assert stored is not None
    assert stored.name == "Boîtes & Co ltée"

    child = erp.create_customer(new_customer("T000002", parent_number="T000001"))
    assert child.parent_number == "T000001"

    erp.delete_customer("T000002")
    assert erp.get_customer("T000002") is None
    with pytest.raises(RecordMissingError) as missing:
        erp.delete_customer("T000002")
    assert missing.value.status_code == 404
    with pytest.raises(RecordMissingError):
        erp.update_customer(new_customer("T000404"))


def test_product_create_update_delete(erp: OnlineErpClient) -> None:
    product = ErpProduct(
        number="TP0001",
        description="Boîte « spéciale » 50% + rabais",
        price=Decimal("19.99"),
        group=ErpProductGroup(code="BOITES"),
    )
    created = erp.create_product(product)
    assert created.price == Decimal("19.99")
    assert created.group is not None
    assert created.group.code == "BOITES"
    with pytest.raises(RecordExistsError):
        erp.create_product(product)

    updated = erp.update_product(product.model_copy(update={"price": Decimal("21.5")}))
    assert updated.price == Decimal("21.5")
    found = erp.get_product("TP0001")
    assert found is not None
    assert found.price == Decimal("21.5")
    assert [p.number for p in erp.iter_products()] == ["TP0001"]

    erp.delete_product("TP0001")
    assert erp.get_product("TP0001") is None
    with pytest.raises(RecordMissingError):
        erp.delete_product("TP0001")
    with pytest.raises(RecordMissingError):
        erp.update_product(product)


# --------------------------------------------------------------------------- invoices


def test_an_invoice_is_created_once_and_found_again(seeded: OnlineErpClient) -> None:
    created = seeded.create_invoice(invoice_for())
    assert created.number
    assert created.invoice.reference == "ATL-ACT-00001"
    assert created.invoice.bill_to.customer_number == "C000001"
    assert [line.product_number for line in created.invoice.lines] == ["P00001", None]
    assert created.total_before_taxes == Decimal("31.5")

    read = seeded.get_invoice(created.number)
    assert read is not None
    assert read.number == created.number
    assert read.invoice.reference == "ATL-ACT-00001"

    found = seeded.find_invoice("ATL-ACT-00001")
    assert found is not None
    assert found.number == created.number

    with pytest.raises(RecordExistsError) as duplicate:
        seeded.create_invoice(invoice_for())
    assert duplicate.value.status_code == 412
    assert duplicate.value.vendor_code == "Exists"
    again = seeded.find_invoice("ATL-ACT-00001")
    assert again is not None
    assert again.number == created.number, "the refused duplicate created nothing"

    assert seeded.find_invoice("ATL-ACT-99999") is None
    assert seeded.get_invoice("NO-SUCH-INVOICE") is None


def test_a_reference_with_a_quote_is_found(seeded: OnlineErpClient) -> None:
    created = seeded.create_invoice(invoice_for(reference="O'Brien & Fils #1"))
    found = seeded.find_invoice("O'Brien & Fils #1")
    assert found is not None
    assert found.number == created.number


def test_an_invoice_for_an_unknown_customer_waits_for_it(seeded: OnlineErpClient) -> None:
    with pytest.raises(DependencyError) as caught:
        seeded.create_invoice(invoice_for(customer="C999999", reference="ATL-DEP-1"))
    assert caught.value.status_code == 400
    assert caught.value.vendor_code == "InvalidBody/Customer"
    assert seeded.find_invoice("ATL-DEP-1") is None


def test_an_invoice_for_an_unknown_product_waits_for_it(seeded: OnlineErpClient) -> None:
    with pytest.raises(DependencyError) as caught:
        seeded.create_invoice(invoice_for(product="P99999", reference="ATL-DEP-2"))
    assert caught.value.vendor_code == "InvalidBody/Product"
    assert seeded.find_invoice("ATL-DEP-2") is None


# --------------------------------------------------------------------------- failures


def test_a_wrong_secret_is_an_auth_error_without_the_secret(
    running: RunningSandbox, control: httpx.Client
) -> None:
    with client_with(running, secret=SecretStr("not-the-secret")) as erp:
        with pytest.raises(AuthError) as caught:
            erp.check()
        assert caught.value.status_code == 401
        assert "not-the-secret" not in str(caught.value)
        assert "not-the-secret" not in (caught.value.response_excerpt or "")


def test_a_company_the_licence_does_not_hold_is_an_auth_error(
    running: RunningSandbox, control: httpx.Client
) -> None:
    with client_with(running, company_id="999") as erp:
        with pytest.raises(AuthError) as caught:
            erp.check()
        assert caught.value.status_code == 403


def test_robot_offline_is_transient_with_retry_after(
    seeded: OnlineErpClient, control: httpx.Client
) -> None:
    rule = {"vendor_code": "RobotOffline", "retry_after_s": 7, "count": 1}
    assert control.post("/_sandbox/faults", json=rule).status_code == 200
    with pytest.raises(TransientError) as caught:
        seeded.get_customer("C000001")
    assert caught.value.status_code == 503
    assert caught.value.vendor_code == "RobotOffline"
    assert caught.value.retry_after_s == 7
    assert seeded.get_customer("C000001") is not None, "the next call goes through"


def test_robot_timeout_is_transient(seeded: OnlineErpClient, control: httpx.Client) -> None:
    control.post("/_sandbox/faults", json={"vendor_code": "RobotTimeout", "count": 1})
    with pytest.raises(TransientError) as caught:
        list(seeded.iter_customers())
    assert caught.value.status_code == 504
    assert caught.value.vendor_code == "RobotTimeout"


def test_a_dropped_connection_is_transient(seeded: OnlineErpClient, control: httpx.Client) -> None:
    control.post("/_sandbox/faults", json={"drop_rate": 1.0, "count": 1})
    with pytest.raises(TransientError) as caught:
        seeded.get_customer("C000001")
    assert caught.value.status_code is None
