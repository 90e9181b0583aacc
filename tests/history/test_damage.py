"""The history is data: a damaged, unusable or unreachable history never stops the models and
never prints a traceback (issue 23.3). Damage is real: pages of a real history file overwritten."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_madengine.__main__ import main
from pytest_madengine.errors import MadError
from pytest_madengine.history.checks import PerformanceChecks
from pytest_madengine.history.sink import HistorySink
from pytest_madengine.history.spec import parse_compare_spec
from pytest_madengine.history.store import HistoryStore, SessionInfo

from .helpers import add_session, result

PAGE = 4096


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real history of 20 sessions × 10 models (17 pages, WAL checkpointed on close)."""
    path = tmp_path_factory.mktemp("healthy") / "history.sqlite"
    with HistoryStore(path) as store:
        for index in range(20):
            add_session(store, f"s{index:02d}", 1000.0 + index, *(result(f"m{j}", str(900 + index)) for j in range(10)))
    return path


def damaged(healthy: Path, target: Path, page: int) -> Path:
    shutil.copy(healthy, target)
    with target.open("r+b") as handle:
        handle.seek(PAGE * page)
        handle.write(bytes([0xDE, 0xAD]) * (PAGE // 2))
    return target


def test_every_damaged_page_is_one_clear_error_for_the_session_and_the_commands(
        healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pages = healthy.stat().st_size // PAGE
    assert pages > 10
    for page in range(1, pages):  # page 0 holds the header: damaged, the file is no SQLite at all
        path = damaged(healthy, tmp_path / f"page{page}.sqlite", page)
        with pytest.raises(MadError, match="damaged|cannot open the history") as raised:
            HistorySink(path, SessionInfo(id="now", started=5000.0))
        assert "Fix:" in raised.value.message
        for command in (["list"], ["export", "-"], ["changes", "--json"], ["show", "m1"]):
            code = main(["history", *command, "--history", str(path)])
            out, err = capsys.readouterr()
            assert code in (0, 2) and "Traceback" not in out + err, (page, command)
            assert code == 0 or err.startswith("error: ") and len(err.strip().splitlines()) == 1, (page, err)


def test_the_dashboard_of_a_damaged_history_is_one_error_line(healthy: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = damaged(healthy, tmp_path / "h.sqlite", 5)
    code = main(["report", "dashboard", "--history", str(path), "-o", str(tmp_path / "d.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the history cannot be read: DatabaseError: ") and "Traceback" not in err


def test_comparisons_on_a_damaged_history_are_notes_never_failures(healthy: Path, tmp_path: Path) -> None:
    path = damaged(healthy, tmp_path / "h.sqlite", 3)
    checks = PerformanceChecks(None, path, parse_compare_spec("last"), 5, "now")
    judged = checks.apply(result("m1", "1"))
    assert judged.status == "SUCCESS" and judged.notes and "not compared" in judged.notes[0]


@pytest.mark.parametrize("kind", ["directory", "under-a-file", "header"])
def test_something_that_is_not_a_usable_file_is_a_mad_error(tmp_path: Path, healthy: Path, kind: str) -> None:
    path = {"directory": tmp_path, "under-a-file": healthy / "x.sqlite",
            "header": damaged(healthy, tmp_path / "h.sqlite", 0)}[kind]
    with pytest.raises(MadError, match="cannot open the history|not a pytest-madengine history"):
        HistorySink(path, SessionInfo(id="now", started=5000.0))
