"""python -m pytest_madengine history list|show|export and report dashboard."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_madengine.__main__ import main
from pytest_madengine.history.store import HistoryStore
from pytest_madengine.records import FAILURE

from .helpers import add_session, result

DAY = 86400.0


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / ".mad" / "history.sqlite"
    with HistoryStore(path) as store:
        for day, value in enumerate(("900", "950", "810")):
            add_session(store, f"s{day + 1}", 1_700_000_000 + day * DAY, result("llama", value),
                        result("bert", status=FAILURE, phase="build", reason="docker build failed"))
    return path


def test_list_shows_sessions_newest_first(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "list", "--history", str(history)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["session", "started", "(UTC)", "duration", "target", "host", "GPUs", "rows",
                                "failed", "commit"]
    assert [line.split()[0] for line in lines[1:]] == ["s3", "s2", "s1"]
    assert lines[1].split()[3:] == ["60", "s", "local", "node-a", "gfx942", "×", "8", "2", "1"]


def test_show_prints_the_trend_with_changes(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "show", "llama", "--history", str(history)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "llama · gfx942 × 8 · tokens/s"
    assert [line.split()[3:] for line in out[2:5]] == [
        ["900", "SUCCESS", "1"], ["950", "+5.6", "%", "SUCCESS", "1"], ["810", "-14.7", "%", "SUCCESS", "1"]]


def test_show_unknown_model_is_one_error_line(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "show", "gpt", "--history", str(history)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {history}: no rows for the model 'gpt'. Fix: known: bert, llama.")


def test_missing_history_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "list", "--history", str(tmp_path / "none.sqlite")]) == 2
    assert "no history file here" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()


def test_export_writes_every_row_with_its_session(history: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.csv"
    assert main(["history", "export", str(target), "--history", str(history)]) == 0
    assert capsys.readouterr().out.strip() == f"6 row(s) written to {target}"
    rows = list(csv.DictReader(target.open()))
    assert [(r["session_id"], r["model"], r["performance"], r["phase"]) for r in rows[:2]] == [
        ("s1", "llama", "900", ""), ("s1", "bert", "", "build")]
    assert rows[0]["value"] == "900.0" and rows[0]["session_host"] == "node-a" and len(rows[0]) == 5 + 29 + 6
    assert main(["history", "export", "-", "--model", "llama", "--session", "s2", "--history", str(history)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_report_dashboard_and_the_module_entry(history: Path, tmp_path: Path) -> None:
    refs = tmp_path / "refs.yaml"
    refs.write_text("llama: {value: 900, tolerance: 5%}\n")
    output = tmp_path / "dash.html"
    done = subprocess.run([sys.executable, "-m", "pytest_madengine", "report", "dashboard", "--history",
                           str(history), "-o", str(output), "--references", str(refs), "--fail-on-regression", "5"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"dashboard written to {output} (0.1 MB")  # uPlot, not plotly.js (4.8 MB)
    html = output.read_text()
    assert "<h3 class=\"phase\">build (1)</h3>" in html and "docker build failed" in html
    assert 'class="num regression">-14.7 %' in html and "855 … +∞" in html
    assert not re.search(r'(src|href)="https?:', html)  # nothing the page fetches
