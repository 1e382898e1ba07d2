"""``erpsync reconcile`` run as operators run it, in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.stack import REPO, Pipeline


def reconcile(p: Pipeline, flow: str) -> tuple[int, dict[str, Any]]:
    """``erpsync reconcile FLOW --json`` as an operator runs it: exit status, report."""
    done = subprocess.run(
        [sys.executable, "-m", "cli", "reconcile", flow, "--json", "--limit", "0"],
        cwd=REPO,
        env=p.env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr.decode(errors="replace")[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def drift(report: dict[str, Any]) -> dict[str, Any]:
    """Per target, what reconcile found wrong (empty: no drift)."""
    found: dict[str, Any] = {}
    for target, result in report["targets"].items():
        kinds = {k: result[k][:5] for k in ("missing", "different", "orphaned", "duplicates")}
        wrong = {k: v for k, v in kinds.items() if v}
        if result.get("not_checked") is not None:
            wrong["not_checked"] = result["not_checked"]
        if wrong:
            found[target] = wrong
    return found
