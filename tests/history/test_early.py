"""The history is opened at the first result when it will open cleanly (start-up, issue 22.5), and
at start otherwise, so that an unusable one is still said before anything runs."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.history.early import opens_cleanly, sqlite_path
from pytest_madengine.history.store import HistoryStore
from pytest_madengine.records import ModelResult
from pytest_madengine.results.sinks.deferred import DeferredSink

from .helpers import add_session, result

V2_FILE = Path(__file__).resolve().parents[1] / "data" / "history-v2.sqlite"


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    path = tmp_path / "h.sqlite"
    with HistoryStore(path) as store:
        add_session(store, "s1", 1_800_000_000.0, result("llama", "1000"))
    return path


def test_a_new_file_and_a_healthy_history_at_the_head_open_cleanly(tmp_path: Path, healthy: Path) -> None:
    assert opens_cleanly(tmp_path / "new" / "deeper" / "h.sqlite")
    assert opens_cleanly(f"sqlite:///{healthy}")
    assert opens_cleanly(healthy)


def test_anything_in_doubt_is_opened_at_start(tmp_path: Path, healthy: Path) -> None:
    damaged = tmp_path / "damaged.sqlite"
    shutil.copy(healthy, damaged)
    with damaged.open("r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xde\xad" * 2048)
    old = tmp_path / "v2.sqlite"
    shutil.copy(V2_FILE, old)  # needs a migration
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text)")
    not_sqlite = tmp_path / "text.sqlite"
    not_sqlite.write_text("not a database\n" * 500)
    under_a_file = tmp_path / "text.sqlite" / "h.sqlite"
    for value in (damaged, old, other, not_sqlite, under_a_file, tmp_path, "postgresql://ci@db/mad"):
        assert not opens_cleanly(value), value


def test_sqlite_urls_name_their_file(tmp_path: Path) -> None:
    assert sqlite_path(f"sqlite:///{tmp_path}/h.sqlite", where="x") == tmp_path / "h.sqlite"
    assert sqlite_path("postgresql://ci@db/mad", where="x") is None
    with pytest.raises(MadError, match="names no file") as raised:
        sqlite_path("sqlite://", where="--mad-history")
    assert raised.value.where == "--mad-history"


class ListSink:
    def __init__(self) -> None:
        self.results: list[str] = []

    def record(self, result: ModelResult) -> None:
        self.results.append(result.model)

    def finish(self) -> list[str]:
        return [f"{len(self.results)} kept"]


def test_a_deferred_sink_is_made_once_at_its_first_result() -> None:
    made: list[ListSink] = []

    def make() -> ListSink:
        made.append(ListSink())
        return made[-1]

    sink = DeferredSink(make, label="history")
    assert made == []
    sink.record(result("a", "1"))
    sink.record(result("b", "2"))
    assert len(made) == 1 and made[0].results == ["a", "b"]
    assert sink.finish() == ["2 kept"]
    idle = DeferredSink(make, label="history")
    assert idle.finish() == ["0 kept"] and len(made) == 2  # no result: made at the end all the same


def test_a_deferred_sink_that_cannot_be_made_says_so_once_and_keeps_the_session_going() -> None:
    calls = []

    def make() -> ListSink:
        calls.append(1)
        raise MadError("the history is damaged", where="h.sqlite", fix="move it aside")

    sink = DeferredSink(make, label="history")
    sink.record(result("a", "1"))
    sink.record(result("b", "1"))
    assert calls == [1]
    assert sink.finish() == ["history not written: h.sqlite: the history is damaged. Fix: move it aside."]
