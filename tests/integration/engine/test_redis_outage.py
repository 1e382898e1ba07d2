"""Issue 17, must hold: Redis unreachable for a minute, then back: the worker and the
producer carry on within 10 s of Redis answering again, with no restart by hand (both reach
Redis through a TCP proxy of the test's own, which refuses every connection meanwhile)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
import tomli_w

from bench.stack import TARGETS, Pipeline
from bench.tcp_proxy import TcpProxy
from erpsync.settings import load_settings
from producers.runner import ProducerService
from tests.integration.checks import assert_targets_match_source
from tests.integration.engine.test_customers_flow import seed

pytestmark = pytest.mark.integration

DOWN_S = 60.0
BACK_WITHIN_S = 10.0


def test_worker_and_producer_carry_on_within_10_s_of_redis_answering_again(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    p = make_pipeline()
    seed(p, 6)
    redis_at = urlsplit(p.settings.redis_url)
    link = TcpProxy((redis_at.hostname or "127.0.0.1", redis_at.port or 6379))
    config = json.loads(json.dumps(p.config))
    config["redis_url"] = urlunsplit(redis_at._replace(netloc=f"127.0.0.1:{link.port}"))
    path = p.directory / "via-proxy.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    producer = ProducerService(load_settings(path))
    stop = threading.Event()
    polling = threading.Thread(target=producer.run, args=(1.0, stop), daemon=True)
    try:
        p.start_worker(config=path)
        p.wait_workers(1)
        polling.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.counters("hipe").get("produced", 0) < 6:
            time.sleep(0.2)
        p.wait_converged(timeout_s=60)
        assert_targets_match_source(p)

        link.cut()
        time.sleep(DOWN_S)
        with p.erp() as erp:  # a change made just as Redis answers again
            erp.put(
                "/Entity/Customer/C000003", json={"NomClient": "Back after the outage"}
            ).raise_for_status()
        link.restore()
        back_at = time.monotonic()
        applied = {t: p.counters(t).get("applied", 0) for t in TARGETS}
        while time.monotonic() - back_at < 60 and any(
            p.counters(t).get("applied", 0) <= applied[t] for t in TARGETS
        ):
            time.sleep(0.2)
        took = time.monotonic() - back_at
        assert took < BACK_WITHIN_S, f"the change arrived {took:.1f} s after Redis came back"
        p.wait_converged(timeout_s=30)
        assert_targets_match_source(p)
    finally:
        stop.set()
        link.close()
        polling.join(timeout=30)
        producer.close()
