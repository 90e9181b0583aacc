"""The HTML dashboard: one self-contained file for a whole hub, charts drawn by uPlot.

Sections: filters (search by model or tag, tag, latest status, GPU architecture; the state is
kept in the URL's ``#q=…&tag=…&status=…&arch=…`` so a filtered view can be linked); the latest
session's results against their baseline (``--compare``, default ``last``) and the reference
band; that session's failures grouped by phase; one card per row model × GPU architecture ×
GPU count × node count with a pass/fail strip (one cell per session), the value trend (the
per-session median, every repeat as a dot, failed sessions in red, the reference value dashed
and its band shaded, change points as vertical lines), the build/run duration trend and a link
to the model's log when ``logs`` holds one. The x axis is the session: its place in the history,
labelled with the build number (or date) and, on hover, the session id, commit and pipeline.

Data is embedded as escaped JSON (:mod:`pytest_madengine.reports.page`) and charts are drawn
when their card scrolls into view, so 10,000 results give a page of about 0.5 MB that is
interactive in well under 2 s. The newest :data:`MAX_SESSIONS` sessions are shown; the page
says how many older ones were left out.
"""
from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ..fileio import safe_name
from ..records import FAILURE
from ..reports.page import chart_assets, environment, script_json
from ..results.references import References, guess_direction, judge_against_baseline, relative_change
from ..results.references import fmt as fmt_number
from .spec import parse_compare_spec
from .store import HistoryStore, Match
from .trends import Series, SessionLabel, TrendPoint, Trends, collect_series, collect_trends

__all__ = ["ChangePoint", "ChangePointLike", "MAX_SESSIONS", "Series", "TrendPoint", "collect_series",
           "render_dashboard", "write_dashboard"]

EAGER_CARDS = 8  # drawn at once; the others when scrolled into view
MAX_SESSIONS = 400  # newest sessions on the page (a year of nightly runs)


class ChangePointLike(Protocol):
    """A change point as ``history changes`` finds it: the first session of a persistent shift."""

    @property
    def model(self) -> str: ...
    @property
    def session(self) -> str: ...
    @property
    def before(self) -> float: ...
    @property
    def after(self) -> float: ...
    @property
    def p_value(self) -> float: ...


@dataclass(frozen=True)
class ChangePoint:
    """A change point given to the dashboard (``before``/``after``: the means on each side)."""

    model: str
    session: str
    before: float
    after: float
    p_value: float


