"""Multi-node performance: one figure from each node's, by madengine's rule for the metric.

madengine (``deployment/base.py`` ``_determine_aggregation_method``) sums throughput-like metrics
(``throughput``, ``samples_per_second``, ``tokens/sec``, ``qps``, ``bandwidth`` ...), averages
latency/time/accuracy-like ones (``latency``, ``time``, ``seconds``, ``ttft``, ``loss`` ...), takes the
maximum of memory-like ones (``memory``, ``bytes``, ``gb`` ...) and sums anything else.
A bare unit such as ``tokens/s`` or ``samples/s`` counts as throughput, ``ms``/``s`` as time.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

SUM, MEAN, MAX = "sum", "mean", "max"
_SUM_WORDS = ("throughput", "samples_per_second", "tokens_per_second", "images_per_second",
              "requests_per_second", "qps", "bandwidth", "ops_per_second", "samples/sec", "tokens/sec",
              "/s", "per_sec", "fps")
_MEAN_WORDS = ("latency", "time", "duration", "milliseconds", "seconds", "ttft", "tpot", "response_time",
               "accuracy", "precision", "recall", "f1", "loss")
_MEAN_UNITS = ("ms", "s", "sec", "us", "ns", "min")
_MAX_WORDS = ("memory", "bytes", "ram", "vram", "gb", "mb")


def aggregation_rule(metric: str) -> str:
    """``sum``, ``mean`` or ``max`` for a metric name (see the module docstring)."""
    name = metric.strip().lower()
    if any(word in name for word in _SUM_WORDS):
        return SUM
    if name in _MEAN_UNITS or any(word in name for word in _MEAN_WORDS):
        return MEAN
    if any(word in name for word in _MAX_WORDS):
        return MAX
    return SUM


@dataclass(frozen=True)
class Aggregate:
    """The job's figure from the nodes' values: ``value`` by ``rule`` over ``per_node``."""

    value: str
    rule: str
    per_node: tuple[float, ...]

    def properties(self, prefix: str = "aggregation") -> dict[str, str]:
        """JUnit properties: the rule, the node count, each node's value and the spread (stdev, cv)."""
        mean = statistics.fmean(self.per_node)
        stdev = statistics.pstdev(self.per_node)
        return {f"{prefix}.method": self.rule, f"{prefix}.nodes": str(len(self.per_node)),
                f"{prefix}.per_node": ",".join(_number(v) for v in self.per_node),
                f"{prefix}.stdev": _number(stdev), f"{prefix}.cv": _number(stdev / mean if mean else 0.0)}


def aggregate(values: list[str], metric: str) -> Aggregate | None:
    """Combine the nodes' numbers for one metric; None when fewer than two are numbers."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except ValueError:
            continue
    if len(numbers) < 2:
        return None
    rule = aggregation_rule(metric)
    combined = sum(numbers) if rule == SUM else max(numbers) if rule == MAX else statistics.fmean(numbers)
    return Aggregate(value=_number(combined), rule=rule, per_node=tuple(numbers))


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else format(round(value, 6), ".15g")
