"""The HIPE adapter against the HIPE simulator over real HTTP on 127.0.0.1.

Both sides were written from the vendor documentation and docs/sandbox-conventions.md
without reading each other; these tests are where the two readings meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from adapters.hipe import (
    HipeClient,
    HipeCompanyImportRow,
    HipeCompanyInput,
    HipeContactInput,
    HipeCustomFieldNode,
)
from erpsync.errors import (
    AmbiguousMatchError,
    AuthError,
    RecordMissingError,
    TransientError,
)
from erpsync.settings import HipeSettings
from simulators.hipe import HipeSimulator
from simulators.server import RunningSandbox, SandboxEndpoint

pytestmark = pytest.mark.integration

TOKEN = "sandbox-token"
TRICKY_NAME = 'Dupont & Fils "Émballages" 100% +'
MISSING_ID = 987_654_321


@pytest.fixture(scope="module")
def endpoint() -> Iterator[SandboxEndpoint]:
    with RunningSandbox(simulators={"hipe": HipeSimulator()}) as running:
        yield running.endpoints["hipe"]


@pytest.fixture
def control(endpoint: SandboxEndpoint) -> Iterator[httpx.Client]:
    """The simulator's /_sandbox surface, reset before each test."""
    with httpx.Client(base_url=endpoint.url + "/_sandbox", timeout=30) as client:
        client.post("/reset").raise_for_status()
        yield client


class HipeFactory:
    """Builds clients on the simulator the way the worker does, and closes them after."""

    def __init__(self, endpoint: SandboxEndpoint) -> None:
        self.endpoint = endpoint
        self.opened: list[httpx.Client] = []

    def __call__(self, *, token: str = TOKEN, page_size: int = 100) -> HipeClient:
        settings = HipeSettings(
            base_url=self.endpoint.api_url,
            access_token=SecretStr(token),
            page_size=page_size,
            import_poll_interval_s=0.05,
            import_timeout_s=120,
        )
        http = make_client(settings)
        self.opened.append(http)
        return HipeClient(http, settings)


@pytest.fixture
def clients(endpoint: SandboxEndpoint, control: httpx.Client) -> Iterator[HipeFactory]:
    factory = HipeFactory(endpoint)
    yield factory
    for http in factory.opened:
        http.close()


@pytest.fixture
def hipe(clients: HipeFactory) -> HipeClient:
    return clients()


def test_check_passes_with_the_sandbox_token(hipe: HipeClient) -> None:
    assert hipe.check()


def test_wrong_token_is_an_auth_error_without_the_token_in_it(clients: HipeFactory) -> None:
    wrong = clients(token="not-the-sandbox-token-93b1")
    for call in (wrong.check, lambda: wrong.find_company("E1")):
        with pytest.raises(AuthError) as caught:
            call()
        assert caught.value.status_code == 401
        assert "not-the-sandbox-token-93b1" not in str(caught.value)
        assert "not-the-sandbox-token-93b1" not in str(caught.value.to_dict())


def test_the_issue_company_is_found_by_external_id_and_by_name(hipe: HipeClient) -> None:
    hipe.create_company(HipeCompanyInput(name="Dupont", external_id="ERP-OTHER"))
    made = hipe.create_company(HipeCompanyInput(name=TRICKY_NAME, external_id="ERP-64000"))
    assert made.name == TRICKY_NAME
    found = hipe.find_company("ERP-64000")
    assert found is not None
    assert found.id == made.id
    assert found.name == TRICKY_NAME
    by_name = hipe.search_companies_by_name(TRICKY_NAME)
    assert [c.id for c in by_name] == [made.id]
    assert by_name[0].name == TRICKY_NAME
    # $contL: a case-insensitive substring, quotes and ampersand included
    assert made.id in {c.id for c in hipe.search_companies_by_name('fils "émballages" 100% +')}


@pytest.mark.parametrize(
    "external_id",
    [TRICKY_NAME, "a+b c", "50% & more=yes;#x?y", "מפעל 🚀", "back\\slash 'q'"],
)
def test_awkward_external_ids_round_trip(hipe: HipeClient, external_id: str) -> None:
    made = hipe.create_company(HipeCompanyInput(name="Awkward", external_id=external_id))
    hipe.create_company(HipeCompanyInput(name="Near miss", external_id=external_id + "x"))
    found = hipe.find_company(external_id)
    assert found is not None
    assert found.id == made.id
    assert found.external_id == external_id


