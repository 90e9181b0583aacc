"""Alembic migrations: a history file written by the SQLite-only store (schema version 2, before
Alembic; tests/data/history-v2.sqlite was written by that code) is upgraded in place."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.history.schema import CURRENT_VERSION, HEAD
from pytest_madengine.history.store import HistoryStore, Match

from .helpers import add_session, result

V2_FILE = Path(__file__).resolve().parents[1] / "data" / "history-v2.sqlite"


@pytest.fixture
def v2_copy(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    shutil.copy(V2_FILE, path)
    return path


def test_a_version_2_file_is_upgraded_with_every_row(v2_copy: Path) -> None:
    with HistoryStore(v2_copy) as store:
        sessions = store.sessions()
        assert [s.info.id for s in sessions] == [f"20261201-00000{i}-aaaaa{i}" for i in (2, 1, 0)]
        assert [(s.rows, s.failures) for s in sessions] == [(3, 1), (3, 0), (3, 0)]
        info = sessions[0].info
        assert (info.git_commit, info.gpu_count, info.pipeline, info.source) == ("abc1234", 8, "", "")
        # The old store kept a database URL's password in the command line; the upgrade masks it.
        assert info.pytest_args == ("--mad-tags", "llama", "--mad-history", "postgresql://u:***@h/db")
        assert [r.value for r in store.rows(model="llama")] == [1000.0, 1010.0, 990.0]
        llama = Match("llama", "gfx942", "8", "1")
        assert store.baseline("mean:3", llama).value == 1000  # type: ignore[union-attr]
        add_session(store, "new", 1_800_000_000.0, result("llama", "995"))
        assert store.baseline("last", llama).sessions == ("new",)  # type: ignore[union-attr]
    conn = sqlite3.connect(v2_copy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION  # older plugins refuse it now
    assert conn.execute("SELECT version_num FROM mad_history_version").fetchall() == [(HEAD,)]
    assert conn.execute("SELECT max(id) FROM results").fetchone()[0] == 10  # ids continue after the old rows


def test_an_unknown_newer_revision_is_refused(v2_copy: Path) -> None:
    HistoryStore(v2_copy).close()
    with sqlite3.connect(v2_copy) as conn:
        conn.execute("UPDATE mad_history_version SET version_num = 'v99'")
    with pytest.raises(MadError, match="revision 'v99', newer than this plugin"):
        HistoryStore(v2_copy)