def render_dashboard(store: HistoryStore, *, references: References | None = None, compare: str = "last",
                     fail_pct: float | None = None, title: str = "pytest-madengine results",
                     changes: Sequence[ChangePointLike] = (), logs: Path | None = None,
                     link_base: Path | None = None, max_sessions: int = MAX_SESSIONS) -> str:
    """The dashboard's HTML (about 0.5 MB for 10,000 results).

    ``compare``: the baseline spec of the latest-session table (``--mad-compare`` forms);
    ``fail_pct``: marks a change worse than this many percent as a regression; ``changes``: change
    points drawn on the trends of their model; ``logs``: the session's log directory, a card links
    ``<logs>/<model>.run.log`` when it exists (relative to ``link_base``, the page's directory, when
    given). Raises :class:`MadError` for a bad ``compare``.
    """
    spec = parse_compare_spec(compare, where="--compare")
    sessions = store.sessions()
    trends = collect_trends(store.rows(), sessions, max_sessions=max_sessions)
    latest = sessions[0].info if sessions else None
    ordered = sorted(trends.series.values(), key=lambda item: _sort_key(item.match))
    cards = [_card(index, item, references, logs, link_base) for index, item in enumerate(ordered)]
    payload = {"sessions": [_session_json(label) for label in trends.sessions],
               "series": [_series_json(item, trends, references, changes) for item in ordered]}
    comparisons = _comparisons(store, ordered, latest.id if latest else "", spec.text, references, fail_pct)
    rows = sum(summary.rows for summary in sessions)
    summary = (f"{len(sessions)} session(s), {rows} result row(s), {len(ordered)} series; generated "
               f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {store.where}")
    dropped = (f"Only the newest {len(trends.sessions)} of {len(sessions)} sessions are drawn "
               f"({trends.dropped_sessions} older ones left out)." if trends.dropped_sessions else "")
    return environment("dashboard").get_template("dashboard.html.j2").render(
        title=title, summary=summary, dropped=dropped, latest=latest, compare=spec.text, comparisons=comparisons,
        failures=_failures(store, latest.id) if latest else [], cards=cards, data_json=script_json(payload),
        tags=sorted({tag for item in ordered for tag in item.tags}),
        statuses=sorted({item.points[-1].status for item in ordered if item.points}),
        architectures=sorted({item.match.gpu_architecture for item in ordered}), eager=EAGER_CARDS,
        **chart_assets())


def write_dashboard(store: HistoryStore, output: Path, *, references: References | None = None,
                    compare: str = "last", fail_pct: float | None = None,
                    changes: Sequence[ChangePointLike] = (), logs: Path | None = None) -> Path:
    """Write :func:`render_dashboard` to ``output`` (directories created); return it."""
    output = Path(output)
    html = render_dashboard(store, references=references, compare=compare, fail_pct=fail_pct, changes=changes,
                            logs=logs, link_base=output.absolute().parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output


def _sort_key(match: Match) -> tuple[str, str, int, int]:
    context = match.context()
    return match.model, match.gpu_architecture, context.n_gpus, context.nnodes


def _reference_band(item: Series, references: References | None) -> tuple[float, float | None, float | None] | None:
    reference = references.lookup(item.match.model, item.match.context()) if references else None
    if reference is None:
        return None
    low, high = reference.band()
    return reference.value, low, high


def _card(index: int, item: Series, references: References | None, logs: Path | None,
          link_base: Path | None) -> dict[str, object]:
    last = item.points[-1] if item.points else None
    band = _reference_band(item, references)
    return {"index": index, "model": item.match.model, "context": item.match.context().describe(),
            "metric": item.metric, "tags": ", ".join(item.tags), "status": last.status if last else "",
            "band": "" if band is None else _band_text(band), "log": _log_link(item.match.model, logs, link_base)}


def _log_link(model: str, logs: Path | None, link_base: Path | None) -> str:
    """The URL of the model's latest run log (``<logs>/<safe model name>.run.log``), '' when absent."""
    stem = safe_name(model)
    if logs is None or not stem:
        return ""
    path = Path(logs).absolute() / f"{stem}.run.log"
    try:
        if not path.is_file():
            return ""
    except OSError:  # a name longer than the filesystem allows: no such log
        return ""
    if link_base is None:
        return path.as_uri()
    return urllib.parse.quote(os.path.relpath(path, link_base).replace(os.sep, "/"))


def _session_json(label: SessionLabel) -> list[str]:
    return [label.id, label.commit[:12], label.pipeline, label.build_number, _iso(label.started)]


def _series_json(item: Series, trends: Trends, references: References | None,
                 changes: Sequence[ChangePointLike]) -> dict[str, object]:
    """One card's data, column-wise: x = session indices, y = values, s = statuses, n = rows, …"""
    where = {label.id: index for index, label in enumerate(trends.sessions)}
    points = [point for point in item.points if point.session_id in where]
    data: dict[str, object] = {
        "m": item.match.model, "a": item.match.gpu_architecture, "g": item.tags, "u": item.metric,
        "d": guess_direction(item.metric), "x": [where[p.session_id] for p in points],
        "y": [_short(p.value) for p in points], "s": [p.status for p in points], "n": [p.runs for p in points],
        "ref": _reference_band(item, references),
        "cp": [[where[c.session], _short(c.before), _short(c.after), _short(c.p_value)] for c in changes
               if c.model == item.match.model and c.session in where],
    }
    if any(len(p.samples) > 1 for p in points):
        data["r"] = [[_short(v) for v in p.samples] if len(p.samples) > 1 else [] for p in points]
    if any(p.build_duration is not None or p.test_duration is not None for p in points):
        data["b"] = [_short(p.build_duration) for p in points]
        data["t"] = [_short(p.test_duration) for p in points]
    return data


def _short(value: float | None) -> float | None:
    """``value`` to 6 significant digits (the page's JSON stays small)."""
    return None if value is None else float(f"{value:.6g}")


def _comparisons(store: HistoryStore, ordered: list[Series], latest: str, compare: str,
                 references: References | None, fail_pct: float | None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for index, item in enumerate(ordered):
        point = next((p for p in reversed(item.points) if p.session_id == latest), None)
        if point is None:
            continue
        band = _reference_band(item, references)
        reference = references.lookup(item.match.model, item.match.context()) if references else None
        direction = reference.direction if reference else guess_direction(item.metric)
        baseline = store.baseline(compare, item.match, metric=item.metric, direction=direction,
                                  exclude_session=latest)
        change, regression = "", False
        if baseline is not None and point.value is not None:
            change = f"{relative_change(point.value, baseline.value):+.1f} %"
            if fail_pct is not None:
                regression = not judge_against_baseline(point.value, baseline.value, fail_pct, direction).passed
        rows.append({
            "index": index, "model": item.match.model, "context": item.match.context().describe(),
            "status": point.status, "value": "" if point.value is None else fmt_number(point.value),
            "metric": item.metric, "baseline": fmt_number(baseline.value) if baseline else "none", "change": change,
            "regression": regression or (point.status == FAILURE and bool(change)),
            "band": "" if band is None else _band_text(band),
        })
    return rows


def _band_text(band: tuple[float, float | None, float | None]) -> str:
    _, low, high = band
    return f"{'−∞' if low is None else fmt_number(low)} … {'+∞' if high is None else fmt_number(high)}"


def _failures(store: HistoryStore, session_id: str) -> list[tuple[str, list[dict[str, str]]]]:
    phases: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for row in store.rows(session_id=session_id):
        if row.fields["status"] == FAILURE:
            phase = row.phase or "unknown"
            key = (row.model, row.reason)
            phases.setdefault(phase, {})[key] = {"model": row.model, "reason": row.reason or "(no reason recorded)"}
    order = ["build", "run", "timeout", "sanity", "performance"]
    return sorted(((phase, list(items.values())) for phase, items in phases.items()),
                  key=lambda pair: (order.index(pair[0]) if pair[0] in order else len(order), pair[0]))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M")
