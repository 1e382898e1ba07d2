"""A real headless Chromium for the console's browser tests.

Debian's ``chromium`` (/usr/bin/chromium, which .ci/run installs) when the system has one,
else the Chromium that Playwright installs the way its documentation says
(``python -m playwright install chromium``, once, into Playwright's cache).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.integration.conftest import make_pipeline  # noqa: F401 (the integration fixture)

SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def system_chromium() -> str | None:
    for path in SYSTEM_CHROMIUMS:
        if shutil.which(path):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = system_chromium()
    if executable is None:
        subprocess.run(
            [sys.executable, "-m", "playwright", "install", "chromium"], check=True, timeout=600
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()