def test_matching_is_on_external_id_not_on_a_name_containing_it(hipe: HipeClient) -> None:
    hipe.create_company(HipeCompanyInput(name="ERP-1 Holding", external_id="HOLD"))
    assert hipe.find_company("ERP-1") is None
    own = hipe.create_company(HipeCompanyInput(name="Own", external_id="ERP-1"))
    found = hipe.find_company("ERP-1")
    assert found is not None
    assert found.id == own.id


def test_two_creates_with_one_external_id_are_ambiguous_until_one_is_archived(
    hipe: HipeClient,
) -> None:
    first = hipe.create_company(HipeCompanyInput(name="First", external_id="DUP-9"))
    second = hipe.create_company(HipeCompanyInput(name="Second", external_id="DUP-9"))
    assert {c.id for c in hipe.find_companies_by_external_id("DUP-9")} == {first.id, second.id}
    with pytest.raises(AmbiguousMatchError) as caught:
        hipe.find_company("DUP-9")
    assert caught.value.hint is not None
    assert "DUP-9" in caught.value.hint
    hipe.archive_company(second.id)
    found = hipe.find_company("DUP-9")
    assert found is not None
    assert found.id == first.id


def test_get_update_archive_unarchive(hipe: HipeClient) -> None:
    parent = hipe.create_company(HipeCompanyInput(name="Parent", external_id="P-1"))
    made = hipe.create_company(
        HipeCompanyInput(
            name="Child",
            external_id="C-1",
            parent_id=parent.id,
            email="child@example.com",
            website="https://child.example",
        )
    )
    assert made.parent_id == parent.id
    assert made.archived is False
    assert made.created_at is not None
    got = hipe.get_company(made.id)
    assert got is not None
    assert (got.name, got.external_id, got.email) == ("Child", "C-1", "child@example.com")
    assert hipe.get_company(MISSING_ID) is None

    updated = hipe.update_company(made.id, HipeCompanyInput(name="Child renamed", vat="FR1"))
    assert (updated.name, updated.vat) == ("Child renamed", "FR1")
    assert updated.email == "child@example.com", "PATCH leaves unsent fields alone"
    assert updated.updated_at is not None
    assert got.updated_at is not None
    assert updated.updated_at >= got.updated_at

    archived = hipe.archive_company(made.id)
    assert archived.archived is True
    still_visible = hipe.get_company(made.id)
    assert still_visible is not None
    assert still_visible.archived is True
    found = hipe.find_company("C-1")
    assert found is not None
    assert found.archived is True, "an archived company is found, so the sync can unarchive it"
    restored = hipe.unarchive_company(made.id)
    assert restored.archived is False


def test_writes_to_a_missing_company_are_record_missing(hipe: HipeClient) -> None:
    with pytest.raises(RecordMissingError):
        hipe.update_company(MISSING_ID, HipeCompanyInput(name="x"))
    with pytest.raises(RecordMissingError):
        hipe.archive_company(MISSING_ID)
    with pytest.raises(RecordMissingError):
        hipe.unarchive_company(MISSING_ID)


def test_changed_since_pages_to_the_end_in_order(clients: HipeFactory) -> None:
    hipe = clients(page_size=2)
    before = datetime.now(UTC) - timedelta(minutes=5)
    made = [
        hipe.create_company(HipeCompanyInput(name=f"Changed {i}", external_id=f"CH-{i}"))
        for i in range(5)
    ]
    everything = list(hipe.iter_companies_changed_since(before))
    assert {c.id for c in everything} == {c.id for c in made}
    assert len(everything) == len(made), "each company once"
    keys = [(c.updated_at, c.id) for c in everything if c.updated_at is not None]
    assert len(keys) == len(everything)
    assert keys == sorted(keys), "ordered by updatedAt, then id"

    touched = hipe.update_company(made[1].id, HipeCompanyInput(phone="+33 1 00 00 00 00"))
    assert touched.updated_at is not None
    since = touched.updated_at
    recent = list(hipe.iter_companies_changed_since(since))
    assert touched.id in {c.id for c in recent}
    assert all(c.updated_at is not None and c.updated_at >= since for c in recent)
    expected = {c.id for c in everything if c.updated_at and c.updated_at >= since} | {touched.id}
    assert {c.id for c in recent} == expected
    assert list(hipe.iter_companies_changed_since(datetime.now(UTC) + timedelta(hours=1))) == []


