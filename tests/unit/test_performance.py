"""find_performance (madengine's log line) and read_multiple_results (the CSV form)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_madengine.errors import MadError
from pytest_madengine.results.performance import find_performance, read_multiple_results

# Every form madengine's own tests accept (tests/unit/test_container_runner.py), the lines its fixture
# scripts and the MAD hub's scripts print, and the forms a MAD user meets in logs.
MADENGINE_TESTS = [
    ("performance: 12345 samples_per_second", ("12345", "samples_per_second")),
    ("performance: 100.5 samples_per_second", ("100.5", "samples_per_second")),
    ("performance: 1.23e+4 samples_per_second", ("1.23e+4", "samples_per_second")),
    ("performance: 1.23e-4 samples_per_second", ("1.23e-4", "samples_per_second")),
    ("performance: 1.23E+4 samples_per_second", ("1.23E+4", "samples_per_second")),
    ("performance: 0 samples_per_second", ("0", "samples_per_second")),
    ("performance: 123 metric123", ("123", "metric123")),
    ("performance: 123 _metric", ("123", "_metric")),
    ("performance: +123.45 samples_per_second", ("+123.45", "samples_per_second")),
    ("performance: -123.45 samples_per_second", ("-123.45", "samples_per_second")),
    ("performance: .5 samples_per_second", (".5", "samples_per_second")),
    ("performance: 14164/s samples_per_second", ("14164", "samples_per_second")),
    ("performance: 14164.5/s, samples_per_second", ("14164.5", "samples_per_second")),
    ("performance: 100.5, samples_per_second", ("100.5", "samples_per_second")),
    ("performance: 123,/s metric", ("123", "metric")),
    ("performance: 123, /s metric", ("123", "metric")),
    ("performance: 1234.5 samples/sec", ("1234.5", "samples/sec")),
    ("performance: 500.0 tokens/sec", ("500.0", "tokens/sec")),
    ("performance: 500.0/s tokens/sec", ("500.0", "tokens/sec")),
]
SCRIPTS = [  # madengine's tests/fixtures scripts and the MAD hub's scripts/*/run.sh
    ("performance: 27315 samples_per_second", ("27315", "samples_per_second")),  # echo $RANDOM
    ("performance: 4.23 samples_per_second", ("4.23", "samples_per_second")),  # huggingface_bert
    ("performance: 45.23 requests_per_second", ("45.23", "requests_per_second")),
    ("performance: 141.52 images_per_second", ("141.52", "images_per_second")),
    ("performance: 100.0 tokens_per_second", ("100.0", "tokens_per_second")),
    ("performance: 9312 samples_per_second (simulated)", ("9312", "samples_per_second")),
    ("performance: 1 pass", ("1", "pass")),
    ("performance: 3.1 iterations_per_second", ("3.1", "iterations_per_second")),
]
MORE_FORMS = [
    ("performance: 812.4 tokens/s", ("812.4", "tokens/s")),
    ("performance:   42 samples_per_second", ("42", "samples_per_second")),
    ("performance:\t3.5\tms", ("3.5", "ms")),
    ("performance: 1. x", ("1.", "x")),
    ("performance: 123,/s tokens", ("123", "tokens")),  # issue 16: was no match
    ("performance: 123, /s tokens", ("123", "tokens")),  # issue 16: was metric '/s'
    ("performance: 123 /s tokens", ("123", "tokens")),  # blank before the unit
    ("performance: 123/s , tokens", ("123", "tokens")),  # blank before the comma after the unit
    ("performance: 123 , /s tokens", None),  # a comma before the unit must touch the number
    ("performance: 12.3/gpu tokens", ("12.3", "tokens")),
    ("performance: 99, requests_per_s", ("99", "requests_per_s")),
    ("performance: 12 /s", ("12", "/s")),  # nothing after the unit: it is the metric
    ("[rank0] INFO performance: 10 tok/s (avg)", ("10", "tok/s")),
    ("performance: 10 tokens_per_second,extra", ("10", "tokens_per_second")),  # metric stops at a comma
    ("performance: 12\xa0tokens", ("12", "tokens")),  # any blank but a line end
    ("performance: 12 tokens\r", ("12", "tokens")),
]


@pytest.mark.parametrize("line, expected", MADENGINE_TESTS + SCRIPTS + MORE_FORMS)
def test_performance_line_forms(line: str, expected: tuple[str, str] | None) -> None:
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
    "performance: N/A samples_per_second",  # madengine's gpt2 fixture when no number was found
    "performance:  samples_per_second",  # the MAD hub's bert script when its grep found nothing
    "performance: 12\r tokens",  # a carriage return ends the line too
    "performance: 1,5 tokens",  # a decimal comma: no guess
    "performance: 1/s/gpu tokens",  # one unit at most
    "performance: \u0663 tokens",  # digits are ASCII
    "throughput: 100.5 samples_per_second",
])
def test_no_performance(log: str) -> None:
    assert find_performance(log) is None


# --- fuzzing: no crash, and never a wrong split between number and metric --------------------

BLANKS = st.text(alphabet=" \t\xa0", min_size=1, max_size=3)
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=6)


@st.composite
def numbers(draw: st.DrawFn) -> str:
    sign = draw(st.sampled_from(["", "+", "-"]))
    mantissa = draw(st.one_of(DIGITS, st.builds(lambda a, b: f"{a}.{b}", DIGITS, st.text("0123456789", max_size=4)),
                              DIGITS.map(lambda b: f".{b}")))
    exponent = draw(st.one_of(st.just(""), st.builds(lambda e, s, d: e + s + d, st.sampled_from("eE"),
                                                     st.sampled_from(["", "+", "-"]), DIGITS)))
    return sign + mantissa + exponent


@st.composite
def separators(draw: st.DrawFn) -> str:
    """What may stand between the number and the blanks before the metric (all dropped)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(["", ","]))
    unit = "/" + draw(st.text(alphabet="sSecokn", min_size=1, max_size=4))
    before = draw(st.sampled_from(["", ","])) + draw(st.sampled_from(["", " ", "\t "]))
    after = draw(st.sampled_from(["", ",", " ,", "\t,"]))
    return before + unit + after


