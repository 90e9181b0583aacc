"""--mad-compare against the history, and the HistorySink that writes a session's results."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pytest_madengine.history.compare import compare_result
from pytest_madengine.history.sink import HistorySink
from pytest_madengine.history.spec import parse_compare_spec
from pytest_madengine.history.store import HistoryStore, Match, SessionInfo
from pytest_madengine.records import FAILURE, SUCCESS
from pytest_madengine.results.reference_file import parse_references

from .helpers import result


def session(session_id: str, started: float) -> SessionInfo:
    return SessionInfo(id=session_id, started=started, host="node-a", target="local", gpu_architecture="gfx942",
                       gpu_count=8)


def test_compare_last_a_second_session_10_percent_slower_fails_at_5_percent(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    first = HistorySink(path, session("s1", 1000.0))
    first.record(result("llama", "900"))
    first.finish()

    second = HistorySink(path, session("s2", 2000.0))
    assert second.store is not None
    comparison = compare_result(result("llama", "810"), second.store, parse_compare_spec("last"), 5,
                                session_id="s2")
    judged = comparison.result
    assert judged.status == FAILURE and judged.phase == "performance"
    assert judged.reason == "810 tokens/s is 10.0 % below the baseline 900 (last, session s1; allowed 5 %), gfx942 × 8"
    assert judged.rows[0]["relative_change"] == "-10.00"
    assert comparison.baselines["llama"].sessions == ("s1",) and not comparison.notes
    second.record(judged)
    second.finish()

    with HistoryStore(path) as store:
        # the failed 810 is not the next "last": s1's 900 stays the baseline
        assert store.baseline("last", Match("llama", "gfx942", "8", "1")).value == 900  # type: ignore[union-attr]


def test_within_the_limit_passes_and_no_baseline_is_a_note(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite") as store:
        store.begin_session(session("s1", 1000.0))
        store.add_result("s1", result("llama", "900"))
        store.begin_session(session("s2", 2000.0))
        spec = parse_compare_spec("last")
        ok = compare_result(result("llama", "880"), store, spec, 5, session_id="s2")
        assert ok.result.status == SUCCESS and ok.result.rows[0]["relative_change"] == "-2.22"
        new = compare_result(result("gpt", "10"), store, spec, 5, session_id="s2")
        assert new.result.status == SUCCESS and new.verdicts == {}
        assert new.notes == ["gpt: no baseline in the history for --mad-compare last (gfx942 × 8); not compared"]
        other_gpus = compare_result(result("llama", "10", n_gpus="1"), store, spec, 5, session_id="s2")
        assert other_gpus.notes and other_gpus.result.status == SUCCESS


def test_direction_comes_from_the_reference_else_the_metric(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite") as store:
        store.begin_session(session("s1", 1000.0))
        store.add_result("s1", result("lat", "2.0", metric="ms"))
        store.add_result("s1", result("score", "2.0", metric="points"))
        store.begin_session(session("s2", 2000.0))
        spec = parse_compare_spec("last")
        slower = compare_result(result("lat", "2.4", metric="ms"), store, spec, 5, session_id="s2")
        assert slower.result.phase == "performance" and "20.0 % above the baseline 2" in slower.result.reason
        references = parse_references({"score": {"value": 2, "tolerance": 1, "direction": "lower"}}, "r.yaml")
        lower_better = compare_result(result("score", "2.4", metric="points"), store, spec, 5, session_id="s2",
                                      references=references)
        assert lower_better.result.status == FAILURE
        report_only = compare_result(result("lat", "2.4", metric="ms"), store, spec, None, session_id="s2")
        assert report_only.result.status == SUCCESS and report_only.result.rows[0]["relative_change"] == "20.00"


def test_sink_numbers_repeats_recorded_one_by_one_and_reports(tmp_path: Path) -> None:
    path = tmp_path / ".mad" / "history.sqlite"
    sink = HistorySink(path, session("s1", 1000.0))
    for value in ("900", "905", "899"):
        sink.record(result("llama", value))
    sink.record(result("bench", "1", "2"))
    shown = min(os.path.relpath(path), str(path), key=len)
    assert sink.finish() == ["history: 5 row(s) of 4 result(s), session s1", f"  in {shown}"]
    assert sink.store is None
    sink.record(result("late", "1"))  # after finish: ignored
    with HistoryStore(path) as store:
        assert [(r.model, r.repeat) for r in store.rows()] == [
            ("llama", 0), ("llama", 1), ("llama", 2), ("bench", 0), ("bench_2", 0)]
        assert store.session("s1").ended is not None  # type: ignore[union-attr]


def test_a_lock_held_mid_session_delays_rows_to_the_end_and_loses_none(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    sink = HistorySink(path, session("s1", 1000.0), timeout=0.05)
    sink.record(result("llama", "900"))
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock past the timeout
    sink.record(result("llama", "901"))
    assert sink.store is None  # stopped waiting on the history for the rest of the session
    sink.record(result("llama", "902"))
    blocker.rollback()
    line, where = sink.finish()
    assert where.endswith("h.sqlite")
    assert line == ("history: 3 row(s) of 3 result(s), session s1 "
                    "(2 written at the end: OperationalError: database is locked)")
    with HistoryStore(path) as store:
        assert [(r.value, r.repeat) for r in store.rows()] == [(900.0, 0), (901.0, 1), (902.0, 2)]


def test_a_lock_held_to_the_end_names_what_is_missing_and_the_way_back(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    sink = HistorySink(path, session("s1", 1000.0), timeout=0.05)
    sink.record(result("llama", "900"))
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    sink.record(result("llama", "901"))
    line, _ = sink.finish()
    blocker.rollback()
    assert line.startswith("history: NOT complete: 1 result(s) not written (OperationalError: database is locked)")
    assert "history import perf.csv" in line
