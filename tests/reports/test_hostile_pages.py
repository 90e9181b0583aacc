"""Hostile strings in every field that reaches a page (issue 23.5): the report of a results CSV and
the history dashboard load in headless Chromium with no console message, their script runs to
its end (``data-ready``), their charts are drawn and no value adds an element.

Each string goes into every CSV column / every history field of one model at once, beside a
normal model, one page per string."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_madengine.history.dashboard import ChangePoint, write_dashboard
from pytest_madengine.history.store import HistoryStore, SessionInfo
from pytest_madengine.records import FAILURE, SUCCESS, ModelResult
from pytest_madengine.reports.html import write_email, write_html
from pytest_madengine.reports.page import script_json
from pytest_madengine.results.sinks.perfcsv import COLUMNS, append_rows
from tests.infra.browser import browse, console_lines

HOSTILE = {
    "script-end": "</script><script>alert(1)</script>",
    "script-end-upper": "</SCRIPT >x",
    "comment-script": "<!--<script>",
    "comment-open": "<!--",
    "comment-close": "-->",
    "script-open": "<script>",
    "attribute-break": "\"'><img src=x onerror=alert(1)>",
    "template-literal": "${alert(1)}",
    "jinja": "{{ 7*7 }}{% raw %}",
    "plotly-template": "%{x}<br>",
    "line-separators": "a\u2028b\u2029c",
    "nul": "a\x00b",
    "rtl-marks": "\u202eevil\u200f\u2066",
    "entities": "&amp;&lt;&#x3c;",
    "cdata": "]]><![CDATA[",
    "escaped-escape": "\\u003c/script>\\",
    "javascript-url": "javascript:alert(1)",
    "backslash-quote": "\\\"",
    "emoji": "🚀 模型",
    "not-a-number": "NaN",
    "overflow": "1e999",
    "very-long": "<x>" * 20_000,
}


def hostile_row(text: str, **overrides: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, text)
    row.update({"performance": "123.5", "status": SUCCESS, **overrides})
    return row


def intact(dom: str, scripts: int) -> None:
    """The script ran to its end and no value added a script or image element."""
    assert 'data-ready="' in dom
    assert len(re.findall(r"<script", dom, re.IGNORECASE)) == scripts
    assert "<img" not in dom


@pytest.mark.parametrize("name", list(HOSTILE))
def test_report_with_a_hostile_string_in_every_column(chromium: str, tmp_path: Path, name: str) -> None:
    text = HOSTILE[name]
    path = tmp_path / "perf.csv"
    append_rows(path, [hostile_row(text), hostile_row(text, model="normal", metric="tokens/s"),
                       hostile_row(text, status=text, performance=text)])
    dom = browse(chromium, write_html(path), "--dump-dom")
    assert dom.returncode == 0 and console_lines(dom.stderr) == [], console_lines(dom.stderr)
    intact(dom.stdout, scripts=3)
    assert dom.stdout.count("<canvas") == 2  # both metrics' bar charts
    assert dom.stdout.count("<tr>") == 4
    mail = write_email(tmp_path).read_text()
    assert "<script" not in mail.lower() and "<img" not in mail and "<!--" not in mail


@pytest.mark.parametrize("name", list(HOSTILE))
def test_dashboard_with_a_hostile_string_in_every_field(chromium: str, tmp_path: Path, name: str) -> None:
    text = HOSTILE[name]
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for number in range(3):
            session = f"{text}-{number}"  # ids of imported histories are anyone's text
            store.begin_session(SessionInfo(id=session, started=1_700_000_000 + number * 86400.0, git_commit=text,
                                            host=text, gpu_architecture=text))
            for row in (hostile_row(text, performance=str(100 + number)),
                        hostile_row(text, model="normal", metric="tokens/s", performance=str(200 + number)),
                        hostile_row(text, model="normal", metric="tokens/s", status=FAILURE, performance="1")):
                store.add_result(session, ModelResult(model=row["model"], status=row["status"], phase="run",
                                                      reason=text, rows=[row]))
        page = write_dashboard(store, tmp_path / "dashboard.html", logs=tmp_path,
                               changes=[ChangePoint(text, f"{text}-1", 100.0, 101.0, 0.01)])
    dom = browse(chromium, page, "--dump-dom")
    assert dom.returncode == 0 and console_lines(dom.stderr) == [], console_lines(dom.stderr)
    intact(dom.stdout, scripts=3)
    # Both cards drawn: a trend each (the durations are hostile text too, so no duration chart).
    assert dom.stdout.count('data-drawn="1"') == 2 and dom.stdout.count("<canvas") == 2
    assert dom.stdout.count('class="meta changes">change point ') == 1  # on the hostile model's trend


@pytest.mark.parametrize("name", list(HOSTILE))
def test_embedded_json_never_holds_markup_or_line_separators(name: str) -> None:
    embedded = script_json({"k": [HOSTILE[name]]})
    assert not set("<>&\u2028\u2029") & set(embedded)
    assert json.loads(embedded) == {"k": [HOSTILE[name]]}
