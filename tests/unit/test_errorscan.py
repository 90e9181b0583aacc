"""scan_errors: madengine's error-pattern scan of a model log, configurable through the context."""
from __future__ import annotations

import pytest

from pytest_madengine.results.errorscan import DEFAULT_ERROR_PATTERNS, scan_errors


def test_default_patterns_are_madengines() -> None:
    assert DEFAULT_ERROR_PATTERNS == (
        "OutOfMemoryError", "HIP out of memory", "CUDA out of memory", "RuntimeError:",
        "AssertionError:", "ValueError:", "SystemExit", "failed (exitcode:",
        "Traceback (most recent call last)", "FAILED", "Exception:", "ImportError:",
        "ModuleNotFoundError:")


@pytest.mark.parametrize("pattern", DEFAULT_ERROR_PATTERNS)
def test_each_default_pattern_is_found(pattern: str) -> None:
    log = f"starting\nsome output 1 2 3\nxx {pattern} yy\nperformance: 1 x\n"
    assert scan_errors(log, {}) == f"xx {pattern} yy"


def test_clean_log() -> None:
    assert scan_errors("hello\nperformance: 12 tokens/s\n", {}) is None
    assert scan_errors("", {}) is None


def test_first_offending_line_is_returned_stripped() -> None:
    log = "ok\n  torch.OutOfMemoryError: boom  \r\nlater ValueError: x\n"
    assert scan_errors(log, {}) == "torch.OutOfMemoryError: boom"


def test_patterns_are_literal_text() -> None:
    # "failed (exitcode:" would be an unbalanced group as a regex; "." must not match any char.
    assert scan_errors("torchrun: failed (exitcode: 1)\n", {}) == "torchrun: failed (exitcode: 1)"
    assert scan_errors("aXb\n", {"log_error_patterns": ["a.b"]}) is None
    assert scan_errors("a.b\n", {"log_error_patterns": ["a.b"]}) == "a.b"


def test_matching_is_case_sensitive() -> None:
    assert scan_errors("3 tests failed\n", {}) is None
    assert scan_errors("3 tests FAILED\n", {}) == "3 tests FAILED"


def test_context_patterns_replace_the_defaults() -> None:
    context = {"log_error_patterns": ["NCCL error"]}
    assert scan_errors("RuntimeError: x\n", context) is None
    assert scan_errors("ok\nNCCL error in rank 3\n", context) == "NCCL error in rank 3"
    assert scan_errors("NCCL error\n", {"log_error_patterns": "NCCL error"}) == "NCCL error"  # one string


def test_empty_pattern_list_disables_the_scan() -> None:
    assert scan_errors("RuntimeError: x\n", {"log_error_patterns": []}) is None


def test_benign_patterns_are_exceptions() -> None:
    context = {"log_error_benign_patterns": ["Exception: ignored warmup"]}
    log = "Exception: ignored warmup step\nnext\nValueError: real\n"
    assert scan_errors(log, context) == "ValueError: real"
    assert scan_errors("Exception: ignored warmup step\n", context) is None


@pytest.mark.parametrize("value", [False, "false", "False", "0", "no", "off", 0])
def test_scan_can_be_disabled(value: object) -> None:
    assert scan_errors("Traceback (most recent call last)\n", {"log_error_pattern_scan": value}) is None


@pytest.mark.parametrize("value", [True, "true", "1"])
def test_scan_enabled_values(value: object) -> None:
    assert scan_errors("Traceback (most recent call last)\n", {"log_error_pattern_scan": value})


@pytest.mark.parametrize("line", [
    "grep -E 'FAILED|RuntimeError:' log.txt",
    'if grep -q "CUDA out of memory" out.log; then echo oom; fi',
    "+ grep -c RuntimeError: /tmp/log",
    "++ egrep Traceback (most recent call last) x",
    "cat log | grep -v 'Exception:' | wc -l",
])
def test_grep_command_lines_do_not_count(line: str) -> None:
    assert scan_errors(f"{line}\n", {}) is None


def test_grep_line_with_an_unquoted_real_error_counts() -> None:
    line = "grep: 'x' RuntimeError: not quoted"
    assert scan_errors(line + "\n", {}) == line


def test_real_error_after_a_grep_echo_is_found() -> None:
    log = "+ grep -q 'FAILED' summary.txt\nsome text\n1 test FAILED\n"
    assert scan_errors(log, {}) == "1 test FAILED"


def test_no_trailing_newline_and_crlf() -> None:
    assert scan_errors("a\r\nb ValueError: c", {}) == "b ValueError: c"
    assert scan_errors("ValueError: c\r\n", {}) == "ValueError: c"


def test_none_context_means_defaults() -> None:
    assert scan_errors("SystemExit: 1\n", None) == "SystemExit: 1"


def test_error_at_the_end_of_a_large_log_and_many_benign_echoes() -> None:
    """One error after a long clean log is found; thousands of grep echoes are not errors
    (speed on 100 MB: bench/logscan.py)."""
    filler = "step 1000/20000 loss=0.1234 lr=1e-4 throughput 432.1 samples/sec gpu_mem=12.3G\n"
    assert scan_errors(filler * 50_000 + "RuntimeError: boom\n", {}) == "RuntimeError: boom"
    noisy = ("+ grep -q 'FAILED' x\n" + filler * 9) * 5_000
    assert scan_errors(noisy, {}) is None


@pytest.mark.parametrize("line", [
    "/usr/lib/python3/site-packages/torch/x.py:12: FutureWarning: ValueError: will change",
    "E20260114 10:11:12.123456 4242 tool.cpp:301] Exception: counter not supported",
    "W20260114 10:11:12.123456 4242 generateRocpd.cpp:88] RuntimeError: table empty",
    "E20260114 10:11:12.123456 4242 generateRocpd.cpp:99] FAILED to write",
    "[rocprofv3] RuntimeError: agent 2 has no counters",
    "rpd_tracer: Exception: flushing",
    "Failed to establish connection to the metrics exporter agent: RuntimeError: x",
])
def test_madengines_default_benign_lines_do_not_fail_a_run(line):
    assert scan_errors(f"starting\n{line}\nperformance: 1 x\n") is None


def test_a_real_error_next_to_benign_lines_still_fails():
    log = "[rocprofv3] RuntimeError: agent\nTraceback (most recent call last)\n"
    assert scan_errors(log) == "Traceback (most recent call last)"