def test_contacts_find_create_update_archive_unarchive(hipe: HipeClient) -> None:
    employer = hipe.create_company(HipeCompanyInput(name="Employer", external_id="EMP-1"))
    made = hipe.create_contact(
        HipeContactInput(
            email="zoe@example.com",
            first_name="Zoé",
            last_name="Ñandú",
            external_id="PERS-1",
            collaboration_ids=[employer.id],
        )
    )
    assert (made.first_name, made.last_name, made.external_id) == ("Zoé", "Ñandú", "PERS-1")
    found = hipe.find_contact("PERS-1")
    assert found is not None
    assert found.id == made.id
    assert hipe.find_contact("PERS-2") is None
    assert hipe.get_contact(made.id) is not None

    updated = hipe.update_contact(made.id, HipeContactInput(job="Buyer"))
    assert updated.job == "Buyer"
    assert updated.email == "zoe@example.com"
    assert hipe.archive_contact(made.id).archived is True
    assert hipe.unarchive_contact(made.id).archived is False
    with pytest.raises(RecordMissingError):
        hipe.update_contact(MISSING_ID, HipeContactInput(job="x"))
    with pytest.raises(RecordMissingError):
        hipe.archive_contact(MISSING_ID)

    hipe.create_contact(HipeContactInput(email="twin@example.com", external_id="PERS-1"))
    with pytest.raises(AmbiguousMatchError):
        hipe.find_contact("PERS-1")


def test_custom_field_nodes_are_listed(hipe: HipeClient) -> None:
    nodes = hipe.custom_field_nodes()
    assert all(isinstance(node, HipeCustomFieldNode) for node in nodes)
    assert len({node.id for node in nodes}) == len(nodes)


def test_csv_import_of_hundreds_of_rows_with_one_bad_row(hipe: HipeClient) -> None:
    existing = hipe.create_company(HipeCompanyInput(name="Before import", external_id="IMP-0"))
    hipe.create_company(HipeCompanyInput(name="Twin A", external_id="IMP-DUP"))
    hipe.create_company(HipeCompanyInput(name="Twin B", external_id="IMP-DUP"))

    rows = [HipeCompanyImportRow(external_id="IMP-0", name="Updated by import")]
    rows += [HipeCompanyImportRow(external_id="IMP-PARENT", name="Import parent")]
    rows += [
        HipeCompanyImportRow(
            external_id="IMP-CHILD", name="Import child", parent_external_id="IMP-PARENT"
        ),
        HipeCompanyImportRow(
            external_id="IMP-TRICKY", name=TRICKY_NAME, website="https://a.b/?x=1,2"
        ),
        HipeCompanyImportRow(external_id="IMP-MULTI", name="Line one\nline two; «ünïcode» 🚀"),
        HipeCompanyImportRow(external_id="IMP-FORMULA", name='=HYPERLINK("http://evil")'),
        HipeCompanyImportRow(external_id="IMP-DUP", name="Which twin?"),
    ]
    rows += [
        HipeCompanyImportRow(external_id=f"IMP-{i}", name=f"Imported {i}", email=f"c{i}@x.test")
        for i in range(1, 294)
    ]
    assert len(rows) == 300
    bad_row = next(i for i, r in enumerate(rows, start=1) if r.external_id == "IMP-DUP")

    result = hipe.import_companies(rows)

    assert result.status in (4, 8)
    assert result.total == 300
    assert result.updated == 1
    assert result.created == 298
    assert [(e.row, e.external_id) for e in result.errors] == [(bad_row, "IMP-DUP")]
    assert result.failed_external_ids == ["IMP-DUP"]

    again = hipe.find_company("IMP-0")
    assert again is not None
    assert (again.id, again.name) == (existing.id, "Updated by import")
    parent = hipe.find_company("IMP-PARENT")
    child = hipe.find_company("IMP-CHILD")
    assert parent is not None
    assert child is not None
    assert child.parent_id == parent.id, "a parent earlier in the file exists for its child"
    tricky = hipe.find_company("IMP-TRICKY")
    assert tricky is not None
    assert (tricky.name, tricky.website) == (TRICKY_NAME, "https://a.b/?x=1,2")
    multi = hipe.find_company("IMP-MULTI")
    assert multi is not None
    assert multi.name == "Line one\nline two; «ünïcode» 🚀"
    last = hipe.find_company("IMP-293")
    assert last is not None
    assert last.email == "c293@x.test"
    assert [c.id for c in hipe.search_companies_by_name(TRICKY_NAME)] == [tricky.id]


def test_unavailable_hipe_is_transient_with_retry_after(
    hipe: HipeClient, control: httpx.Client
) -> None:
    rule = {"statuses": [503], "retry_after_s": 3, "count": 1, "path": "/api/companies*"}
    control.post("/faults", json=rule).raise_for_status()
    with pytest.raises(TransientError) as caught:
        hipe.find_company("E1")
    assert caught.value.status_code == 503
    assert caught.value.retry_after_s == 3
    assert hipe.find_company("E1") is None, "the next call goes through"
