"""Headless Chromium for HTML reports and dashboards: load a page, read its console, screenshot it.

Chromium comes from Debian (.ci/setup). Without it the tests that use the ``chromium`` fixture
skip, except under CI (``CI`` set), where a missing browser is a failure.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a headless-capable Chromium."""
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup installs it (Debian package chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(chromium: str, page: Path, *args: str, fragment: str = "") -> subprocess.CompletedProcess[str]:
    """Load ``page`` headless (``fragment``: a ``#…`` URL fragment to open it with); console messages
    go to stderr as ``…:CONSOLE…`` lines."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1280,1000",
               *args, page.as_uri() + fragment]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages (errors and logs) among Chromium's stderr lines."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]
