"""MAD results in pytest-html reports (``--html=report.html``), through pytest-html's own hooks.

Registered by ``pytest_configure`` only when pytest-html is installed and active (its hooks are
unknown to pytest otherwise). Adds a sortable *Performance* column (``812.4 tokens/s``; empty for
tests that are not models, ``none`` for a model without a value) and, as pytest-html links, the
model's run log (relative to the report's directory) and, for a failed model, its log tail as a
text extra. The values come from the ``mad_result`` a model's report carries, so the column is
filled under ``-n`` (xdist) as well.
"""
from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path

import pytest

_HEADER = '<th class="sortable" data-column-type="performance">Performance</th>'


class HtmlReportHooks:
    """pytest-html hooks; ``report_path``: the ``--html`` file (links are made relative to its folder)."""

    def __init__(self, report_path: str | None) -> None:
        self.report_dir = Path(report_path).absolute().parent if report_path else None

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, _HEADER)

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        cells.insert(2, f'<td class="col-performance">{html.escape(performance_text(report))}</td>')

    @pytest.hookimpl(tryfirst=True)  # before pytest-html reads the report's extras
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = getattr(report, "mad_result", None)
        if not isinstance(result, dict) or report.when == "teardown":
            return
        from pytest_html import extras

        found = list(getattr(report, "extras", []))
        log = str(result.get("log_path") or "")
        if log and Path(log).is_file():
            found.append(extras.url(self._link(Path(log)), name="log"))
        if result.get("status") == "FAILURE" and result.get("log_tail"):
            found.append(extras.text(str(result["log_tail"]), name="log tail"))
        report.extras = found  # type: ignore[attr-defined]

    def _link(self, path: Path) -> str:
        if self.report_dir is None:
            return path.absolute().as_uri()
        try:
            return urllib.parse.quote(os.path.relpath(path.absolute(), self.report_dir).replace(os.sep, "/"))
        except ValueError:  # another drive (Windows)
            return path.absolute().as_uri()


def performance_text(report: pytest.TestReport) -> str:
    """``812.4 tokens/s`` for a model's report, ``none`` without a value, '' for other tests."""
    result = getattr(report, "mad_result", None)
    if not isinstance(result, dict):
        return ""
    value = str(result.get("performance") or "")
    return f"{value} {result.get('metric') or ''}".strip() if value else "none"


def register(config: pytest.Config) -> None:
    """Register :class:`HtmlReportHooks` when pytest-html is installed and writes a report (on the
    controller: an xdist worker's reports reach it with their ``mad_result``)."""
    if config.pluginmanager.hasplugin("html") and getattr(config.option, "htmlpath", None):
        config.pluginmanager.register(HtmlReportHooks(config.option.htmlpath), "madengine-html")
