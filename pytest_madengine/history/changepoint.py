"""Change points in a model's series of session values: E-divisive means with a permutation test.

The method of Matteson & James (2014), as Apache Otava (formerly Hunter) applies it to
performance series: split a segment where the energy statistic between its two parts is
largest, keep the split when a permutation test finds it significant, recurse into both parts.
Univariate with exponent 1, the statistic of a split needs only sums of |xᵢ − xⱼ| inside each
part, which a Fenwick tree over the values' ranks gives for every split in O(n log n), so a
permutation test of 199 shuffles stays fast in pure Python (no numpy/ruptures dependency).

Deterministic: the shuffles come from a generator seeded by the series, so the same history
gives the same change points on every machine. Values are unitless floats; the result names
indices into the series.
"""
from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

PERMUTATIONS = 199
ALPHA = 0.01  # significance level of the permutation test (0.05 splits noise into levels)
MIN_SIZE = 2  # fewest points on each side of a change point (one outlier is no change)


@dataclass(frozen=True)
class ChangePoint:
    """A persistent shift at ``index`` (the first point of the new level) in a series.

    ``before``/``after``: the means of the segments on either side (to the neighbouring change
    points); ``p_value``: of the permutation test; ``change``: (after − before) / |before| in %.
    """

    index: int
    before: float
    after: float
    p_value: float

    @property
    def change(self) -> float:
        return (self.after - self.before) / abs(self.before) * 100.0 if self.before else 0.0


def change_points(values: Sequence[float], *, alpha: float = ALPHA, min_size: int = MIN_SIZE,
                  permutations: int = PERMUTATIONS) -> list[ChangePoint]:
    """The significant change points of ``values`` (oldest first), in index order."""
    series = [float(value) for value in values]
    rng = random.Random(hash(tuple(series)) & 0xFFFFFFFF)
    found: dict[int, float] = {}  # index → p-value
    pending = [(0, len(series))]
    while pending:
        start, end = pending.pop()
        split = _best_split(series[start:end], min_size)
        if split is None:
            continue
        index, statistic = split
        p_value = _p_value(series[start:end], statistic, min_size, permutations, rng, alpha)
        if p_value <= alpha:
            found[start + index] = p_value
            pending += [(start, start + index), (start + index, end)]
    bounds = [0, *sorted(found), len(series)]
    return [ChangePoint(index, statistics.fmean(series[bounds[k]:index]),
                        statistics.fmean(series[index:bounds[k + 2]]), found[index])
            for k, index in enumerate(bounds[1:-1])]


def _best_split(series: Sequence[float], min_size: int) -> tuple[int, float] | None:
    """The split index with the largest energy statistic, and that statistic (None: too short)."""
    n = len(series)
    if n < 2 * min_size:
        return None
    prefix = _within_sums(series)  # prefix[t]: Σ|xi − xj| over pairs i < j < t
    suffix = _within_sums(series[::-1])[::-1]  # suffix[t]: over pairs t ≤ i < j
    total = prefix[n]
    best: tuple[int, float] | None = None
    for t in range(min_size, n - min_size + 1):
        m = n - t
        cross = total - prefix[t] - suffix[t]
        energy = 2.0 * cross / (t * m) - 2.0 * prefix[t] / (t * t) - 2.0 * suffix[t] / (m * m)
        q = energy * t * m / n
        if best is None or q > best[1]:
            best = (t, q)
    return best


def _within_sums(series: Sequence[float]) -> list[float]:
    """``sums[t]`` = Σ |xᵢ − xⱼ| over i < j < t, for t = 0 … n (Fenwick trees of counts and sums by rank)."""
    ranks = {value: rank for rank, value in enumerate(sorted(set(series)), start=1)}
    size = len(ranks)
    counts, totals = [0] * (size + 1), [0.0] * (size + 1)
    sums, running, seen, seen_total = [0.0], 0.0, 0, 0.0
    for value in series:
        rank = ranks[value]
        below, below_total = 0, 0.0
        i = rank
        while i > 0:
            below += counts[i]
            below_total += totals[i]
            i -= i & -i
        above, above_total = seen - below, seen_total - below_total
        running += value * below - below_total + above_total - value * above
        sums.append(running)
        seen, seen_total = seen + 1, seen_total + value
        i = rank
        while i <= size:
            counts[i] += 1
            totals[i] += value
            i += i & -i
    return sums


def _p_value(series: Sequence[float], statistic: float, min_size: int, permutations: int,
             rng: random.Random, alpha: float) -> float:
    """The share of shuffles whose best split is at least as strong (with the observed one counted).

    Stops as soon as the split cannot be significant at ``alpha`` (then returns that lower bound).
    """
    shuffled = list(series)
    at_least = 0
    limit = alpha * (permutations + 1)
    for _ in range(permutations):
        rng.shuffle(shuffled)
        split = _best_split(shuffled, min_size)
        if split is not None and split[1] >= statistic:
            at_least += 1
            if at_least + 1 > limit:
                break
    return (at_least + 1) / (permutations + 1)
