"""References: file validation, most specific match, the verdict and its message, applying verdicts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.records import FAILURE, SUCCESS, ModelResult
from pytest_madengine.results.reference_file import load_references, parse_references
from pytest_madengine.results.references import (
    Context,
    apply_verdicts,
    guess_direction,
    judge_against,
    judge_against_baseline,
    judge_result,
    verdict_properties,
)

GFX942_X8 = Context("gfx942", 8, 1)


def refs(data: object):
    return parse_references(data, "refs.yaml")


def one_run(model: str, *values: str, metric: str = "tokens/s") -> ModelResult:
    rows = [{"model": model, "performance": value, "metric": metric, "gpu_architecture": "gfx942", "n_gpus": "8",
             "nnodes": "1", "status": SUCCESS, "relative_change": ""} for value in values]
    return ModelResult(model=model, status=SUCCESS, performance=values[0], metric=metric, rows=rows)


def test_900_against_900_plus_minus_5_percent_passes() -> None:
    reference = refs({"llama": {"value": 900, "tolerance": "5%", "unit": "tokens/s"}}).lookup("llama", GFX942_X8)
    assert reference is not None
    verdict = judge_against(900, "tokens/s", reference, GFX942_X8)
    assert verdict.passed and verdict.relative_change == 0
    assert verdict.lower == 855 and verdict.upper is None


def test_812_fails_with_the_actionable_message() -> None:
    reference = refs({"llama": {"value": 900, "tolerance": "5%"}}).lookup("llama", GFX942_X8)
    assert reference is not None
    verdict = judge_against(812, "tokens/s", reference, GFX942_X8)
    assert not verdict.passed
    assert verdict.message == "812 tokens/s is 9.8 % below the reference 900 (allowed 5 %), gfx942 × 8"
    assert round(verdict.relative_change, 2) == -9.78


def test_two_sided_band_absolute_and_percent() -> None:
    reference = refs({"m": {"value": 100, "lower": 2, "upper": "10%"}}).lookup("m", Context())
    assert reference is not None and reference.band() == (98, 110)
    assert judge_against(110, "", reference, Context()).passed
    too_high = judge_against(111, "img/s", reference, Context("gfx90a", 1, 2))
    assert not too_high.passed
    assert too_high.message == "111 img/s is 11.0 % above the reference 100 (allowed 10 %), gfx90a × 1, 2 nodes"
    too_low = judge_against(97.5, "img/s", reference, Context())
    assert too_low.message == "97.5 img/s is 2.5 % below the reference 100 (allowed 2 img/s)"


def test_lower_is_better_bounds_the_upper_side() -> None:
    reference = refs({"lat": {"value": 2.0, "tolerance": "10%", "direction": "lower"}}).lookup("lat", Context())
    assert reference is not None and reference.band() == (None, pytest.approx(2.2))
    assert judge_against(1.0, "ms", reference, Context()).passed
    slow = judge_against(2.5, "ms", reference, Context(n_gpus=1))
    assert not slow.passed and slow.message == "2.5 ms is 25.0 % above the reference 2 (allowed 10 %), 1 GPU"


def test_most_specific_entry_wins_then_exact_over_glob_over_regex() -> None:
    references = refs({
        "re:^bert.*": {"value": 1, "tolerance": 1},
        "bert_*": {"value": 2, "tolerance": 1},
        "bert_large": [{"value": 3, "tolerance": 1},
                       {"value": 4, "tolerance": 1, "gpu_architecture": "gfx942", "n_gpus": 8}],
    })
    assert references.lookup("bert_large", GFX942_X8).value == 4  # type: ignore[union-attr]
    assert references.lookup("bert_large", Context("gfx90a", 8)).value == 3  # type: ignore[union-attr]
    assert references.lookup("bert_base", GFX942_X8).value == 2  # type: ignore[union-attr]
    assert references.lookup("bertie", GFX942_X8).value == 1  # type: ignore[union-attr]
    assert references.lookup("gpt", GFX942_X8) is None


@pytest.mark.parametrize(("data", "words"), [
    ([1, 2], "not a mapping"),
    ({"m": {"value": 0, "tolerance": 1}}, "m: value must be a non-zero number"),
    ({"m": {"value": "fast", "tolerance": 1}}, "value must be a non-zero number"),
    ({"m": {"value": 9, "tolerance": "-5%"}}, "tolerance must be a number"),
    ({"m": {"value": 9}}, "no tolerance given"),
    ({"m": {"value": 9, "tolerance": 1, "lower": 2}}, "both tolerance and lower"),
    ({"m": {"value": 9, "tolerance": 1, "direction": "up"}}, "direction must be higher or lower"),
    ({"m": [{"value": 9, "tolerance": 1, "n_gpu": 8}]}, "refs.yaml: m[0]: unknown key(s) n_gpu"),
    ({"m": {"value": 9, "tolerance": 1, "n_gpus": 0}}, "n_gpus must be a whole number"),
    ({"re:(": {"value": 9, "tolerance": 1}}, "invalid regular expression"),
])
def test_invalid_entries_name_file_and_key(data: object, words: str) -> None:
    with pytest.raises(MadError, match=None) as caught:
        refs(data)
    assert words in caught.value.message and "refs.yaml" in caught.value.message


def test_load_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "refs.yaml"
    yaml_file.write_text("llama:\n  value: 900\n  tolerance: 5%\n  unit: tokens/s\n")
    json_file = tmp_path / "refs.json"
    json_file.write_text(json.dumps({"llama": {"value": 900, "tolerance": "5%"}}))
    for path in (yaml_file, json_file):
        reference = load_references(path).lookup("llama", GFX942_X8)
        assert reference is not None and reference.value == 900
    broken = tmp_path / "broken.yaml"
    broken.write_text("llama: [value: 900\n")
    with pytest.raises(MadError, match="broken.yaml: not valid YAML"):
        load_references(broken)
    with pytest.raises(MadError, match="cannot read the references file"):
        load_references(tmp_path / "missing.yaml")


def test_unit_mismatch_fails_with_a_reason() -> None:
    reference = refs({"m": {"value": 900, "tolerance": "5%", "unit": "tokens/s"}}).lookup("m", Context())
    assert reference is not None
    verdict = judge_against(900, "samples/s", reference, Context())
    assert not verdict.passed and "the units differ" in verdict.message


def test_judge_result_fails_the_model_in_phase_performance_and_fills_relative_change() -> None:
    references = refs({"llama": {"value": 900, "tolerance": "5%"}})
    judged, verdicts = judge_result(one_run("llama", "812"), references)
    assert judged.status == FAILURE and judged.phase == "performance"
    assert judged.reason == "812 tokens/s is 9.8 % below the reference 900 (allowed 5 %), gfx942 × 8"
    assert judged.rows[0]["relative_change"] == "-9.78" and judged.rows[0]["status"] == FAILURE
    assert dict(verdict_properties(judged, verdicts)) == {
        "relative_change": "-9.78", "reference_lower": "855", "reference_upper": ""}
    passed, _ = judge_result(one_run("llama", "900"), references)
    assert passed.status == SUCCESS and passed.rows[0]["relative_change"] == "0.00"


def test_judge_result_judges_the_median_of_repeated_rows() -> None:
    references = refs({"llama": {"value": 900, "tolerance": "5%"}})
    judged, verdicts = judge_result(one_run("llama", "800", "890", "1000"), references)
    assert verdicts["llama"].value == 890 and judged.status == SUCCESS
    assert [r["relative_change"] for r in judged.rows] == ["-11.11", "-1.11", "11.11"]


def test_a_second_failing_verdict_is_appended_and_relative_change_kept() -> None:
    references = refs({"llama": {"value": 900, "tolerance": "5%"}})
    judged, _ = judge_result(one_run("llama", "812"), references)
    baseline = judge_against_baseline(812, 1000, 5, metric="tokens/s", label="last, session s1")
    again = apply_verdicts(judged, {"llama": baseline})
    assert again.reason.endswith("; 812 tokens/s is 18.8 % below the baseline 1000 (last, session s1; allowed 5 %)")
    assert again.rows[0]["relative_change"] == "-9.78"


def test_baseline_verdict_fails_only_on_the_worse_side() -> None:
    slower = judge_against_baseline(810, 900, 5, "higher", metric="tokens/s", context=GFX942_X8)
    assert not slower.passed
    assert slower.message == "810 tokens/s is 10.0 % below the baseline 900 (allowed 5 %), gfx942 × 8"
    assert judge_against_baseline(1200, 900, 5, "higher").passed
    assert not judge_against_baseline(1.2, 1.0, 5, "lower").passed
    report_only = judge_against_baseline(1.2, 1.0, None, "lower", metric="s")
    assert report_only.passed and "report only" in report_only.message
    assert dict(slower.junit_properties()) == {"relative_change": "-10.00", "baseline": "900"}


def test_guess_direction() -> None:
    assert guess_direction("tokens/s") == "higher"
    assert guess_direction("ms") == "lower" and guess_direction("latency_p99") == "lower"
