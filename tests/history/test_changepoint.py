"""Change points: the E-divisive search with its permutation test, ``--mad-compare changepoint``
against ``last`` on generated series, and ``history changes``."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_madengine.__main__ import main
from pytest_madengine.history.changepoint import _within_sums, change_points
from pytest_madengine.history.compare import compare_result
from pytest_madengine.history.spec import parse_compare_spec
from pytest_madengine.history.store import HistoryStore
from pytest_madengine.records import FAILURE, SUCCESS

from .helpers import add_session, result

SHIFT_AT = 30


def test_within_sums_match_the_pairwise_definition() -> None:
    rng = random.Random(7)
    series = [round(rng.gauss(0, 5)) for _ in range(40)]  # ties included
    naive = [sum(abs(series[i] - series[j]) for i in range(t) for j in range(i + 1, t)) for t in range(41)]
    assert _within_sums(series) == pytest.approx(naive)


def noisy(rng: random.Random, level: float, count: int, sigma: float = 10.0) -> list[float]:
    return [rng.gauss(level, sigma) for _ in range(count)]


def test_a_step_is_found_at_its_session_and_pure_noise_has_none() -> None:
    rng = random.Random(11)
    [point] = change_points(noisy(rng, 1000, SHIFT_AT) + noisy(rng, 900, 10))
    assert point.index == SHIFT_AT and point.p_value <= 0.01
    assert point.before == pytest.approx(1000, abs=8) and point.after == pytest.approx(900, abs=8)
    assert change_points(noisy(rng, 1000, 60)) == []
    assert change_points([1000.0] * 20) == []  # constant: no split beats its shuffles


def test_one_outlier_is_no_change_point() -> None:
    rng = random.Random(5)
    values = noisy(rng, 1000, 40)
    values[25] = 850.0
    assert change_points(values) == []


@pytest.fixture
def shifted(tmp_path: Path) -> HistoryStore:
    """Sessions s00…s31: 1000 ± 10 (1 %) tokens/s, then s30 and s31 at 930 ± 10: a 7 % shift."""
    rng = random.Random(3)
    store = HistoryStore(tmp_path / "h.sqlite")
    values = noisy(rng, 1000, SHIFT_AT) + [928.0, 933.0]
    for index, value in enumerate(values):
        add_session(store, f"s{index:02d}", 1000.0 + index, result("llama", f"{value:.1f}"))
    yield store
    store.close()


def test_changepoint_fails_the_shift_and_names_it_where_last_does_not(shifted: HistoryStore) -> None:
    spec = parse_compare_spec("changepoint")
    judged = compare_result(result("llama", "931"), shifted, spec, 5, session_id="now")
    assert judged.result.status == FAILURE and judged.result.phase == "performance"
    reason = judged.result.reason
    assert "changepoint at session s30: mean 99" in reason and "930.667 after over 3 session(s), p = 0.0" in reason
    assert judged.baselines["llama"].sessions == ("s30",)
    last = compare_result(result("llama", "931"), shifted, parse_compare_spec("last"), 5, session_id="now")
    assert last.result.status == SUCCESS  # 931 against 933: the shift went through unnoticed


def test_changepoint_passes_a_recovered_session(shifted: HistoryStore) -> None:
    judged = compare_result(result("llama", "1002"), shifted, parse_compare_spec("changepoint"), 5, session_id="now")
    assert judged.result.status == SUCCESS and "changepoint at session s30" in judged.verdicts["llama"].message


def test_changepoint_ignores_one_noisy_session_where_last_fails_it(tmp_path: Path) -> None:
    rng = random.Random(9)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for index, value in enumerate(noisy(rng, 1000, 20)):
            add_session(store, f"s{index:02d}", 1000.0 + index, result("llama", f"{value:.1f}"))
        outlier = result("llama", "940")
        assert compare_result(outlier, store, parse_compare_spec("last"), 5, session_id="now").result.status == FAILURE
        judged = compare_result(outlier, store, parse_compare_spec("changepoint"), 5, session_id="now")
        assert judged.result.status == SUCCESS
        assert "no shift, mean of 20 session(s)" in judged.verdicts["llama"].message


def test_history_changes_json(shifted: HistoryStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "changes", "--json", "--history", str(shifted.path)]) == 0
    [change] = json.loads(capsys.readouterr().out)
    assert {key: change[key] for key in ("model", "session", "sessions_after")} == {
        "model": "llama", "session": "s30", "sessions_after": 2}
    assert change["before"] == pytest.approx(1000, abs=8) and change["after"] == 930.5
    assert 0 < change["p_value"] <= 0.05 and change["change_pct"] < -6
    assert main(["history", "changes", "--history", str(shifted.path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["model", "GPUs", "session"] and "s30" in table[1]
