"""The Propeller adapter against the Propeller simulator over real HTTP on 127.0.0.1.

The adapter and the simulator were written independently from the vendor docs and
docs/sandbox-conventions.md; these tests are where the two readings meet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from adapters.propeller import (
    PropellerAddressInput,
    PropellerClient,
    PropellerCompanyInput,
    PropellerCompanyRef,
)
from adapters.propeller.models import AddressType
from erpsync.errors import (
    AuthError,
    DependencyError,
    PermanentError,
    RecordExistsError,
    RecordMissingError,
    TransientError,
)
from erpsync.settings import PropellerSettings
from simulators.propeller import PropellerSimulator
from simulators.server import RunningSandbox

pytestmark = pytest.mark.integration

SECRET = "sandbox-secret"
SOURCE = "ERPSYNC"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with RunningSandbox(simulators={"propeller": PropellerSimulator()}) as running:
        yield running


@pytest.fixture
def control(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """The simulator's /_sandbox surface, reset before each test."""
    with httpx.Client(base_url=sandbox.endpoints["propeller"].url, timeout=10) as http:
        http.post("/_sandbox/reset").raise_for_status()
        yield http


def settings_for(sandbox: RunningSandbox, **overrides: Any) -> PropellerSettings:
    values: dict[str, Any] = {
        "base_url": sandbox.endpoints["propeller"].api_url,
        "client_id": "sandbox",
        "client_secret": SecretStr(SECRET),
        "timeout_s": 10.0,
    }
    values.update(overrides)
    return PropellerSettings(**values)


Factory = Callable[..., PropellerClient]


@pytest.fixture
def make_propeller(sandbox: RunningSandbox, control: httpx.Client) -> Iterator[Factory]:
    opened: list[httpx.Client] = []

    def factory(**overrides: Any) -> PropellerClient:
        settings = settings_for(sandbox, **overrides)
        http = make_client(settings)
        opened.append(http)
        return PropellerClient(http, settings)

    yield factory
    for http in opened:
        http.close()


@pytest.fixture
def propeller(make_propeller: Factory) -> PropellerClient:
    return make_propeller()


def company(source_id: str, **fields: Any) -> PropellerCompanyInput:
    return PropellerCompanyInput(source_id=source_id, name=f"Company {source_id}", **fields)


def child_of(parent_id: str, source_id: str) -> PropellerCompanyInput:
    return company(source_id, parent=PropellerCompanyRef(source_id=parent_id, source=SOURCE))


def route_count(control: httpx.Client, method: str, route_part: str) -> int:
    stats = control.get("/_sandbox/stats").json()
    return sum(
        row["count"]
        for row in stats["requests"]
        if row["method"] == method and route_part in row["route"]
    )


# -------------------------------------------------------------------- auth, check


def test_check_succeeds_with_the_sandbox_credentials(propeller: PropellerClient) -> None:
    assert "token" in propeller.check()


def test_wrong_secret_is_an_auth_error_naming_bad_credentials(make_propeller: Factory) -> None:
    client = make_propeller(client_secret=SecretStr("wrong-secret-value"))
    with pytest.raises(AuthError) as caught:
        client.check()
    text = f"{caught.value!s} {caught.value!r}"
    assert "bad credentials" in text
    assert "propeller" in text.lower()
    assert "wrong-secret-value" not in text
    assert SECRET not in text
    assert "wrong-secret-value" not in (caught.value.response_excerpt or "")


def test_a_401_on_a_resource_refreshes_the_token_once(
    propeller: PropellerClient, control: httpx.Client
) -> None:
    propeller.create_company(company("R-1"))
    tokens_before = route_count(control, "POST", "token")
    control.post(
        "/_sandbox/faults", json={"statuses": [401], "path": "/v2/companies/*", "count": 1}
    ).raise_for_status()
    found = propeller.get_company("R-1")
    assert found is not None
    assert route_count(control, "POST", "token") == tokens_before + 1


def test_a_429_carries_retry_after(propeller: PropellerClient, control: httpx.Client) -> None:
    propeller.check()
    control.post(
        "/_sandbox/faults",
        json={"statuses": [429], "retry_after_s": 7, "path": "/v2/companies*", "count": 1},
    ).raise_for_status()
    with pytest.raises(TransientError) as caught:
        propeller.get_company("X-1")
    assert caught.value.status_code == 429
    assert caught.value.retry_after_s == 7.0


