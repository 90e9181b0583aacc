"""The dashboard in headless Chromium: it loads with no console message and draws its charts.

The browser and its ``chromium`` fixture come from ``tests/infra/browser.py``.
"""
from __future__ import annotations

import re
from pathlib import Path

from pytest_madengine.history.dashboard import write_dashboard
from pytest_madengine.history.store import HistoryStore
from pytest_madengine.records import FAILURE
from pytest_madengine.results.reference_file import parse_references

from ..infra.browser import browse, console_lines
from .helpers import add_session, result

DAY = 86400.0


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
