"""The README's commands on a machine as a newcomer has it: the system's own Python, no uv.

Debian's Python (3.11, PEP 668 "externally managed") refuses ``pip install`` outside a
virtual environment, and a TLS-inspecting proxy is only trusted through the system's trust
store: ``scripts/_bootstrap.sh`` must get uv into ``.tools/`` and run it on the system's
certificates, from a checkout that has neither ``.tools/`` nor ``.venv``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.stack import REPO

SYSTEM_PYTHON = Path("/usr/bin/python3")
# The system's directories only: no pyenv, no ~/.local/bin, nothing that holds a uv.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
def checkout() -> Iterator[Path]:
    """The repository as a fresh clone of the working tree holds it, in a throwaway directory.

    The files git would commit (tracked or new, not ignored), copied as they are in the working
    tree, so the test runs the scripts being edited; ``.tools/``, ``.venv`` and caches stay
    behind. A plain temporary directory, not ``tmp_path``: uv's cache, ``.tools/`` and the venv
    come to some 400 MB, which pytest would otherwise keep for three runs.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    with tempfile.TemporaryDirectory(prefix="erpsync-bootstrap-") as tmp:
        root = Path(tmp) / "erpsync"
        for name in filter(None, listed.split("\0")):
            source = REPO / name
            if source.is_file():  # a file deleted in the working tree is not copied
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / name)
        (Path(tmp) / "home").mkdir()
        yield root


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Only PATH, HOME and the locale, as after a fresh login: no SSL_CERT_FILE, no uv."""
    env = {"PATH": SYSTEM_PATH, "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("LC_")})
    env.update(extra)
    return env


def run(
    checkout: Path, command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``command`` in the checkout, to its end (the first run downloads uv and the packages)."""
    return subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.integration
def test_the_readme_demo_runs_on_the_system_python_from_a_clean_environment(
    checkout: Path,
) -> None:
    env = clean_env(checkout.parent / "home")
    assert shutil.which("uv", path=env["PATH"]) is None, "a uv is reachable: nothing to test"
    python = shutil.which("python3", path=env["PATH"])
    assert python is not None
    assert Path(python).resolve() == SYSTEM_PYTHON.resolve()
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").exists(), "the system Python is not PEP 668's"

    demo = run(checkout, ["scripts/demo", "--records", "200"], env)
    assert demo.returncode == 0, (demo.stdout[-2000:], demo.stderr[-3000:])
    assert "installing uv into .tools/" in demo.stderr
    assert (checkout / ".tools" / "bin" / "uv").exists()
    assert (checkout / ".venv").is_dir()

    # A second run reuses .tools/ (no pip), and runs uv on the system's trust store...
    probe = ["bash", "-c", '. scripts/_bootstrap.sh && command -v uv && echo "[$UV_SYSTEM_CERTS]"']
    again = run(checkout, probe, env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [str(checkout / ".tools" / "bin" / "uv"), "[1]"]
    assert "installing" not in again.stderr
    # ...unless the user chose otherwise.
    for chosen in ({"UV_SYSTEM_CERTS": "false"}, {"UV_NATIVE_TLS": "0"}):
        kept = run(checkout, probe, clean_env(checkout.parent / "home", **chosen))
        assert kept.returncode == 0, kept.stderr
        expected = "[false]" if "UV_SYSTEM_CERTS" in chosen else "[]"
        assert kept.stdout.split()[-1] == expected


def test_a_python_without_venv_gets_a_message_naming_the_package_to_install(
    checkout: Path,
) -> None:
    # Debian without python3-venv: `venv` imports, `ensurepip` does not (it is in that package).
    stub = checkout.parent / "no-ensurepip"
    stub.mkdir()
    (stub / "ensurepip.py").write_text("raise ModuleNotFoundError('No module named ensurepip')\n")
    env = clean_env(checkout.parent / "home", PYTHONPATH=str(stub))

    demo = run(checkout, ["scripts/demo", "--records", "200"], env)

    assert demo.returncode == 1
    assert "python3-venv" in demo.stderr
    assert "sudo apt-get install python3-venv" in demo.stderr
    assert demo.stdout == ""
    assert not (checkout / ".tools").exists()
    assert not (checkout / ".venv").exists()
