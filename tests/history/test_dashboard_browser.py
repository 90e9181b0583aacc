"""The dashboard in headless Chromium: it loads with no console message and draws its charts.

Chromium comes from Debian (.ci/setup). Without it these tests skip, except under CI (``CI``
set), where a missing browser is a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_madengine.history.dashboard import write_dashboard
from pytest_madengine.history.store import HistoryStore
from pytest_madengine.records import FAILURE
from pytest_madengine.results.references import parse_references

from .helpers import add_session, result

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DAY = 86400.0


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup installs it (Debian package chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Load ``page`` headless; console messages go to stderr as ``…:CONSOLE:…`` lines."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1280,1000",
               *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_console_errors_are_seen(chromium: str, tmp_path: Path) -> None:
    """The check below would catch a broken page (a script error shows up as a console line)."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>missingFunction();</script></body></html>")
    done = browse(chromium, page, "--dump-dom")
    assert any("Uncaught ReferenceError" in line for line in console_lines(done.stderr)), done.stderr[-2000:]


def test_dashboard_loads_cleanly_and_draws_five_sessions_with_the_band(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "dashboard.html"
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for day, value in enumerate(("900", "950", "1000", "880", "812")):
            status = FAILURE if value == "812" else "SUCCESS"
            add_session(store, f"s{day + 1}", 1_700_000_000 + day * DAY,
                        result("llama", value, status=status, phase="performance", reason="9.8 % below"))
        write_dashboard(store, page, references=parse_references({"llama": {"value": 900, "tolerance": "5%"}},
                                                                 "refs.yaml"))

    dom = browse(chromium, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == []
    chart = dom.stdout[dom.stdout.index('id="chart-0"'):]
    assert 'class="main-svg"' in chart
    assert len(re.findall(r'class="point"', chart)) == 5  # one marker per session
    assert re.search(r'class="shapelayer"><g class="shape-group" data-index="0"[^>]*><path data-index="0"',
                     chart)  # the reference band
    assert len(re.findall(r'class="js-line"', chart)) == 2  # the trend and the dashed reference
    assert "llama · gfx942 × 8" in chart

    shot = tmp_path / "dashboard.png"
    done = browse(chromium, page, f"--screenshot={shot}")
    assert done.returncode == 0 and console_lines(done.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank 1280×1000 page is a few KB
