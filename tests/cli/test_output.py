"""The CLI's consoles follow the terminal they print to, at each write."""

from __future__ import annotations

import pytest

from cli._output import _Terminal


def test_a_console_made_under_one_width_prints_at_the_width_of_each_later_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # made while an in-process run (CliRunner) had set an 80-column terminal...
    monkeypatch.setenv("COLUMNS", "80")
    console = _Terminal()
    assert console.width == 80
    # ...a later run in the same process, with a wider one, prints at its own width
    monkeypatch.setenv("COLUMNS", "200")
    assert console.width == 200
    with console.capture() as captured:
        console.print("x" * 150)
    assert captured.get().splitlines() == ["x" * 150]
