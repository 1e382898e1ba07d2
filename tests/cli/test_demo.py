"""``erpsync demo`` as a newcomer runs it: it converges, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.stack import REPO

pytestmark = pytest.mark.integration


def demo_env(tmp: Path, columns: int = 200) -> dict[str, str]:
    """No Redis configured; temporary files go to ``tmp``, to see what the demo leaves there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERPSYNC_")}
    env["COLUMNS"] = str(columns)
    env["TMPDIR"] = str(tmp)
    return env


def run_demo(tmp: Path, *args: str, columns: int = 200) -> str:
    """``erpsync demo ARGS`` to the end; its standard output, once it has exited 0."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", *args],
        cwd=REPO,
        env=demo_env(tmp, columns),
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_demo_converges_and_every_edit_arrives(tmp_path: Path) -> None:
    summary = json.loads(run_demo(tmp_path, "--records", "80", "--json"))
    assert summary["converged"]
    assert summary["edits_arrived"]
    flows = summary["flows"]
    assert flows["customers"]["hipe"]["created"] == 81, "80 seeded + 1 new child"
    assert flows["customers"]["propeller"]["archived"] == 1, "the deactivation"
    assert flows["products"]["atollon"]["created"] == 16
    assert flows["billing"]["onlineerp"]["invoices"] == 5, "4 seeded activities + 1 new"
    assert summary["invoices"] == {
        "issued": 5,
        "recorded_in_atollon": 5,
        "paid": 1,
        "cancelled": 1,
    }, "each recorded in Atollon, the first paid and the last cancelled in the ERP"
    settled = [e["edit"] for e in summary["edits"] if e["edit"].startswith("invoice ")]
    assert [e.split(" ", 2)[2] for e in settled] == ["paid in the ERP", "cancelled in the ERP"]
    moved = [e for e in summary["edits"] if e["edit"].startswith("delivery address")]
    assert [e["edit"].endswith("removed") for e in moved] == [True, False]
    assert " added to " in moved[1]["edit"]
    assert all(e["arrived"] == {"propeller": True, "hipe": True} for e in moved), moved
    # 80 invoice addresses, 0/1/2 delivery addresses for each seeded customer in turn
    erp_addresses = 80 + sum(n % 3 for n in range(80))
    assert summary["addresses"] == dict.fromkeys(("onlineerp", "propeller", "hipe"), erp_addresses)
    people = summary["people"]["onlineerp"]
    assert summary["people"] == dict.fromkeys(("onlineerp", "hipe", "atollon"), people)
    assert 20 <= people <= 80, "one to four people for one customer in four"
    assert flows["contacts"]["hipe"]["created"] == people
    assert flows["contacts"]["atollon"]["created"] == people
    assert flows["contacts"]["hipe"]["archived"] == 1, "the person deactivated"
    personal = [e for e in summary["edits"] if e["edit"].startswith(("job title", "person "))]
    assert [e["arrived"] for e in personal] == [{"hipe": True, "atollon": True}, {"hipe": True}]
    assert all(not row["dead_lettered"] for targets in flows.values() for row in targets.values())
    assert list(tmp_path.iterdir()) == [], "the demo left files behind"


def test_the_summary_fits_an_80_column_terminal_uncut(tmp_path: Path) -> None:
    output = run_demo(tmp_path, "--records", "20", columns=80)
    summary = output[output.index("summary") :]
    assert "…" not in summary, summary
    for word in ("customers", "propeller", "onlineerp", "unchanged", "archived", "invoices"):
        assert word in summary
    assert "recorded in Atollon" in summary
    assert "in HIPE, " in summary.split("people: ", 1)[1], "the people are counted"
    assert max(len(line) for line in summary.splitlines()) <= 80


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone, just not yet reaped
        return stat.read().split()[2] != "Z"


def test_ctrl_c_during_the_demo_leaves_no_process_and_no_redis(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "--records", "2000"],
        cwd=REPO,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "Worker: pid" not in seen and time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        seen += line
    redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", seen).group(1))  # type: ignore[union-attr]
    worker_pid = int(re.search(r"Worker: pid (\d+)", seen).group(1))  # type: ignore[union-attr]
    assert port_open(redis_port)
    assert pid_running(worker_pid)

    time.sleep(2)  # mid-sync
    # Ctrl-C in a terminal under `uv run` (scripts/demo): the terminal's SIGINT, then uv's.
    demo.send_signal(signal.SIGINT)
    time.sleep(0.2)
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=90)
    assert demo.returncode == 130, rest[-2000:]
    assert not pid_running(worker_pid), "the worker outlived the demo"
    assert not port_open(redis_port), "the embedded Redis outlived the demo"
    assert list(tmp_path.iterdir()) == [], "the demo left files behind"
