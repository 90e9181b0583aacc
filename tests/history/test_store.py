"""HistoryStore: sessions and rows, queries, baseline selection, concurrent writers, schema migration."""
from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.history.schema import CURRENT_VERSION, PERF_COLUMNS
from pytest_madengine.history.spec import CompareSpec, parse_compare_spec
from pytest_madengine.history.store import HistoryStore, Match, SessionInfo, new_session_id
from pytest_madengine.records import FAILURE
from pytest_madengine.results.sinks.perfcsv import COLUMNS

from .helpers import add_session, result

DAY = 86400.0
LLAMA = Match("llama", "gfx942", "8", "1")


def test_schema_columns_are_the_perf_csv_columns() -> None:
    assert PERF_COLUMNS == COLUMNS


def test_new_file_is_wal_at_the_current_version(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "sub" / "h.sqlite"):
        pass
    conn = sqlite3.connect(tmp_path / "sub" / "h.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION


def test_sessions_and_rows_round_trip(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite") as store:
        info = SessionInfo(id="s1", started=1000.0, host="node-a", target="slurm", git_commit="abc123",
                           gpu_vendor="AMD", gpu_architecture="gfx942", gpu_count=8, nodes=2,
                           pytest_args=("--mad-tags", "llama"))
        store.begin_session(info)
        assert store.add_result("s1", result("bench", "10", "20")) == 2
        assert store.add_result("s1", result("llama", status=FAILURE, phase="run", reason="exit 1")) == 1
        store.end_session("s1", 1060.0)
        assert store.session("s1") == SessionInfo(**{**info.__dict__, "ended": 1060.0})
        [summary] = store.sessions()
        assert (summary.rows, summary.failures, summary.models) == (3, 1, 3)
        rows = list(store.rows(session_id="s1"))
        assert [(r.model, r.value, r.row_index, r.repeat) for r in rows] == [
            ("bench", 10.0, 0, 0), ("bench_2", 20.0, 1, 0), ("llama", None, 0, 0)]
        assert rows[2].phase == "run" and rows[2].reason == "exit 1" and rows[0].image_digest == "sha256:feed"
        assert set(rows[0].fields) == set(COLUMNS) and rows[0].fields["machine_name"] == "node-a"
        assert store.models() == ["bench", "bench_2", "llama"]


def test_a_combined_repeat_result_numbers_its_runs(tmp_path: Path) -> None:
    from pytest_madengine.results.repeats import combine_runs

    combined, _ = combine_runs([result("bench", "10", "20"), result("bench", "11", "21")])
    with HistoryStore(tmp_path / "h.sqlite") as store:
        add_session(store, "s1", 1000.0, combined)
        assert [(r.model, r.repeat, r.row_index) for r in store.rows()] == [
            ("bench", 0, 0), ("bench_2", 0, 1), ("bench", 1, 0), ("bench_2", 1, 1)]


@pytest.fixture
def history(tmp_path: Path) -> HistoryStore:
    """Five sessions a day apart: llama at 900, 950, 1000, 850 (FAILURE), 920; other contexts apart."""
    store = HistoryStore(tmp_path / "h.sqlite")
    for day, value in enumerate(("900", "950", "1000", "850", "920")):
        status = FAILURE if value == "850" else "SUCCESS"
        main = result("llama", value, status=status, phase="performance")
        add_session(store, f"s{day + 1}", 1000.0 + day * DAY, main, result("llama", "100", arch="gfx90a"),
                    result("llama", "5000", n_gpus="1"))
    yield store
    store.close()


@pytest.mark.parametrize(("spec", "value", "sessions"), [
    ("last", 920, ("s5",)),
    ("best", 1000, ("s3",)),
    ("mean:2", 960, ("s5", "s3")),  # s4 failed: not a baseline
    ("median:3", 950, ("s5", "s3", "s2")),
    ("s2", 950, ("s2",)),
])
def test_baselines(history: HistoryStore, spec: str, value: float, sessions: tuple[str, ...]) -> None:
    baseline = history.baseline(spec, LLAMA, metric="tokens/s")
    assert baseline is not None and baseline.value == value and baseline.sessions == sessions


def test_baseline_time_window_direction_exclusion_and_missing(history: HistoryStore) -> None:
    now = 1000.0 + 4 * DAY + 60
    window = history.baseline("mean:2d", LLAMA, now=now)  # sessions of the last two days: s5 only (s4 failed)
    assert window is not None and window.sessions == ("s5",)
    assert history.baseline("median:4d", LLAMA, now=now).sessions == ("s5", "s3", "s2")  # type: ignore[union-attr]
    assert history.baseline("best", LLAMA, direction="lower").value == 900  # type: ignore[union-attr]
    assert history.baseline("last", LLAMA, exclude_session="s5").sessions == ("s3",)  # type: ignore[union-attr]
    assert history.baseline("last", Match("llama", "gfx942", "4", "1")) is None
    assert history.baseline("last", LLAMA, metric="samples/s") is None
    assert history.baseline("unknown-session", LLAMA) is None
    assert history.baseline("last", Match("llama", "gfx90a", "8", "1")).value == 100  # type: ignore[union-attr]


def test_compare_spec_parsing() -> None:
    assert parse_compare_spec("median:7d") == CompareSpec("median", seconds=7 * DAY, text="median:7d")
    assert parse_compare_spec("mean:10") == CompareSpec("mean", count=10, text="mean:10")
    assert parse_compare_spec("20261130-142501-3f9a1c").kind == "session"
    for bad in ("mean:", "median:0", "mean:3w", "two words"):
        with pytest.raises(MadError):
            parse_compare_spec(bad)
    assert len(new_session_id(0)) == len("19700101-000000-abcdef")


def _writer(path: str, session_id: str, count: int) -> None:
    with HistoryStore(Path(path), timeout=60) as store:
        store.begin_session(SessionInfo(id=session_id, started=1000.0))
        for index in range(count):
            store.add_result(session_id, result(f"m{index}", str(index), "1", "2"))
        store.end_session(session_id, 2000.0)


def test_two_processes_writing_at_once_lose_no_row(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, f"s{n}", 200)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with HistoryStore(Path(path)) as store:
        counts = {item.info.id: item.rows for item in store.sessions()}
    assert counts == {"s0": 600, "s1": 600}


def _v1_file(path: Path) -> None:
    """A history as version 1 wrote it, made by hand."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE sessions (id TEXT PRIMARY KEY, started REAL NOT NULL, ended REAL,
                               host TEXT NOT NULL DEFAULT '', target TEXT NOT NULL DEFAULT '',
                               args TEXT NOT NULL DEFAULT '');
        CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id),
                              model TEXT NOT NULL, status TEXT NOT NULL, performance TEXT NOT NULL DEFAULT '',
                              metric TEXT NOT NULL DEFAULT '', row_json TEXT NOT NULL DEFAULT '{}');
        PRAGMA user_version = 1;
    """)
    conn.execute("INSERT INTO sessions VALUES ('old1', 500.0, 560.0, 'node-z', 'local', '--mad-tags \"a b\" -x')")
    row = {"n_gpus": "8", "nnodes": "1", "gpu_architecture": "gfx942", "docker_sha": "sha256:01d"}
    conn.execute("INSERT INTO results (session_id, model, status, performance, metric, row_json) "
                 "VALUES ('old1', 'llama', 'SUCCESS', '880.5', 'tokens/s', ?)", (json.dumps(row),))
    conn.execute("INSERT INTO results (session_id, model, status, performance, metric, row_json) "
                 "VALUES ('old1', 'bert', 'FAILURE', '', '', 'not json')")
    conn.commit()
    conn.close()


def test_a_version_1_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _v1_file(path)
    with HistoryStore(path) as store:
        info = store.session("old1")
        assert info is not None and info.pytest_args == ("--mad-tags", "a b", "-x") and info.host == "node-z"
        llama, bert = store.rows()
        assert llama.value == 880.5 and llama.fields["gpu_architecture"] == "gfx942"
        assert llama.fields["docker_sha"] == "sha256:01d" and llama.started == 500.0
        assert bert.fields["status"] == FAILURE and bert.value is None
        assert store.baseline("last", LLAMA).value == 880.5  # type: ignore[union-attr]
        add_session(store, "new1", 600.0, result("llama", "900"))  # the migrated file takes new rows
        assert [r.model for r in store.rows()] == ["llama", "bert", "llama"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    assert "args" not in [c[1] for c in conn.execute("PRAGMA table_info(sessions)")]


def test_newer_and_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite"
    sqlite3.connect(newer).execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    with pytest.raises(MadError, match="newer than this plugin"):
        HistoryStore(newer)
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    with pytest.raises(MadError, match="not a pytest-madengine history"):
        HistoryStore(foreign)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(MadError, match="cannot open the history"):
        HistoryStore(garbage)
