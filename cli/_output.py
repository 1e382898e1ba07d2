"""Output helpers shared by commands: Rich for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


class _Terminal(Console):
    """A console that measures the terminal (``COLUMNS``, ``LINES``, the tty) at each write.

    Rich reads ``COLUMNS`` once, when a console is made, and keeps it: made at import, the
    width was that of whichever in-process run (a test's ``CliRunner``, say) imported this
    module first, and every later command in the process printed at that width.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr)
        self._width = self._height = None  # measured by ``size`` at each use instead


console = _Terminal()
err_console = _Terminal(stderr=True)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (for ``--json``)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(text: str, style: str | None = None, *, err: bool = False) -> None:
    """A message line: never wrapped (ids and commands stay whole), never read as markup."""
    (err_console if err else console).print(
        text, style=style, soft_wrap=True, highlight=False, markup=False
    )


def grid(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    flexible: str | None = None,
    fold: bool = False,
) -> Table:
    """A table whose columns keep their full width but ``flexible``, which takes the rest.

    Ids, codes and keys are never cut (an operator copies them); the flexible column (an
    error message, a note) is cut with an ellipsis, or folded when ``fold``.
    """
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
        collapse_padding=True,
    )
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(columns)]
    # Rich shrinks every column of a table too wide for the terminal, even to nothing: give
    # the flexible column what the others leave instead.
    fixed = sum(w for name, w in zip(columns, widths, strict=True) if name != flexible)
    left = max(8, console.width - fixed - 2 * len(columns))
    for name, width in zip(columns, widths, strict=True):
        if name == flexible:
            table.add_column(
                name,
                no_wrap=not fold,
                overflow="fold" if fold else "ellipsis",
                max_width=left,
            )
        else:
            table.add_column(name, no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return table
