"""Repeated runs of one model (``--mad-repeat N``): statistics, one combined result, the CV check.

Every run's perf.csv rows are kept (N rows per row model); the combined result reports the
median as its performance, and references or baselines judge that median (see
``references.judge_result``). ``--mad-max-cv PCT`` fails a model whose runs vary more than PCT
percent (coefficient of variation = sample standard deviation / mean).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..records import FAILURE, SUCCESS, ModelResult
from .references import fmt, row_groups


@dataclass(frozen=True)
class RepeatStats:
    """Statistics of N values (one per run, in the model's metric); ``cv`` in percent."""

    values: tuple[float, ...]
    median: float
    minimum: float
    maximum: float
    stdev: float  # sample standard deviation; 0 for a single run
    cv: float  # stdev / |mean| × 100; 0 when the mean is 0

    @property
    def n(self) -> int:
        return len(self.values)

    def describe(self, metric: str = "") -> str:
        """``median 812 tokens/s over 5 runs (min 790, max 870, stdev 30.1, CV 3.7 %)``."""
        unit = f" {metric}" if metric else ""
        return (f"median {fmt(self.median)}{unit} over {self.n} run{'s' if self.n != 1 else ''} "
                f"(min {fmt(self.minimum)}, max {fmt(self.maximum)}, stdev {fmt(round(self.stdev, 4))}, "
                f"CV {self.cv:.1f} %)")

    def junit_properties(self) -> list[tuple[str, str]]:
        """``repeat_count``, ``repeat_median``, ``repeat_min``, ``repeat_max``, ``repeat_stdev``, ``repeat_cv``."""
        return [("repeat_count", str(self.n)), ("repeat_median", fmt(self.median)),
                ("repeat_min", fmt(self.minimum)), ("repeat_max", fmt(self.maximum)),
                ("repeat_stdev", f"{self.stdev:.4g}"), ("repeat_cv", f"{self.cv:.2f}")]


def repeat_stats(values: Sequence[float]) -> RepeatStats:
    """Statistics of ``values`` (raises ``ValueError`` when empty or not all finite)."""
    if not values:
        raise ValueError("no values to summarise")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"non-finite value among {list(values)}")
    numbers = tuple(float(value) for value in values)
    mean = statistics.fmean(numbers)
    stdev = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    cv = stdev / abs(mean) * 100.0 if mean else 0.0
    return RepeatStats(numbers, statistics.median(numbers), min(numbers), max(numbers), stdev, cv)


def run_values(runs: Sequence[ModelResult], model: str | None = None) -> list[float]:
    """The numeric performances of ``model``'s rows (default: each run's first row model), in run order."""
    values = []
    for run in runs:
        groups = row_groups(run)
        name = model or next(iter(groups), run.model)
        for row in groups.get(name, []):
            try:
                value = float(row.get("performance", ""))
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    return values


def combine_runs(runs: Sequence[ModelResult]) -> tuple[ModelResult, RepeatStats | None]:
    """One result for N runs of one model, and the statistics of its main value (None: no value).

    Rows: every run's rows in run order. Status: the first failing run's status, phase and
    reason (``run 2 of 5: …``), else SUCCESS. Performance: the median of the main row model's
    values. Durations: the build once, the tests summed. Raises ``ValueError`` for no runs.
    """
    if not runs:
        raise ValueError("no runs to combine")
    first = runs[0]
    values = run_values(runs)
    stats = repeat_stats(values) if values else None
    rows = [dict(row) for run in runs for row in run.rows]
    failed = next(((index, run) for index, run in enumerate(runs) if run.status != SUCCESS), None)
    combined = replace(first, rows=rows, test_duration=sum(run.test_duration for run in runs),
                       performance=fmt(stats.median) if stats else first.performance)
    if failed is not None and len(runs) > 1:
        index, run = failed
        combined = replace(combined, status=run.status, phase=run.phase,
                           reason=f"run {index + 1} of {len(runs)}: {run.reason}".rstrip(": "),
                           log_path=run.log_path, log_tail=run.log_tail)
    return combined, stats


def check_cv(result: ModelResult, stats: RepeatStats, max_cv: float) -> ModelResult:
    """``result`` failed (phase ``performance``) when ``stats.cv`` exceeds ``max_cv`` percent.

    Message: ``unstable: CV 7.3 % over 5 runs exceeds the allowed 5 % (median 812, min 790, max
    870 tokens/s)``. A result that already failed, or a single run, is returned unchanged.
    """
    if result.status != SUCCESS or stats.n < 2 or stats.cv <= max_cv:
        return result
    unit = f" {result.metric}" if result.metric else ""
    reason = (f"unstable: CV {stats.cv:.1f} % over {stats.n} runs exceeds the allowed {fmt(max_cv)} % "
              f"(median {fmt(stats.median)}, min {fmt(stats.minimum)}, max {fmt(stats.maximum)}{unit})")
    return replace(result, status=FAILURE, phase="performance", reason=reason)
