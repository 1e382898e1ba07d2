"""Issue 15, point 5: the Propeller stream keys companies in Propeller's namespace and leaves
out the companies erpsync wrote (they are another flow's records, not Propeller's changes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters._http import make_client
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


def serve(companies: list[dict[str, Any]]) -> httpx.MockTransport:
    """A token endpoint and ``POST /v2/companies/search`` serving ``companies`` in one page."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 1800})
        assert request.url.path == "/v2/companies/search"
        page = json.loads(request.content)["page"]
        data = companies if page == 1 else []
        return httpx.Response(
            200, json={"data": data, "page": page, "pages": 1, "total": len(companies)}
        )

    return httpx.MockTransport(handler)


@pytest.fixture
def stream_of() -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def make(companies: list[dict[str, Any]]) -> PropellerCompanies:
        settings = PropellerSettings(
            base_url="https://propeller.test",
            client_id="c",
            client_secret=SecretStr("s"),
            source=OURS,
        )
        http = make_client(settings, transport=serve(companies))
        clients.append(http)
        return PropellerCompanies(
            "shop",
            "propeller",
            "customer",
            ["hipe"],
            client=PropellerClient(http, settings),
            source_name=OURS,
        )

    yield make
    for http in clients:
        http.close()


def records(stream: PropellerCompanies) -> list[tuple[str, dict[str, Any], str | None]]:
    return [(r.key, r.payload, r.parent_key) for page in stream.pages() for r in page]


def test_companies_erpsync_wrote_are_left_out_and_the_others_keyed_in_propellers_namespace(
    stream_of: Any,
) -> None:
    stream = stream_of(
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
    assert records(stream) == [
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


def test_the_bookmark_moves_past_companies_left_out(stream_of: Any) -> None:
    stream = stream_of(
        [
            company(44, "Shop", "2026-03-01T10:00:02"),
            company(
                42, "Ours", "2026-03-01T10:05:00", sources=[{"source": OURS, "sourceId": "42"}]
            ),
        ]
    )
    assert [key for key, _, _ in records(stream)] == ["propeller:44"]
    assert stream.bookmark() == "2026-03-01T10:05:00+00:00"


def test_a_parent_erpsync_wrote_is_named_by_its_own_key_another_in_propellers_namespace(
    stream_of: Any,
) -> None:
    stream = stream_of(
        [
            company(50, "Under ERP", "2026-03-01T10:00:00",
                    parent={"id": 42, "sourceId": "C-1", "source": OURS}),
            company(51, "Under shop", "2026-03-01T10:00:01", parent={"id": 44}),
            company(52, "Under other", "2026-03-01T10:00:02",
                    parent={"id": 46, "sourceId": "S9", "source": "SHOP"}),
        ]
    )  # fmt: skip
    found = {key: (payload["parent_key"], parent) for key, payload, parent in records(stream)}
    assert found == {
        "propeller:50": ("C-1", "C-1"),
        "propeller:51": ("propeller:44", "propeller:44"),
        "propeller:52": ("propeller:46", "propeller:46"),
    }