# ---------------------------------------------------------------------- companies


def test_create_get_update_and_double_create(propeller: PropellerClient) -> None:
    assert propeller.get_company("C-1") is None
    created = propeller.create_company(
        company("C-1", tax_number="BE0123456789", email="info@c1.example", debtor_id="1001")
    )
    assert created.id > 0

    found = propeller.get_company("C-1")
    assert found is not None
    assert found.id == created.id
    assert found.name == "Company C-1"
    assert found.tax_number == "BE0123456789"
    assert found.source_id_for(SOURCE) == "C-1"

    updated = propeller.update_company(
        "C-1", PropellerCompanyInput(source_id="C-1", name="Renamed", notes="VIP")
    )
    assert updated.id == created.id
    again = propeller.get_company("C-1")
    assert again is not None
    assert (again.name, again.notes, again.tax_number) == ("Renamed", "VIP", "BE0123456789")

    with pytest.raises(RecordExistsError) as caught:
        propeller.create_company(company("C-1"))
    assert caught.value.vendor_code == "40004"


def test_a_child_before_its_parent_waits_for_it(propeller: PropellerClient) -> None:
    with pytest.raises(DependencyError) as caught:
        propeller.create_company(child_of("P-1", "K-1"))
    assert caught.value.vendor_code == "40007"
    assert propeller.get_company("K-1") is None

    parent = propeller.create_company(company("P-1"))
    child = propeller.create_company(child_of("P-1", "K-1"))
    found = propeller.get_company("K-1")
    assert found is not None
    assert found.id == child.id
    assert found.parent is not None
    assert found.parent.id == parent.id


def test_update_of_a_missing_company_is_record_missing(propeller: PropellerClient) -> None:
    with pytest.raises(RecordMissingError) as caught:
        propeller.update_company("NOPE", PropellerCompanyInput(source_id="NOPE", name="x"))
    assert caught.value.vendor_code == "40006"


def test_delete_moves_to_the_recycle_bin(propeller: PropellerClient) -> None:
    propeller.create_company(company("D-1"))
    propeller.delete_company("D-1")

    assert propeller.get_company("D-1") is None
    with pytest.raises(RecordMissingError) as missing:
        propeller.update_company("D-1", PropellerCompanyInput(source_id="D-1", name="x"))
    assert missing.value.vendor_code == "40006"
    with pytest.raises(RecordMissingError):
        propeller.delete_company("D-1")

    with pytest.raises(PermanentError) as recycled:
        propeller.create_company(company("D-1"))
    assert type(recycled.value) is PermanentError
    assert recycled.value.vendor_code == "40008"
    assert "recycle bin" in (recycled.value.hint or "")

    (outcome,) = propeller.upsert_companies_bulk([company("D-1")])
    assert outcome.error is not None
    assert outcome.error.vendor_code == "40008"


# --------------------------------------------------------------------------- bulk


def test_bulk_of_100_with_one_bad_item(propeller: PropellerClient) -> None:
    items = [company(f"B-{i:03d}", tax_number=f"TX{i}") for i in range(100)]
    items[37] = child_of("NO-SUCH-PARENT", "B-037")
    outcomes = propeller.upsert_companies_bulk(items)

    assert [o.key for o in outcomes] == [f"B-{i:03d}" for i in range(100)]
    failed = [o for o in outcomes if not o.ok]
    assert [o.index for o in failed] == [37]
    assert type(failed[0].error) is DependencyError
    assert failed[0].error.vendor_code == "40007"
    assert all(o.action == "create" and o.id for o in outcomes if o.ok)
    assert propeller.get_company("B-036") is not None
    assert propeller.get_company("B-037") is None
    assert propeller.get_company("B-099") is not None

    second = propeller.upsert_companies_bulk([company("B-001", notes="again")])
    assert (second[0].action, second[0].id) == ("update", outcomes[1].id)


def test_bulk_parent_earlier_in_the_same_call_exists_for_the_child(
    propeller: PropellerClient,
) -> None:
    outcomes = propeller.upsert_companies_bulk([company("BP"), child_of("BP", "BK")])
    assert [o.ok for o in outcomes] == [True, True]
    child = propeller.get_company("BK")
    assert child is not None
    assert child.parent is not None
    assert child.parent.id == outcomes[0].id


