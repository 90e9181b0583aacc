"""The rich end-of-run summary: content, totals, plain text off a terminal, colours on one."""
from __future__ import annotations

import io
import re

from pytest_madengine.records import FAILURE, SKIPPED, SUCCESS, ModelResult
from pytest_madengine.results.sinks.summary import render_summary, totals_line

RESULTS = [
    ModelResult(model="dummy", status=SUCCESS, performance="812.4", metric="tokens/s", gpus=(0, 1),
                build_duration=2.0, test_duration=10.25),
    ModelResult(model="dummy2/model1[bs=8]", status=FAILURE, phase="timeout",
                reason="timed out after 60 s [see log]", test_duration=60.0, gpus=(2,)),
    ModelResult(model="dummy3/model3", status=SKIPPED, reason="skip_gpu_arch matches gfx942"),
]


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_table_content() -> None:
    text = render_summary(RESULTS, width=200)
    assert "model" in text and "status" in text and "performance" in text and "metric" in text
    row = line_with(text, "dummy ")
    assert "SUCCESS" in row and "812.4" in row and "tokens/s" in row and "10.2 s" in row and "0,1" in row
    failed = line_with(text, "dummy2/model1[bs=8]")  # brackets are not eaten as markup
    assert "FAILURE" in failed and "[timeout] timed out after 60 s [see log]" in failed and "2" in failed
    skipped = line_with(text, "dummy3/model3")
    assert "SKIPPED" in skipped and "skip_gpu_arch matches gfx942" in skipped


def test_reason_only_for_non_success() -> None:
    result = ModelResult(model="ok", status=SUCCESS, reason="should not show", performance="1", metric="x")
    assert "should not show" not in render_summary([result], width=200)


def test_totals_line() -> None:
    assert totals_line(RESULTS) == "3 model runs: 1 passed, 1 failed, 1 skipped; build + test time 72.2 s"
    assert totals_line(RESULTS[:1]).startswith("1 model run: 1 passed, 0 failed, 0 skipped")
    assert render_summary(RESULTS, width=200).rstrip().endswith(totals_line(RESULTS))


def test_empty() -> None:
    assert "0 model runs: 0 passed, 0 failed, 0 skipped" in render_summary([])


def test_multiple_results_rows_are_listed() -> None:
    rows = [{"model": "m_bs1", "status": SUCCESS, "performance": "10", "metric": "x"},
            {"model": "m_bs8", "status": FAILURE, "performance": "", "metric": "x"}]
    text = render_summary([ModelResult(model="m", status=SUCCESS, performance="10", metric="x", rows=rows)],
                          width=200)
    assert "10" in line_with(text, "m_bs1") and "FAILURE" in line_with(text, "m_bs8")


def test_plain_file_gets_no_colour_codes() -> None:
    file = io.StringIO()
    text = render_summary(RESULTS, file=file, width=200)
    written = file.getvalue()
    assert "\x1b[" not in written and "\x1b[" not in text
    assert "812.4" in written


COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])[;m]")  # a foreground colour escape


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_colours(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = FakeTerminal()
    text = render_summary(RESULTS, file=terminal, width=200)
    assert COLOUR.search(terminal.getvalue())  # green/red/yellow status cells
    assert "\x1b[" not in text  # the returned text stays plain


def test_no_color_is_respected(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = FakeTerminal()
    render_summary(RESULTS, file=terminal, width=200)
    assert "\x1b[1m" in terminal.getvalue()  # still a terminal: bold headers
    assert not COLOUR.search(terminal.getvalue())


def test_narrow_width_folds_instead_of_dropping() -> None:
    long_reason = "no performance found in the log: " + "x" * 80
    text = render_summary([ModelResult(model="m", status=FAILURE, phase="sanity", reason=long_reason)], width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "sanity" in text
