"""Fixtures of the integration suite: real Redis, real workers, the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.stack import Pipeline, pipeline_config
from simulators.server import RunningSandbox, make_simulators


@pytest.fixture
def make_pipeline(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    """Build a pipeline on a fresh sandbox; every one is closed after the test."""
    made: list[tuple[Pipeline, RunningSandbox]] = []

    def make(
        *,
        propeller_bulk: str = "guide",
        atollon_match: str = "unclaimed",
        hipe_ids: str = "int",
        **config: Any,
    ) -> Pipeline:
        """``propeller_bulk``, ``atollon_match``, ``hipe_ids``: the sandbox's readings of
        the docs (``make_simulators``)."""
        sandbox = RunningSandbox(
            simulators=make_simulators(
                propeller_bulk=propeller_bulk, atollon_match=atollon_match, hipe_ids=hipe_ids
            )
        )
        sandbox.start()
        directory = tmp_path / f"p{len(made)}"
        directory.mkdir()
        pipeline = Pipeline(sandbox, directory, pipeline_config(sandbox, "x", **config))
        made.append((pipeline, sandbox))
        return pipeline

    yield make
    for pipeline, sandbox in made:
        pipeline.close()
        sandbox.stop()
