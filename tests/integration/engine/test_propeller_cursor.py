"""The Propeller cursor stream over real HTTP: lookback, equal timestamps, no repeats."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from adapters import make_client
from adapters.propeller import PropellerClient, PropellerCompanyInput
from erpsync.settings import PropellerSettings, Settings
from producers.base import Producer
from producers.propeller import PropellerCompanies
from simulators.propeller import PropellerSimulator
from simulators.server import RunningSandbox
from state.keys import Keys
from state.messages import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def propeller() -> Iterator[tuple[PropellerClient, httpx.Client]]:
    with RunningSandbox(simulators={"propeller": PropellerSimulator()}) as sandbox:
        settings = PropellerSettings(
            base_url=sandbox.endpoints["propeller"].api_url,
            client_id="sandbox",
            client_secret="sandbox-secret",  # type: ignore[arg-type]
            page_size=3,
            source="SHOP",  # the shop's own companies (erpsync's own writes are not read)
        )
        with make_client(settings) as http:
            yield PropellerClient(http, settings), http


def test_cursor_reads_changes_once_across_pages_of_equal_timestamps(
    propeller: tuple[PropellerClient, httpx.Client], redis_url: str, run_id: str
) -> None:
    client, _ = propeller
    for n in range(8):  # created within a second or two: equal dateModified across pages
        client.create_company(
            PropellerCompanyInput(source_id=f"P{n}", source="SHOP", language="EN", name=f"Co {n}")
        )
    keys = Keys(f"{run_id}cur")
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    settings = Settings(redis_url=redis_url, key_prefix=keys.prefix)
    app = create_app(settings)
    producer = Producer(app, connection, keys)
    stream = PropellerCompanies(
        "pc", "propeller", "customer", [], client=client, page_size=3, lookback_s=120
    )
    try:
        first = producer.poll(stream)
        assert first.events == 8
        assert connection.get(keys.cursor("propeller", "customer")) is not None, "bookmark saved"

        again = producer.poll(stream)
        assert again.records == 8, "the lookback reads the same records again"
        assert again.events == 0, "…and emits nothing for them"

        client.update_company("P3", PropellerCompanyInput(source_id="P3", name="Co 3 renamed"))
        client.create_company(
            PropellerCompanyInput(source_id="P9", source="SHOP", language="EN", name="Co 9")
        )
        third = producer.poll(stream)
        assert third.events == 2, "exactly the changed and the new company"
    finally:
        for key in connection.scan_iter(match=f"{keys.prefix}:*"):
            connection.delete(key)
        connection.close()
        app.close()
