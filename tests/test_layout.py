"""The code stays in pieces a reader can hold: outside ``simulators/`` and ``bench/`` (tests
included), no module over 600 lines and no function over 60, unless a one-line
``# long: <reason>`` comment says why (above the function, or near the top of the module).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE_MAX_LINES = 600
FUNCTION_MAX_LINES = 60
#: top-level folders the limits do not apply to (the sandbox and the benchmarks)
EXEMPT = {"simulators", "bench"}
REASON = "# long:"
#: a module's reason stands among its first lines (with its docstring)
MODULE_REASON_WITHIN = 30


def python_files() -> Iterator[Path]:
    """Every module of the repository but the exempt folders (hidden folders such as the
    virtual environment are not walked into)."""
    for folder, dirs, files in os.walk(REPO):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d != "__pycache__" and not (here == REPO and d in EXEMPT)
        )
        for name in sorted(files):
            if name.endswith(".py"):
                yield here / name


def has_reason_above(lines: list[str], first: int) -> bool:
    """A ``# long:`` comment on the line ``first`` (1-based) or in the comments just above."""
    if REASON in lines[first - 1]:
        return True
    index = first - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        if lines[index].strip().startswith(REASON):
            return True
        index -= 1
    return False


def oversized(path: Path, root: Path = REPO) -> list[str]:
    """What in ``path`` is over the limits without a reason (named relative to ``root``)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    rel = path.relative_to(root).as_posix()
    found: list[str] = []
    head = lines[:MODULE_REASON_WITHIN]
    if len(lines) > MODULE_MAX_LINES and not any(line.startswith(REASON) for line in head):
        found.append(f"{rel}: {len(lines)} lines")
    for node in ast.walk(ast.parse(text, filename=str(rel))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = (node.end_lineno or node.lineno) - first + 1
        if length > FUNCTION_MAX_LINES and not has_reason_above(lines, first):
            found.append(f"{rel}:{node.lineno} {node.name}(): {length} lines")
    return found


def test_no_module_or_function_is_over_the_limits_without_a_reason() -> None:
    found = [item for path in python_files() for item in oversized(path)]
    assert found == [], (
        f"over {MODULE_MAX_LINES} lines a module or {FUNCTION_MAX_LINES} a function, "
        f"without a '{REASON} <reason>' comment (split it, or say why):\n" + "\n".join(found)
    )


def test_the_check_sees_an_oversized_function_and_accepts_a_reason(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(FUNCTION_MAX_LINES))
    probe = tmp_path / "probe.py"
    probe.write_text(f"def f() -> None:\n{body}", encoding="utf-8")
    assert oversized(probe, tmp_path) == [f"probe.py:1 f(): {FUNCTION_MAX_LINES + 1} lines"]
    probe.write_text(f"{REASON} a table, one line a case\ndef f() -> None:\n{body}", "utf-8")
    assert oversized(probe, tmp_path) == []
    module = "".join(f"x{i} = {i}\n" for i in range(MODULE_MAX_LINES + 1))
    probe.write_text(module, encoding="utf-8")
    assert oversized(probe, tmp_path) == [f"probe.py: {MODULE_MAX_LINES + 1} lines"]
    probe.write_text(f'"""A table."""\n{REASON} generated data\n{module}', "utf-8")
    assert oversized(probe, tmp_path) == []