# A metric: no blank, no comma, and not "/letters" first (that would read as a unit before it).
METRICS = st.text(alphabet=st.characters(blacklist_categories=("Z", "C"), blacklist_characters=","),
                  min_size=1, max_size=12).filter(lambda m: not re.match(r"/[A-Za-z]", m))
NOISE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda t: "performance:" not in t and "train_samples_per_second" not in t)


@settings(deadline=None, max_examples=300)
@given(before=NOISE, number=numbers(), sep=separators(), blank1=BLANKS, blank2=BLANKS, metric=METRICS,
       tail=st.sampled_from(["", " (avg)", ",x", "\t1", "\r\n"]), after=NOISE)
def test_fuzz_generated_lines_split_right(before: str, number: str, sep: str, blank1: str, blank2: str,
                                          metric: str, tail: str, after: str) -> None:
    log = f"{before}\nperformance:{blank1}{number}{sep}{blank2}{metric}{tail}\n{after}"
    assert find_performance(log) == (number, metric)


PIECES = st.sampled_from(["performance:", "performance: ", " ", "\t", "\n", "\r", "1", "23", ".", "e", "E", "+",
                          "-", ",", "/", "s", "/s", "tok", "\xa0", "\u0663", "é"])


@settings(deadline=None, max_examples=500)
@given(log=st.one_of(st.lists(PIECES, max_size=30).map("".join), st.text(max_size=200)))
def test_fuzz_any_text_never_crashes_nor_splits_wrong(log: str) -> None:
    found = find_performance(log)
    if found is None:
        return
    number, metric = found
    assert number.isascii()
    float(number)  # a number Python reads
    assert metric and not re.search(r"[\s,]", metric)
    whole_number = re.compile(r"performance:[^\S\r\n]+" + re.escape(number) + r"(?![0-9])")
    lines = re.split(r"[\r\n]", log)
    assert any(whole_number.search(line) and _in_order(line, "performance:", number, metric) for line in lines)


def _in_order(line: str, *parts: str) -> bool:
    """True when ``parts`` occur in ``line`` in this order, each after the previous one."""
    position = 0
    for part in parts:
        position = line.find(part, position)
        if position < 0:
            return False
        position += len(part)
    return True


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
