"""Speed of the two log scans every model result goes through, on large logs.

    python bench/logscan.py [--mb 100] [--repeat 3]

(a) ``find_performance`` on ``--mb`` MB of throughput-looking training output with the
performance line at the very end; (b) ``scan_errors`` on the same log with one error at the end;
(c) ``scan_errors`` on a log where every tenth line is a ``+ grep -q 'FAILED'`` shell echo (benign
matches that must be skipped). Reports the best of ``--repeat`` wall times and the MB/s.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pytest_madengine.results.errorscan import scan_errors
from pytest_madengine.results.performance import find_performance

FILLER = "step 1000/20000 loss=0.1234 lr=1e-4 throughput 432.1 samples/sec gpu_mem=12.3G\n"


def best_of(repeat: int, call: Callable[[], object]) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    body = FILLER * (args.mb * 1_000_000 // len(FILLER))
    perf_log = body + "performance: 812.4 tokens/s\n"
    error_log = body + "RuntimeError: boom\n"
    echo_block = "+ grep -q 'FAILED' x\n" + FILLER * 9
    echo_log = echo_block * (args.mb * 1_000_000 // len(echo_block))
    assert find_performance(perf_log) == ("812.4", "tokens/s")
    assert scan_errors(error_log, {}) == "RuntimeError: boom"
    assert scan_errors(echo_log, {}) is None
    for label, log, call in (("find_performance", perf_log, lambda: find_performance(perf_log)),
                             ("scan_errors, error at end", error_log, lambda: scan_errors(error_log, {})),
                             ("scan_errors, 10% grep echoes", echo_log, lambda: scan_errors(echo_log, {}))):
        seconds = best_of(args.repeat, call)
        print(f"{label:30s} {len(log) / 1e6:6.0f} MB  {seconds:6.3f} s  {len(log) / 1e6 / seconds:7.0f} MB/s")


if __name__ == "__main__":
    main()
