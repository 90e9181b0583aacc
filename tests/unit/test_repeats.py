"""--mad-repeat: statistics, the combined result (N rows, median judged), the CV check."""
from __future__ import annotations

import pytest

from pytest_madengine.records import FAILURE, SUCCESS
from pytest_madengine.results.reference_file import parse_references
from pytest_madengine.results.references import judge_result
from pytest_madengine.results.repeats import check_cv, combine_runs, repeat_stats, run_values
from tests.history.helpers import result


def test_statistics_of_five_runs() -> None:
    stats = repeat_stats([800, 810, 790, 830, 820])
    assert (stats.n, stats.median, stats.minimum, stats.maximum) == (5, 810, 790, 830)
    assert stats.stdev == pytest.approx(15.8114, rel=1e-4)
    assert stats.cv == pytest.approx(15.8114 / 810 * 100, rel=1e-4)
    assert stats.describe("tokens/s") == "median 810 tokens/s over 5 runs (min 790, max 830, stdev 15.8114, CV 2.0 %)"
    assert dict(stats.junit_properties())["repeat_cv"] == "1.95"


def test_single_run_and_bad_input() -> None:
    assert repeat_stats([5.0]).stdev == 0 and repeat_stats([5.0]).cv == 0
    with pytest.raises(ValueError):
        repeat_stats([])
    with pytest.raises(ValueError):
        repeat_stats([1.0, float("nan")])


def test_combined_result_records_every_run_and_reports_the_median() -> None:
    runs = [result("llama", value) for value in ("812", "905", "899")]
    combined, stats = combine_runs(runs)
    assert len(combined.rows) == 3 and [r["performance"] for r in combined.rows] == ["812", "905", "899"]
    assert combined.performance == "899" and combined.status == SUCCESS
    assert stats is not None and stats.median == 899


def test_the_median_is_judged_not_a_single_run() -> None:
    references = parse_references({"llama": {"value": 900, "tolerance": "5%"}}, "refs.yaml")
    combined, _ = combine_runs([result("llama", value) for value in ("812", "905", "899")])
    judged, verdicts = judge_result(combined, references)
    assert judged.status == SUCCESS and verdicts["llama"].value == 899
    slow, _ = combine_runs([result("llama", value) for value in ("812", "820", "950")])
    assert judge_result(slow, references)[0].phase == "performance"


def test_multiple_results_runs_keep_one_row_per_metric_per_run() -> None:
    runs = [result("bench", "10", "20"), result("bench", "12", "22")]
    combined, stats = combine_runs(runs)
    assert [r["model"] for r in combined.rows] == ["bench", "bench_2", "bench", "bench_2"]
    assert run_values(runs) == [10, 12] and run_values(runs, "bench_2") == [20, 22]
    assert stats is not None and stats.median == 11


def test_a_failed_run_fails_the_model_and_names_the_run() -> None:
    runs = [result("llama", "900"), result("llama", status=FAILURE, phase="run", reason="exit code 1"),
            result("llama", "905")]
    combined, stats = combine_runs(runs)
    assert combined.status == FAILURE and combined.phase == "run"
    assert combined.reason == "run 2 of 3: exit code 1"
    assert stats is not None and stats.n == 2


def test_max_cv_fails_an_unstable_model() -> None:
    combined, stats = combine_runs([result("llama", value, metric="tokens/s") for value in ("700", "900", "1100")])
    assert stats is not None
    unstable = check_cv(combined, stats, 5)
    assert unstable.status == FAILURE and unstable.phase == "performance"
    assert unstable.reason == ("unstable: CV 22.2 % over 3 runs exceeds the allowed 5 % "
                               "(median 900, min 700, max 1100 tokens/s)")
    assert check_cv(combined, stats, 25) is combined
