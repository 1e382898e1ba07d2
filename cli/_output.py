"""Output helpers shared by commands: Rich for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
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


def read_progress(*, quiet: bool) -> tuple[Progress, Callable[[str, str, int], None]]:
    """A spinner per thing read (``what`` ``name``: so many records) on stderr, hidden when
    ``quiet`` or stderr is not a terminal, and the callback that moves it."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )
    bars: dict[tuple[str, str], Any] = {}

    def on_progress(what: str, name: str, count: int) -> None:
        bar = bars.get((what, name))
        if bar is None:
            bar = bars[(what, name)] = progress.add_task(f"{what} {name}", total=None)
        progress.update(bar, completed=count)

    return progress, on_progress


def print_examples(out: Console, heading: str, lines: Sequence[str], total: int) -> None:
    """A heading, then an indented line per example, then how many more there are of
    ``total`` (a report lists a few examples of each kind; ``--json`` has them all)."""
    out.print(heading)
    for line in lines:
        out.print(f"    {line}", highlight=False)
    more = total - len(lines)
    if more > 0:
        out.print(f"    … and {more:,} more (--limit, --json)")
