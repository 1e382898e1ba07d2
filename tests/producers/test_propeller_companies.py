"""Issue 15, point 5: the Propeller stream keys companies in Propeller's namespace and leaves
out the companies erpsync wrote (they are another flow's records, not Propeller's changes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters import make_client
from adapters.propeller import PropellerClient
from erpsync.settings import PropellerSettings
from producers.propeller import PropellerCompanies

OURS = "ERPSYNC"


def company(id_: int, name: str, modified: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "name": name,
        "language": "EN",
        "email": f"{name.lower()}@example.com",
        "phone": "+31 20 555 0000",
        "taxNumber": f"NL{id_}",
        "dateModified": modified,
        **extra,
    }


@dataclass
class FakePropeller:
    """A token endpoint, ``POST /v2/companies/search`` serving ``companies`` in one page, and
    ``GET /v2/companies/id/<id>`` serving ``by_id`` (40006 for the others)."""

    companies: list[dict[str, Any]]
    by_id: dict[int, dict[str, Any]] = field(default_factory=dict)
    reads: list[int] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 1800})
        if request.url.path.startswith("/v2/companies/id/"):
            company_id = int(request.url.path.rsplit("/", 1)[1])
            self.reads.append(company_id)
            if company_id in self.by_id:
                return httpx.Response(200, json={"data": self.by_id[company_id]})
            error = {"code": 40006, "status": 404, "type": "CompanyNotFound", "messages": []}
            return httpx.Response(404, json={"error": error})
        assert request.url.path == "/v2/companies/search"
        page = json.loads(request.content)["page"]
        data = self.companies if page == 1 else []
        total = len(self.companies)
        return httpx.Response(200, json={"data": data, "page": page, "pages": 1, "total": total})


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    opened: list[httpx.Client] = []
    yield opened
    for http in opened:
        http.close()


def stream_of(fake: FakePropeller, clients: list[httpx.Client]) -> PropellerCompanies:
    settings = PropellerSettings(
        base_url="https://propeller.test", client_id="c", client_secret=SecretStr("s"), source=OURS
    )
    http = make_client(settings, transport=httpx.MockTransport(fake))
    clients.append(http)
    return PropellerCompanies(
        "shop",
        "propeller",
        "customer",
        ["hipe"],
        client=PropellerClient(http, settings),
        source_name=OURS,
    )


def records(stream: PropellerCompanies) -> list[tuple[str, dict[str, Any], str | None]]:
    return [(r.key, r.payload, r.parent_key) for page in stream.pages() for r in page]


def test_companies_erpsync_wrote_are_left_out_and_the_others_keyed_in_propellers_namespace(
    clients: list[httpx.Client],
) -> None:
    fake = FakePropeller(
        [
            company(
                42, "Ours", "2026-03-01T10:00:00", sources=[{"source": OURS, "sourceId": "42"}]
            ),
            company(43, "Flat", "2026-03-01T10:00:01", source=OURS, sourceId="C-9"),
            company(
                44, "Shop", "2026-03-01T10:00:02", sources=[{"source": "SHOP", "sourceId": "S1"}]
            ),
            company(45, "Manual", "2026-03-01T10:00:03"),
        ]
    )
    assert records(stream_of(fake, clients)) == [
        (
            "propeller:44",
            {
                "key": "propeller:44",
                "name": "Shop",
                "parent_key": None,
                "email": "shop@example.com",
                "phone": "+31 20 555 0000",
                "tax_number": "NL44",
                "language": "EN",
                "active": True,
                "address": None,
                "custom": {},
            },
            None,
        ),
        (
            "propeller:45",
            {
                "key": "propeller:45",
                "name": "Manual",
                "parent_key": None,
                "email": "manual@example.com",
                "phone": "+31 20 555 0000",
                "tax_number": "NL45",
                "language": "EN",
                "active": True,
                "address": None,
                "custom": {},
            },
            None,
        ),
    ]


def test_the_bookmark_moves_past_companies_left_out(clients: list[httpx.Client]) -> None:
    fake = FakePropeller(
        [
            company(44, "Shop", "2026-03-01T10:00:02"),
            company(
                42, "Ours", "2026-03-01T10:05:00", sources=[{"source": OURS, "sourceId": "42"}]
            ),
        ]
    )
    stream = stream_of(fake, clients)
    assert [key for key, _, _ in records(stream)] == ["propeller:44"]
    assert stream.bookmark() == "2026-03-01T10:05:00+00:00"


def test_a_parent_erpsync_wrote_is_named_by_its_own_key_another_in_propellers_namespace(
    clients: list[httpx.Client],
) -> None:
    ours = {"source": OURS, "sourceId": "C-60"}
    fake = FakePropeller(
        [
            company(42, "Ours", "2026-03-01T10:00:00", sources=[{**ours, "sourceId": "C-1"}]),
            company(44, "Shop", "2026-03-01T10:00:00"),
            company(50, "Under ours", "2026-03-01T10:00:01", parent={"id": 42}),
            company(51, "Under shop", "2026-03-01T10:00:01", parent={"id": 44}),
            company(52, "Under unseen ours", "2026-03-01T10:00:02", parent={"id": 60}),
            company(53, "Again", "2026-03-01T10:00:02", parent={"id": 60}),
            company(54, "Under unseen shop", "2026-03-01T10:00:03", parent={"id": 62}),
            company(55, "Under gone", "2026-03-01T10:00:03", parent={"id": 61}),
            company(56, "Named in full", "2026-03-01T10:00:04",
                    parent={"id": 70, "sourceId": "C-7", "source": OURS}),
        ],
        by_id={
            60: company(60, "Unseen ours", "2026-01-01T00:00:00", sources=[ours]),
            62: company(62, "Unseen shop", "2026-01-01T00:00:00"),
        },
    )  # fmt: skip
    found = {key: (p["parent_key"], parent) for key, p, parent in records(stream_of(fake, clients))}
    assert found == {
        "propeller:44": (None, None),
        "propeller:50": ("C-1", "C-1"),
        "propeller:51": ("propeller:44", "propeller:44"),
        "propeller:52": ("C-60", "C-60"),
        "propeller:53": ("C-60", "C-60"),
        "propeller:54": ("propeller:62", "propeller:62"),
        "propeller:55": ("propeller:61", "propeller:61"),
        "propeller:56": ("C-7", "C-7"),
    }
    assert fake.reads == [60, 62, 61], "a parent not paged is read by id, once"
