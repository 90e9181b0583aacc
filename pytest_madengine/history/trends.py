"""The history as trends: one series per row model × GPU architecture × GPU count × node count, one
point per session (oldest first), on a session axis (id, commit, pipeline and build number).

:func:`collect_trends` streams :meth:`HistoryStore.rows` once and keeps only the newest
``max_sessions`` sessions, so memory is bounded by what the page shows, not by the history.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..records import FAILURE
from .store import HistoryRow, Match, SessionSummary

_TAG_SPLIT = re.compile(r"[,;\s]+")


@dataclass(frozen=True)
class SessionLabel:
    """What the x axis says about a session: its id, the MAD package's commit, the CI pipeline/build."""

    id: str
    started: float  # unix seconds
    commit: str = ""
    pipeline: str = ""
    build_number: str = ""


@dataclass(frozen=True)
class TrendPoint:
    """One session's value for one series: the median of its numeric rows (repeats).

    ``samples``: every numeric value of the session (the repeat distribution); durations are the
    medians of perf.csv's ``build_duration`` / ``test_duration`` in seconds (None when absent).
    """

    session_id: str
    started: float  # unix seconds
    value: float | None
    status: str  # FAILURE when any of the session's rows failed
    runs: int
    samples: tuple[float, ...] = ()
    build_duration: float | None = None
    test_duration: float | None = None


@dataclass
class Series:
    """The trend of one row model in one context (sessions oldest first)."""

    match: Match
    metric: str = ""
    points: list[TrendPoint] = field(default_factory=list)
    tags: tuple[str, ...] = ()


@dataclass
class Trends:
    """Every series of the kept sessions; ``sessions`` oldest first (a point's x is its index there)."""

    sessions: list[SessionLabel]
    series: dict[Match, Series]
    dropped_sessions: int = 0  # older sessions left out by ``max_sessions``


@dataclass
class _Bucket:
    """One series' rows of one session while they are read."""

    started: float
    values: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    builds: list[float] = field(default_factory=list)
    tests: list[float] = field(default_factory=list)

    def point(self, session_id: str) -> TrendPoint:
        status = FAILURE if FAILURE in self.statuses else (self.statuses[0] if self.statuses else "")
        return TrendPoint(session_id, self.started, _median(self.values),
                          status, len(self.statuses), tuple(self.values), _median(self.builds),
                          _median(self.tests))


def collect_series(rows: Iterable[HistoryRow]) -> dict[Match, Series]:
    """Group rows (sessions oldest first, as ``HistoryStore.rows`` yields them) into series."""
    return _collect(rows, None)[0]


def collect_trends(rows: Iterable[HistoryRow], sessions: Sequence[SessionSummary], *,
                   max_sessions: int | None = None) -> Trends:
    """The series of the newest ``max_sessions`` of ``sessions`` (``HistoryStore.sessions()``, newest first)."""
    kept = list(sessions if max_sessions is None else sessions[:max_sessions])
    series, labels = _collect(rows, {item.info.id for item in kept})
    axis = []
    for item in reversed(kept):
        commit, pipeline, build_number = labels.get(item.info.id, ("", "", ""))
        axis.append(SessionLabel(item.info.id, item.info.started, item.info.git_commit or commit, pipeline,
                                 build_number))
    return Trends(axis, series, len(sessions) - len(kept))


def _collect(rows: Iterable[HistoryRow], keep: set[str] | None
             ) -> tuple[dict[Match, Series], dict[str, tuple[str, str, str]]]:
    grouped: dict[Match, dict[str, _Bucket]] = {}
    metrics: dict[Match, str] = {}
    tags: dict[Match, dict[str, None]] = {}
    labels: dict[str, tuple[str, str, str]] = {}  # session → (row commit, pipeline, build number)
    for row in rows:
        if keep is not None and row.session_id not in keep:
            continue
        fields = row.fields
        match = Match.of_row(fields)
        bucket = grouped.setdefault(match, {}).setdefault(row.session_id, _Bucket(row.started))
        if row.value is not None:
            bucket.values.append(row.value)
        bucket.statuses.append(fields["status"])
        _add_number(bucket.builds, fields.get("build_duration", ""))
        _add_number(bucket.tests, fields.get("test_duration", ""))
        if fields["metric"]:
            metrics[match] = fields["metric"]
        tags.setdefault(match, {}).update(dict.fromkeys(t for t in _TAG_SPLIT.split(fields.get("tags", "")) if t))
        if row.session_id not in labels or not any(labels[row.session_id]):
            labels[row.session_id] = (fields.get("git_commit", ""), fields.get("pipeline", ""),
                                      fields.get("build_number", ""))
    series = {}
    for match, buckets in grouped.items():
        points = sorted((bucket.point(sid) for sid, bucket in buckets.items()),
                        key=lambda point: (point.started, point.session_id))
        series[match] = Series(match, metrics.get(match, ""), points, tuple(tags.get(match, {})))
    return series, labels


def _add_number(numbers: list[float], text: str) -> None:
    try:
        value = float(text)
    except ValueError:
        return
    if math.isfinite(value):
        numbers.append(value)


def _median(numbers: list[float]) -> float | None:
    if len(numbers) < 2:  # the common case (one run per session), without statistics' overhead
        return numbers[0] if numbers else None
    return statistics.median(numbers)
