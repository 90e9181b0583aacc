"""The rich end-of-run summary: content, totals, plain text off a terminal, colours on one."""
from __future__ import annotations

import io
import re

import pytest

from pytest_madengine.records import FAILURE, SKIPPED, SUCCESS, ModelResult
from pytest_madengine.results.sinks.summary import render_summary, totals_line

RESULTS = [
    ModelResult(model="dummy", status=SUCCESS, performance="812.4", metric="tokens/s", gpus=(0, 1),
                build_duration=2.0, test_duration=10.25),
    ModelResult(model="dummy2/model1[bs=8]", status=FAILURE, phase="timeout",
                reason="timed out after 60 s [see log]", test_duration=60.0, gpus=(2,)),
    ModelResult(model="dummy3/model3", status=SKIPPED, reason="skip_gpu_arch matches gfx942"),
]


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_table_content() -> None:
    text = render_summary(RESULTS, width=200)
    assert "model" in text and "status" in text and "performance" in text and "metric" in text
    row = line_with(text, "dummy ")
    assert "SUCCESS" in row and "812.4" in row and "tokens/s" in row and "10.2 s" in row and "0,1" in row
    failed = line_with(text, "dummy2/model1[bs=8]")  # brackets are not eaten as markup
    assert "FAILURE" in failed and "[timeout] timed out after 60 s [see log]" in failed and "2" in failed
    skipped = line_with(text, "dummy3/model3")
    assert "SKIPPED" in skipped and "skip_gpu_arch matches gfx942" in skipped


def test_reason_only_for_non_success() -> None:
    result = ModelResult(model="ok", status=SUCCESS, reason="should not show", performance="1", metric="x")
    assert "should not show" not in render_summary([result], width=200)


def test_totals_line() -> None:
    assert totals_line(RESULTS) == "3 model runs: 1 passed, 1 failed (1 timeout), 1 skipped; build + test time 72.2 s"
    assert totals_line(RESULTS[:1]).startswith("1 model run: 1 passed, 0 failed, 0 skipped")
    assert render_summary(RESULTS, width=200).rstrip().endswith(totals_line(RESULTS))


def test_empty() -> None:
    assert "0 model runs: 0 passed, 0 failed, 0 skipped" in render_summary([])


def test_multiple_results_rows_are_listed() -> None:
    rows = [{"model": "m_bs1", "status": SUCCESS, "performance": "10", "metric": "x"},
            {"model": "m_bs8", "status": FAILURE, "performance": "", "metric": "x"}]
    text = render_summary([ModelResult(model="m", status=SUCCESS, performance="10", metric="x", rows=rows)],
                          width=200)
    assert "10" in line_with(text, "m_bs1") and "FAILURE" in line_with(text, "m_bs8")


def test_plain_file_gets_no_colour_codes() -> None:
    file = io.StringIO()
    text = render_summary(RESULTS, file=file, width=200)
    written = file.getvalue()
    assert "\x1b[" not in written and "\x1b[" not in text
    assert "812.4" in written


COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])[;m]")  # a foreground colour escape


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_colours(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = FakeTerminal()
    text = render_summary(RESULTS, file=terminal, width=200)
    assert COLOUR.search(terminal.getvalue())  # green/red/yellow status cells
    assert "\x1b[" not in text  # the returned text stays plain


def test_no_color_is_respected(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = FakeTerminal()
    render_summary(RESULTS, file=terminal, width=200)
    assert "\x1b[1m" in terminal.getvalue()  # still a terminal: bold headers
    assert not COLOUR.search(terminal.getvalue())


def test_narrow_width_folds_instead_of_dropping() -> None:
    long_reason = "no performance found in the log: " + "x" * 80
    text = render_summary([ModelResult(model="m", status=FAILURE, phase="sanity", reason=long_reason)], width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "sanity" in text


# --- narrow widths (issue 16): name and status of every model always visible ----------------------

STATUS = re.compile(r"\b(SUCCESS|FAILURE|SKIPPED|BUILT|REUSED|REFERENCED)\b")
LONG_NAME = "pyt_huggingface_gpt2_with_a_very_long_variant_name/bs=8[fp16]"  # 61 characters
MULTI_LINE_REASON = ("the model script ended with exit code 1.\nTraceback (most recent call last):\n"
                     "  File \"train.py\", line 12, in <module>\nRuntimeError: HIP out of memory. " + "x" * 80)
NARROW = [
    ModelResult(model="dummy", status=SUCCESS, performance="812.4", metric="tokens/s", gpus=(0, 1),
                test_duration=10.25),
    ModelResult(model=LONG_NAME, status=FAILURE, phase="run", reason=MULTI_LINE_REASON, gpus=(2,)),
    ModelResult(model="dummy3/model3_with_another_long_name_too", status=SKIPPED,
                reason="skip_gpu_arch matches gfx942"),
    ModelResult(model="multi", status=SUCCESS, performance="10", metric="x", rows=[
        {"model": "multi_bs1", "status": SUCCESS, "performance": "10", "metric": "x"},
        {"model": "multi_bs8", "status": FAILURE, "performance": "", "metric": "x"}]),
]


def flat(text: str) -> str:
    """The words of ``text`` without table borders: a cell wrapped over lines reads as one run of words."""
    return " ".join(re.sub("[│┃]", " ", text).split())


def status_of(text: str, model: str) -> str:
    """The status shown with ``model``: in its table row, or on the line after its (folded) name."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if re.search(rf"│ +{re.escape(model)} +│", line):
            return STATUS.search(line).group(1)
        name, after = "", index
        while after < len(lines) and len(name) < len(model) and model.startswith(name + lines[after].strip()):
            name, after = name + lines[after].strip(), after + 1
        if name == model and after < len(lines) and STATUS.search(lines[after]):
            return STATUS.search(lines[after]).group(1)
    raise AssertionError(f"{model} with its status not found in:\n{text}")


@pytest.mark.parametrize("width", [160, 80, 60, 40])
def test_every_name_and_status_visible_at_any_width(width: int) -> None:
    text = render_summary(NARROW, width=width)
    assert all(len(line) <= width for line in text.splitlines()), text
    assert {r.model: status_of(text, r.model) for r in NARROW} == {r.model: r.status for r in NARROW}
    assert status_of(text, "multi_bs1") == SUCCESS and status_of(text, "multi_bs8") == FAILURE
    assert "[run] the model script ended with exit code 1. Traceback" in flat(text)  # wrapped, not lost
    assert "812.4" in text and "tokens/s" in text


@pytest.mark.parametrize("width, dropped", [(200, []), (80, ["gpus"]), (70, ["gpus", "duration"])])
def test_narrow_table_drops_secondary_columns_before_the_reason(width: int, dropped: list[str]) -> None:
    results = [NARROW[0], ModelResult(model="exit1", status=FAILURE, phase="run", reason=MULTI_LINE_REASON)]
    header = line_with(render_summary(results, width=width), "┃ model").split()
    assert [name for name in ("gpus", "duration") if name not in header] == dropped
    assert all(name in header for name in ("model", "status", "performance", "metric", "reason"))


def test_absurdly_narrow_width_still_lists_names() -> None:
    text = render_summary(NARROW[:1], width=5)
    assert status_of(text, "dummy") == SUCCESS


# --- build-only sessions ------------------------------------------------------------------------

def build_results() -> list[ModelResult]:
    from pytest_madengine.results.sinks.summary import BUILT, REFERENCED, REUSED, build_reason

    return [
        ModelResult(model="dummy", status=SUCCESS, image="ci-dummy_dummy.ubuntu.amd", build_duration=3.25,
                    reason=build_reason(BUILT)),
        ModelResult(model="dummy2/model1", status=SUCCESS, image="ci-dummy2_model1_dummy.ubuntu.amd",
                    reason=build_reason(REUSED, "localhost:5000/ci-dummy2_model1_dummy.ubuntu.amd:latest")),
        ModelResult(model="given", status=SUCCESS, image="reg/given:1",
                    reason=build_reason(REFERENCED)),
        ModelResult(model=LONG_NAME, status=FAILURE, phase="build", reason="building failed at Step 2/4\nRUN x"),
    ]


def test_build_outcome_round_trip() -> None:
    from pytest_madengine.results.sinks.summary import BUILT, REUSED, build_outcome, build_reason

    assert build_outcome(ModelResult(model="m", status=SUCCESS, reason=build_reason(BUILT))) == (BUILT, "")
    pushed = build_reason(REUSED, "reg:5000/x:latest")
    assert build_outcome(ModelResult(model="m", status=SUCCESS, reason=pushed)) == (REUSED, "reg:5000/x:latest")
    assert build_outcome(ModelResult(model="m", status=FAILURE, reason="boom")) == (FAILURE, "")


@pytest.mark.parametrize("width", [160, 80, 40])
def test_build_summary_tells_what_happened_to_each_image(width: int) -> None:
    from pytest_madengine.results.sinks.summary import build_totals_line, render_build_summary

    results = build_results()
    text = render_build_summary(results, width=width)
    assert all(len(line) <= width for line in text.splitlines()), text
    assert [status_of(text, r.model) for r in results] == ["BUILT", "REUSED", "REFERENCED", FAILURE]
    assert "localhost:5000/ci-dummy2_model1_dummy.ubuntu.amd:latest" in re.sub(r"\s", "", text)  # folded when narrow
    assert "[build] building failed at Step 2/4 RUN x" in flat(text)
    assert "model run" not in text and "passed" not in text
    assert build_totals_line(results) == ("4 models built only (none run): images 1 built, 1 reused, "
                                          "1 referenced, 1 pushed, 1 failed; build time 3.2 s")
    assert flat(text).endswith(build_totals_line(results))


def test_build_totals_line_for_one_image() -> None:
    from pytest_madengine.results.sinks.summary import build_totals_line

    assert build_totals_line(build_results()[:1]) == (
        "1 model built only (none run): images 1 built, 0 reused, 0 pushed, 0 failed; build time 3.2 s")


# --- the whole truth (issue 20.7) -----------------------------------------------------------------
def test_item_name_carries_the_variant() -> None:
    result = ModelResult(model="dummy", status=SUCCESS, performance="1", metric="x",
                         nodeid="hub/models.json::dummy[ubuntu.amd]")
    assert "dummy[ubuntu.amd]" in line_with(render_summary([result], width=200), "SUCCESS")


def test_compare_shows_baseline_and_change() -> None:
    result = ModelResult(model="llama", status=FAILURE, phase="performance", performance="900", metric="tok/s",
                         reason="12.0 % below its baseline", properties={"baseline": "1022.7", "relative_change": "-12.00"})
    text = render_summary([result], width=200)
    assert "baseline" in text.splitlines()[2] and "change" in text.splitlines()[2]  # the header row
    row = line_with(text, "llama")
    assert "1022.7" in row and "-12.00 %" in row
    assert "baseline" not in render_summary(RESULTS, width=200)  # no comparison, no empty columns


def test_repeats_show_the_median_the_spread_and_each_run() -> None:
    rows = [{"model": "m", "status": SUCCESS, "performance": value, "metric": "x"} for value in ("10", "12", "11")]
    result = ModelResult(model="m", status=SUCCESS, performance="11", metric="x", rows=rows,
                         properties={"repeat_count": "3", "repeat_median": "11", "repeat_min": "10",
                                     "repeat_max": "12", "repeat_stdev": "1", "repeat_cv": "9.09"})
    text = render_summary([result], width=200)
    assert "10-12, CV 9.09 %" in line_with(text, "SUCCESS")
    runs = [[cell.strip() for cell in line_with(text, f"run {n}").split("│")[2:4]] for n in (1, 2, 3)]
    assert runs == [["SUCCESS", "10"], ["SUCCESS", "12"], ["SUCCESS", "11"]]


def test_multi_node_value_says_how_it_was_combined() -> None:
    result = ModelResult(model="pair", status=SUCCESS, performance="85", metric="samples_per_second",
                         properties={"aggregation.method": "sum", "aggregation.nodes": "2"})
    assert "2 nodes, sum" in line_with(render_summary([result], width=200), "pair")


def test_terminal_control_sequences_never_reach_the_summary() -> None:
    result = ModelResult(model="evil", status=FAILURE, phase="run",
                         reason="\x1b]0;owned\x07\x1b[2J\x1b[31mboom\x1b[0m \x08x")
    text = render_summary([result], width=200)
    assert "\x1b" not in text and "\x07" not in text and "\x08" not in text
    assert "[run] boom \\x08x" in line_with(text, "evil")


def test_summary_fits_80_columns_with_every_column_in_use() -> None:
    result = ModelResult(model="pyt_vllm_llama-3.1-8b[ubuntu.amd]", status=FAILURE, phase="performance",
                         performance="900.5", metric="tokens_per_second", reason="below baseline", gpus=(0, 1),
                         properties={"baseline": "1022.7", "relative_change": "-12.00", "repeat_count": "2",
                                     "repeat_min": "880", "repeat_max": "921", "repeat_cv": "3.2",
                                     "aggregation.method": "sum", "aggregation.nodes": "2"})
    text = render_summary([result], width=80)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "pyt_vllm_llama-3.1-8b[ubuntu.amd]" in text and "FAILURE" in text
def test_rich_loading_in_a_thread_is_finished_before_the_summary_is_drawn() -> None:
    """The first result starts the import (issue 22.5); drawing waits for it; once per process."""
    from pytest_madengine.results.sinks import summary

    summary.preload_rich()
    thread = summary._preload
    summary.preload_rich()  # once per process
    assert thread is not None and summary._preload is thread
    text = render_summary(RESULTS, width=120)
    assert not thread.is_alive() and "SUCCESS" in line_with(text, "dummy ")
