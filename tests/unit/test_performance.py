"""find_performance (madengine's log line) and read_multiple_results (the CSV form)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.results.performance import find_performance, read_multiple_results


@pytest.mark.parametrize("line, expected", [
    ("performance: 812.4 tokens/s", ("812.4", "tokens/s")),
    ("performance:   42 samples_per_second", ("42", "samples_per_second")),
    ("performance:\t3.5\tms", ("3.5", "ms")),
    ("performance: -1.25 delta", ("-1.25", "delta")),
    ("performance: +7 x", ("+7", "x")),
    ("performance: 1.5e3 img/s", ("1.5e3", "img/s")),
    ("performance: 2E-4 s", ("2E-4", "s")),
    ("performance: .5 ratio", (".5", "ratio")),
    ("performance: 12.3/s, samples", ("12.3", "samples")),  # optional /unit then comma
    ("performance: 12.3/gpu tokens", ("12.3", "tokens")),
    ("performance: 99, requests_per_s", ("99", "requests_per_s")),
    ("[rank0] INFO performance: 10 tok/s (avg)", ("10", "tok/s")),
    ("performance: 10 tokens_per_second,extra", ("10", "tokens_per_second")),  # metric stops at a comma
])
def test_performance_line_forms(line: str, expected: tuple[str, str]) -> None:
    assert find_performance(f"start\n{line}\nend\n") == expected


def test_first_match_wins() -> None:
    log = "warmup\nperformance: 1 a\nperformance: 2 b\n"
    assert find_performance(log) == ("1", "a")


@pytest.mark.parametrize("log", [
    "",
    "no numbers here",
    "performance: fast tokens/s",  # not a number
    "performance:12 tokens",  # madengine requires whitespace after the colon
    "performance: 12\ntokens/s",  # the metric must be on the same line
    "performance: 12",  # no metric
    "Performance: 12 tokens",  # case-sensitive like madengine
])
def test_no_performance(log: str) -> None:
    assert find_performance(log) is None


@pytest.mark.parametrize("log, value", [
    ("{'train_runtime': 10.0, 'train_samples_per_second': 123.45, 'epoch': 1.0}", "123.45"),
    ("  train_samples_per_second =     98.7\n", "98.7"),
    ('{"train_samples_per_second": 5}', "5"),
])
def test_huggingface_fallback(log: str, value: str) -> None:
    assert find_performance(log) == (value, "samples_per_second")


def test_performance_line_beats_huggingface_fallback() -> None:
    log = "'train_samples_per_second': 1.0\nperformance: 9 tokens/s\n"
    assert find_performance(log) == ("9", "tokens/s")


def test_line_at_the_end_of_a_large_noisy_log() -> None:
    """Throughput-looking noise never wins over the performance line (speed: bench/logscan.py)."""
    filler = "step 1000/20000 loss=0.1234 lr=1e-4 throughput 432.1 samples/sec gpu_mem=12.3G\n"
    log = filler * 50_000 + "performance: 812.4 tokens/s\n" + filler * 10
    assert find_performance(log) == ("812.4", "tokens/s")


# --- multiple results ----------------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "results.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_multiple_results_rows_named_after_card(tmp_path: Path) -> None:
    path = write(tmp_path, "model,performance,metric\nbs1,100.5,tokens/s\nbs8,700,tokens/s\n")
    rows = read_multiple_results(path, "vllm/llama")
    assert rows == [
        {"model": "vllm/llama_bs1", "performance": "100.5", "metric": "tokens/s"},
        {"model": "vllm/llama_bs8", "performance": "700", "metric": "tokens/s"},
    ]


def test_multiple_results_header_stripped_and_extra_columns_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff model , performance ,metric, batch\n a , 1 , x , 8 \n")
    assert read_multiple_results(path, "m") == [
        {"model": "m_a", "performance": "1", "metric": "x", "batch": "8"}]


def test_multiple_results_blank_lines_and_short_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "model,performance,metric,extra\n\na,1,x\nb,,x,e\n")
    rows = read_multiple_results(path, "m")
    assert rows == [{"model": "m_a", "performance": "1", "metric": "x", "extra": ""},
                    {"model": "m_b", "performance": "", "metric": "x", "extra": "e"}]


def test_multiple_results_missing_file_explains_the_trap(tmp_path: Path) -> None:
    with pytest.raises(MadError) as info:
        read_multiple_results(tmp_path / "perf_x.csv", "dummy")
    message = str(info.value)
    assert "perf_x.csv" in message and "dummy" in message
    assert "multiple_results" in message and "empty FAILURE row" in message


@pytest.mark.parametrize("text", ["", "\n", "model,performance,metric\n", "model,performance,metric\na,,x\n"])
def test_multiple_results_without_any_performance(tmp_path: Path, text: str) -> None:
    with pytest.raises(MadError) as info:
        read_multiple_results(write(tmp_path, text), "dummy")
    assert "multiple_results" in str(info.value)
    assert "empty FAILURE row" in str(info.value)


def test_multiple_results_bad_header_names_file_and_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "name,value,unit\na,1,x\n")
    with pytest.raises(MadError) as info:
        read_multiple_results(path, "dummy")
    message = str(info.value)
    assert str(path) in message
    assert "model, performance, metric" in message  # what is missing
    assert "'name', 'value', 'unit'" in message  # what was found
