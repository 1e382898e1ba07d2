"""``erpsync doctor``: a target's known limits come from its sink (when it can be viewed)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cli._output import console
from cli.diagnose import _print_mappings, flow_mappings
from delivery.engine import ApplyContext, ApplyResult, Sink
from delivery.sinks.view import Observed, View
from erpsync.events import ChangeEvent
from erpsync.settings import Settings

URL = "http://127.0.0.1:1"


class ViewableFake:
    """A sink that can be reconciled and says Atollon cannot clear a contact's e-mail."""

    target = "atollon"

    def handles(self, entity: str) -> bool:
        return entity == "customer"

    def needs_parent(self, event: ChangeEvent) -> bool:
        return False

    def apply(self, event: ChangeEvent, context: ApplyContext) -> ApplyResult:
        raise AssertionError("doctor applies nothing")

    def expected(self, entity: str, payload: Mapping[str, Any]) -> View:
        return {}

    def observed(self, entity: str) -> Iterator[Observed]:
        return iter(())

    def known_limits(self, entity: str) -> list[str]:
        return ["phone", "email"]


class PlainFake(ViewableFake):
    """A sink that cannot be reconciled (no view of its target)."""

    target = "hipe"
    known_limits = None  # type: ignore[assignment]


def settings() -> Settings:
    return Settings.model_validate(
        {
            "systems": {
                "onlineerp": {"base_url": URL, "licence_code": "L", "secret": "s"},
                "hipe": {"base_url": URL, "access_token": "t"},
                "atollon": {"base_url": URL, "instance": "i"},
            },
            "flows": {
                "customers": {
                    "source": "onlineerp",
                    "entity": "customer",
                    "targets": ["hipe", "atollon"],
                }
            },
        }
    )


def test_known_limits_of_a_viewable_sink_are_shown_and_others_have_none() -> None:
    sinks: dict[str, Sink] = {"atollon": ViewableFake(), "hipe": PlainFake()}
    flows = flow_mappings(settings(), sinks)
    targets = flows["customers"]["targets"]
    assert targets["atollon"]["known_limits"] == ["email", "phone"]
    assert targets["hipe"]["known_limits"] == []
    with console.capture() as captured:
        _print_mappings(flows)
    text = captured.get()
    assert "known limits (atollon documents no way to write or clear): email, phone" in text
    assert text.count("known limits") == 1
