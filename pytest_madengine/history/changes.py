"""Change points of the history's series: one series per row model, GPU architecture, GPU count
and node count (its SUCCESS sessions' values, oldest first), searched by :mod:`.changepoint`.

Used by ``history changes`` (all series), by ``--mad-compare changepoint`` (one series plus the
value being judged) and by the dashboard (marks).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .changepoint import ChangePoint, change_points
from .store import HistoryStore, Match, SessionValue

RECENT = 5  # a change point among the latest this many sessions "starts" the current level


@dataclass(frozen=True)
class Change:
    """A change point of one series: ``session`` is the first session of the new level."""

    match: Match
    metric: str
    session: str
    started: float  # the session's start (unix seconds)
    before: float  # mean of the level before
    after: float  # mean of the level from ``session`` on (to the next change point)
    p_value: float
    sessions_after: int  # sessions in the new level

    @property
    def model(self) -> str:
        """The row model of the series (what the dashboard marks the change on)."""
        return self.match.model

    @property
    def change(self) -> float:
        """(after − before) / |before| in percent."""
        return (self.after - self.before) / abs(self.before) * 100.0 if self.before else 0.0

    def as_json(self) -> dict[str, str | float | int]:
        return {"model": self.match.model, "gpu_architecture": self.match.gpu_architecture,
                "n_gpus": self.match.n_gpus, "nnodes": self.match.nnodes, "metric": self.metric,
                "session": self.session, "started": self.started, "before": self.before, "after": self.after,
                "change_pct": round(self.change, 3), "p_value": self.p_value, "sessions_after": self.sessions_after}

    def describe(self) -> str:
        """``changepoint at session S: mean 1000 before, 902 after over 3 session(s), p = 0.005``."""
        from ..results.references import fmt

        return (f"changepoint at session {self.session}: mean {fmt(round(self.before, 6))} before, "
                f"{fmt(round(self.after, 6))} after over {self.sessions_after} session(s), p = {self.p_value:.3f}")


def series_changes(match: Match, values: Sequence[SessionValue]) -> list[Change]:
    """The change points of ``values`` (oldest first) as :class:`Change` objects."""
    points = change_points([item.value for item in values])
    bounds = [point.index for point in points] + [len(values)]
    return [_change(match, values, point, bounds[k + 1]) for k, point in enumerate(points)]


def latest_shift(match: Match, values: Sequence[SessionValue]) -> Change | None:
    """The last change point of ``values`` (oldest first) when it starts among the latest
    :data:`RECENT` of them (the current level began recently), else None."""
    changes = series_changes(match, values)
    return changes[-1] if changes and changes[-1].sessions_after <= RECENT else None


def find_changes(store: HistoryStore, *, model: str | None = None) -> list[Change]:
    """Every change point in the history (of one row model when ``model`` is given), by model, then time."""
    found: list[Change] = []
    for match in store.matches():
        if model is None or match.model == model:
            values = store.session_values(match)[::-1]
            found += series_changes(match, values)
    return sorted(found, key=lambda change: (change.match.model, change.started, change.session))


def _change(match: Match, values: Sequence[SessionValue], point: ChangePoint, end: int) -> Change:
    first = values[point.index]
    return Change(match, first.metric, first.session_id, first.started, point.before, point.after,
                  point.p_value, end - point.index)
