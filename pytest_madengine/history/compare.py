"""A result against its history baseline (``--mad-compare`` with ``--mad-fail-on-regression``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..records import ModelResult
from ..results.references import (
    Context,
    References,
    Verdict,
    apply_verdicts,
    guess_direction,
    judge_against_baseline,
    judged_value,
    row_groups,
)
from .changes import RECENT, series_changes
from .spec import CompareSpec
from .store import Baseline, HistoryStore, Match, SessionValue

CURRENT = "(this session)"


@dataclass
class Comparison:
    """The outcome of :func:`compare_result`.

    ``result``: the input with the verdicts applied (see ``references.apply_verdicts``);
    ``verdicts`` and ``baselines`` by row model; ``notes``: one line per row model without a
    baseline (a note for the terminal summary, never a failure).
    """

    result: ModelResult
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def compare_result(result: ModelResult, store: HistoryStore, spec: CompareSpec, fail_pct: float | None, *,
                   session_id: str, references: References | None = None) -> Comparison:
    """Compare each row model of ``result`` (the median of its rows) with its baseline.

    The baseline is chosen per ``spec`` among the SUCCESS rows of other sessions with the same
    row model, GPU architecture, GPU count, node count and metric (``session_id``, the current
    session, is left out). Direction: the matching reference's, else guessed from the metric
    (time-like → lower is better). ``fail_pct`` None reports without failing.
    """
    comparison = Comparison(result)
    for model, rows in row_groups(result).items():
        value = judged_value(rows)
        if value is None:
            continue
        metric = rows[0].get("metric", "") or result.metric
        context = Context.of_row(rows[0])
        reference = references.lookup(model, context) if references else None
        direction = reference.direction if reference else guess_direction(metric)
        match = Match.of_row(rows[0])
        if spec.kind == "changepoint":
            judged = _judge_changepoint(value, store, match, metric, session_id, fail_pct, direction, context)
            if judged is not None:
                comparison.baselines[model], comparison.verdicts[model] = judged
                continue
            baseline = None
        else:
            baseline = store.baseline(spec, match, metric=metric, direction=direction, exclude_session=session_id)
        if baseline is None:
            where = context.describe()
            comparison.notes.append(f"{model}: no baseline in the history for --mad-compare {spec.text}"
                                    f"{f' ({where})' if where else ''}; not compared")
            continue
        comparison.baselines[model] = baseline
        comparison.verdicts[model] = judge_against_baseline(value, baseline.value, fail_pct, direction,
                                                            metric=metric, context=context,
                                                            label=baseline.description)
    comparison.result = apply_verdicts(result, comparison.verdicts)
    return comparison


def _judge_changepoint(value: float, store: HistoryStore, match: Match, metric: str, session_id: str,
                       fail_pct: float | None, direction: str, context: Context) -> tuple[Baseline, Verdict] | None:
    """The baseline and verdict of ``--mad-compare changepoint`` (None: too little history).

    A shift that starts in the latest sessions and still holds in this one (``value`` worse
    than the old level beyond ``fail_pct``) fails on the new level's mean against the old's.
    """
    judged = _changepoint(value, store, match, metric, session_id)
    if judged is None:
        return None
    level, baseline, shifted = judged
    if shifted and judge_against_baseline(value, baseline.value, fail_pct, direction).passed:
        shifted = False  # this session is back within the tolerance: the shift ended here
    verdict = judge_against_baseline(level if shifted else value, baseline.value, fail_pct if shifted else None,
                                     direction, metric=metric, context=context, label=baseline.description)
    return baseline, verdict


def _changepoint(value: float, store: HistoryStore, match: Match, metric: str,
                 session_id: str) -> tuple[float, Baseline, bool] | None:
    """(value judged, baseline, whether a shift starts in the latest sessions); None: < 3 sessions.

    The series is the earlier SUCCESS sessions plus ``value``. A change point among the latest
    :data:`RECENT` points judges the new level's mean against the old level's (failing beyond the
    tolerance); otherwise ``value`` is reported against the current level's mean, never failing.
    """
    past = store.session_values(match, metric=metric, exclude_session=session_id)[::-1]
    if len(past) < 2:
        return None
    series = [*past, SessionValue(CURRENT, float("inf"), value, metric, 1)]
    changes = series_changes(match, series)
    if changes and changes[-1].sessions_after <= RECENT:
        shift = changes[-1]
        baseline = Baseline(value=shift.before, metric=metric, spec="changepoint",
                            sessions=(shift.session,), description=shift.describe())
        return shift.after, baseline, True
    start = next((i for i, item in enumerate(past) if changes and item.session_id == changes[-1].session), 0)
    level = past[start:]
    mean = sum(item.value for item in level) / len(level)
    description = f"changepoint: no shift, mean of {len(level)} session(s) at this level"
    ids = tuple(item.session_id for item in reversed(level))
    return value, Baseline(value=mean, metric=metric, spec="changepoint", sessions=ids, description=description), False