def test_bulk_batches_above_the_batch_size(make_propeller: Factory) -> None:
    client = make_propeller(bulk_batch_size=7)
    outcomes = client.upsert_companies_bulk([company(f"S-{i}") for i in range(20)])
    assert [o.index for o in outcomes] == list(range(20))
    assert all(o.ok for o in outcomes)
    assert len({o.id for o in outcomes}) == 20


# ------------------------------------------------------------------------- search


def test_search_by_date_modified_pages_to_the_end(
    make_propeller: Factory, control: httpx.Client
) -> None:
    client = make_propeller(page_size=4)
    since = datetime.now(UTC) - timedelta(seconds=2)
    outcomes = client.upsert_companies_bulk([company(f"Q-{i:02d}") for i in range(10)])
    assert all(o.ok for o in outcomes)
    searches_before = route_count(control, "POST", "search")

    found = list(client.search_companies(modified_from=since))
    assert route_count(control, "POST", "search") - searches_before == 3  # 4 + 4 + 2
    assert sorted(c.id for c in found) == sorted(o.id for o in outcomes if o.id is not None)
    assert sorted(c.source_id_for(SOURCE) or "" for c in found) == [f"Q-{i:02d}" for i in range(10)]
    stamps = [c.date_modified for c in found if c.date_modified is not None]
    assert len(stamps) == 10
    assert all(stamp.tzinfo is not None for stamp in stamps)
    assert stamps == sorted(stamps)

    later = datetime.now(UTC) + timedelta(hours=1)
    assert list(client.search_companies(modified_from=later)) == []
    before = since - timedelta(days=1)
    assert list(client.search_companies(modified_from=before, modified_to=before)) == []


def test_search_leaves_out_deleted_companies(make_propeller: Factory) -> None:
    client = make_propeller(page_size=2)
    since = datetime.now(UTC) - timedelta(seconds=2)
    client.upsert_companies_bulk([company(f"Z-{i}") for i in range(3)])
    client.delete_company("Z-1")
    keys = sorted(
        c.source_id_for(SOURCE) or "" for c in client.search_companies(modified_from=since)
    )
    assert keys == ["Z-0", "Z-2"]


# ---------------------------------------------------------------------- addresses


def address(type_: AddressType, street: str, code: str | None = None) -> PropellerAddressInput:
    return PropellerAddressInput(
        type=type_,
        code=code,
        street=street,
        number="12",
        postal_code="9000",
        city="Gent",
        country="BE",
    )


def test_addresses_create_list_bulk_and_delete(propeller: PropellerClient) -> None:
    propeller.create_company(company("A-1"))

    invoice = propeller.create_address("A-1", address("invoice", "Main street"))
    assert invoice.id > 0
    outcomes = propeller.upsert_addresses_bulk(
        "A-1", [address("delivery", "Dock 1", code="D1"), address("delivery", "Dock 2")]
    )
    assert [(o.key, o.action, o.ok) for o in outcomes] == [
        ("D1", "create", True),
        (None, "create", True),
    ]

    everything = propeller.list_addresses("A-1")
    assert len(everything) == 3
    deliveries = propeller.list_addresses("A-1", type="delivery")
    assert sorted(a.street or "" for a in deliveries) == ["Dock 1", "Dock 2"]

    (update,) = propeller.upsert_addresses_bulk("A-1", [address("delivery", "Dock 9", code="D1")])
    assert (update.action, update.id) == ("update", outcomes[0].id)
    streets = sorted(a.street or "" for a in propeller.list_addresses("A-1", type="delivery"))
    assert streets == ["Dock 2", "Dock 9"]

    propeller.delete_address("A-1", invoice.id)
    assert [a.id for a in propeller.list_addresses("A-1", type="invoice")] == []
    with pytest.raises(RecordMissingError) as caught:
        propeller.delete_address("A-1", invoice.id)
    assert caught.value.vendor_code == "90006"


def test_an_address_for_a_missing_company_waits_for_it(propeller: PropellerClient) -> None:
    # Company errors table: 40007 "is typical when working with company sub-resources
    # (e.g. attributes, addresses)".
    with pytest.raises(DependencyError) as caught:
        propeller.create_address("GHOST", address("invoice", "Nowhere"))
    assert caught.value.vendor_code == "40007"
