"""The HTML dashboard: one self-contained file with per-model trend charts drawn by Plotly.

Sections: the latest session's results against their baseline (``--compare``, default
``last``) and the reference band; that session's failures grouped by phase; one trend chart per
row model × GPU architecture × GPU count × node count that has a value (the per-session median, failed sessions
in red, the reference value dashed and its band shaded). plotly.js is inlined (about 4.8 MB),
so the file opens without a network; charts below the fold are drawn when scrolled into view.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..records import FAILURE
from ..results.references import (
    References,
    guess_direction,
    judge_against_baseline,
    relative_change,
)
from ..results.references import fmt as fmt_number
from .spec import parse_compare_spec
from .store import HistoryRow, HistoryStore, Match

EAGER_CHARTS = 12  # drawn at once; the others when scrolled into view
_OK, _BAD, _BAND = "#1f77b4", "#d62728", "rgba(46, 125, 50, 0.15)"


@dataclass(frozen=True)
class TrendPoint:
    """One session's value for one series: the median of its numeric rows (repeats)."""

    session_id: str
    started: float  # unix seconds
    value: float | None
    status: str  # FAILURE when any of the session's rows failed
    runs: int


@dataclass
class Series:
    """The trend of one row model in one context (sessions oldest first)."""

    match: Match
    metric: str = ""
    points: list[TrendPoint] = field(default_factory=list)


def collect_series(rows: Iterable[HistoryRow]) -> dict[Match, Series]:
    """Group rows (sessions oldest first, as ``HistoryStore.rows`` yields them) into series."""
    grouped: dict[Match, dict[str, tuple[float, list[float], list[str]]]] = {}
    metrics: dict[Match, str] = {}
    for row in rows:
        match = Match.of_row(row.fields)
        sessions = grouped.setdefault(match, {})
        _, values, statuses = sessions.setdefault(row.session_id, (row.started, [], []))
        if row.value is not None:
            values.append(row.value)
        statuses.append(row.fields["status"])
        if row.fields["metric"]:
            metrics[match] = row.fields["metric"]
    series = {}
    for match, sessions in grouped.items():
        points = [TrendPoint(sid, started, statistics.median(values) if values else None,
                             FAILURE if FAILURE in statuses else (statuses[0] if statuses else ""), len(statuses))
                  for sid, (started, values, statuses) in sessions.items()]
        points.sort(key=lambda point: (point.started, point.session_id))
        series[match] = Series(match, metrics.get(match, ""), points)
    return series


def render_dashboard(store: HistoryStore, *, references: References | None = None, compare: str = "last",
                     fail_pct: float | None = None, title: str = "pytest-madengine results") -> str:
    """The dashboard's HTML (a string of about 5 MB, mostly plotly.js).

    ``compare``: the baseline spec of the latest-session table (``--mad-compare`` forms);
    ``fail_pct``: marks a change worse than this many percent as a regression. Raises
    :class:`MadError` for a bad ``compare``; ImportError when plotly or jinja2 is missing.
    """
    import jinja2
    from plotly.offline import get_plotlyjs

    spec = parse_compare_spec(compare, where="--compare")
    series = collect_series(store.rows())
    sessions = store.sessions()
    latest = sessions[0].info if sessions else None
    charts, specs = [], {}
    drawable = [item for item in series.values() if any(point.value is not None for point in item.points)]
    for index, item in enumerate(sorted(drawable, key=lambda s: _sort_key(s.match))):
        chart_id = f"chart-{index}"
        charts.append({"id": chart_id})
        specs[chart_id] = _chart_spec(item, _reference_band(item, references))
    comparisons = _comparisons(store, series, latest.id if latest else "", spec.text, references, fail_pct)
    failures = _failures(store, latest.id) if latest else []
    rows = sum(summary.rows for summary in sessions)
    summary = (f"{len(sessions)} session(s), {rows} result row(s), {len(series)} series; generated "
               f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {store.where}")
    environment = jinja2.Environment(loader=jinja2.PackageLoader("pytest_madengine", "templates/dashboard"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    specs_json = json.dumps(specs, separators=(",", ":")).replace("</", "<\\/")
    return environment.get_template("dashboard.html.j2").render(
        title=title, summary=summary, latest=latest, compare=spec.text, comparisons=comparisons,
        failures=failures, charts=charts, specs_json=specs_json, plotly_js=get_plotlyjs(), eager=EAGER_CHARTS)


def write_dashboard(store: HistoryStore, output: Path, *, references: References | None = None,
                    compare: str = "last", fail_pct: float | None = None) -> Path:
    """Write :func:`render_dashboard` to ``output`` (directories created); return it."""
    html = render_dashboard(store, references=references, compare=compare, fail_pct=fail_pct)
    output = Path(output)
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


def _chart_spec(item: Series, band: tuple[float, float | None, float | None] | None) -> dict[str, object]:
    """A Plotly figure (data + layout) as plain JSON-able values."""
    xs = [_iso(point.started) for point in item.points]
    ys = [point.value for point in item.points]
    data: list[dict[str, object]] = [{
        "type": "scatter", "mode": "lines+markers", "name": "value", "x": xs, "y": ys,
        "text": [f"{p.session_id} · {p.status} · {p.runs} row(s)" for p in item.points],
        "hovertemplate": "%{text}<br>%{y} " + item.metric + "<extra></extra>",
        "marker": {"size": 9, "color": [_BAD if p.status == FAILURE else _OK for p in item.points]},
        "line": {"color": _OK},
    }]
    shapes: list[dict[str, object]] = []
    if band is not None:
        value, low, high = band
        known = [y for y in ys if y is not None] + [value]
        margin = (max(known) - min(known)) * 0.5 or abs(value) * 0.1
        y0 = low if low is not None else min(known) - margin
        y1 = high if high is not None else max(known) + margin
        shapes.append({"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y0, "y1": y1,
                       "fillcolor": _BAND, "line": {"width": 0}, "layer": "below"})
        data.append({"type": "scatter", "mode": "lines", "name": "reference", "x": [xs[0], xs[-1]],
                     "y": [value, value], "line": {"dash": "dash", "color": "#2e7d32"}, "hoverinfo": "y"})
    where = item.match.context().describe()
    return {"data": data, "layout": {
        "title": {"text": f"{item.match.model}{' · ' + where if where else ''}", "font": {"size": 13},
                  "x": 0.01, "xanchor": "left"},
        "xaxis": {"type": "date"}, "yaxis": {"title": {"text": item.metric}}, "shapes": shapes,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "showlegend": False, "height": 320,
    }}


def _comparisons(store: HistoryStore, series: dict[Match, Series], latest: str, compare: str,
                 references: References | None, fail_pct: float | None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for match in sorted(series, key=_sort_key):
        item = series[match]
        point = next((p for p in reversed(item.points) if p.session_id == latest), None)
        if point is None:
            continue
        band = _reference_band(item, references)
        reference = references.lookup(match.model, match.context()) if references else None
        direction = reference.direction if reference else guess_direction(item.metric)
        baseline = store.baseline(compare, match, metric=item.metric, direction=direction, exclude_session=latest)
        change, regression = "", False
        if baseline is not None and point.value is not None:
            change = f"{relative_change(point.value, baseline.value):+.1f} %"
            if fail_pct is not None:
                regression = not judge_against_baseline(point.value, baseline.value, fail_pct, direction).passed
        rows.append({
            "model": match.model, "context": match.context().describe(), "status": point.status,
            "value": "" if point.value is None else fmt_number(point.value), "metric": item.metric,
            "baseline": fmt_number(baseline.value) if baseline else "none", "change": change,
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
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
