"""pytest-html reports show MAD results: a Performance column and links to each model's log,
through pytest-html's own hooks, registered only when pytest-html is there (a conftest target
runs the models, so no Docker is needed)."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from tests.infra.browser import browse, console_lines

from .conftest import AMD_CPU, card, write_card_package
from .test_architecture import TOY_TARGET

pytest.importorskip("pytest_html", reason="pytest-html is a test dependency (pip install -e .[test])")

NO_PERFORMANCE = TOY_TARGET.replace('\\nperformance: 42 toys/s\\n', '\\nno number <b>here</b>\\n" if '
                                    'request.card.name == "quiet_model" else f"toy ran {request.card.name}'
                                    '\\nperformance: 42 toys/s\\n')


def run_models(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pkg = write_card_package(pytester.path / "pkg", [card("toy_model", "scripts/run.sh"),
                                                      card("quiet_model", "scripts/run.sh")],
                             {"scripts/run.sh": "exit 0\n"})
    (pkg / "conftest.py").write_text(NO_PERFORMANCE)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    return pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "tiny", "--mad-target", "toy", AMD_CPU,
                              "--mad-gpus", "none", "-p", "no:cacheprovider", "test_plain.py", *args)


def report_rows(page: Path) -> dict[str, dict[str, object]]:
    """pytest-html's data blob: test id → its row cells and extras."""
    blob = re.search(r'data-jsonblob="([^"]*)"', page.read_text())
    assert blob, "no pytest-html data blob"
    tests = json.loads(html.unescape(blob.group(1)))["tests"]
    return {nodeid: runs[-1] for nodeid, runs in tests.items()}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_report_has_a_performance_column_and_log_links(pytester: pytest.Pytester, workers: list[str]) -> None:
    result = run_models(pytester, "--html=out/report.html", *workers)
    result.assert_outcomes(passed=2, failed=1)
    page = pytester.path / "out" / "report.html"
    assert '<th class="sortable" data-column-type="performance">Performance</th>' in html.unescape(page.read_text())
    rows = report_rows(page)
    toy, quiet, plain = rows["pkg/models.json::toy_model"], rows["pkg/models.json::quiet_model"], rows[
        "test_plain.py::test_plain"]
    assert '<td class="col-performance">42 toys/s</td>' in toy["resultsTableRow"]  # type: ignore[operator]
    assert '<td class="col-performance">none</td>' in quiet["resultsTableRow"]  # type: ignore[operator]
    assert '<td class="col-performance"></td>' in plain["resultsTableRow"]  # type: ignore[operator]
    links = {extra["name"]: extra for extra in toy["extras"]}  # type: ignore[union-attr]
    assert links["log"]["content"] == "../mad_logs/toy_model.run.log"
    assert (pytester.path / "mad_logs" / "toy_model.run.log").is_file()
    quiet_extras = {extra["name"] for extra in quiet["extras"]}  # type: ignore[union-attr]
    assert quiet_extras == {"log", "log tail"}


def test_the_report_renders_in_chromium(pytester: pytest.Pytester, chromium: str) -> None:
    run_models(pytester, "--html=report.html", "--self-contained-html").assert_outcomes(passed=2, failed=1)
    dom = browse(chromium, pytester.path / "report.html", "--dump-dom")
    assert console_lines(dom.stderr) == []
    assert re.search(r'<td class="col-performance">42 toys/s</td>', dom.stdout)
    assert re.search(r'<th class="sortable" data-column-type="performance"[^>]*>Performance</th>', dom.stdout)
    assert 'href="mad_logs/toy_model.run.log"' in dom.stdout and "<b>here</b>" not in dom.stdout


def test_without_pytest_html_nothing_is_registered(pytester: pytest.Pytester) -> None:
    result = run_models(pytester, "-p", "no:html")
    result.assert_outcomes(passed=2, failed=1)
    assert "PluginValidationError" not in result.stdout.str() + result.stderr.str()
