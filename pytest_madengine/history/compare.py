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
from .spec import CompareSpec
from .store import Baseline, HistoryStore, Match


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
        baseline = store.baseline(spec, Match.of_row(rows[0]), metric=metric, direction=direction,
                                  exclude_session=session_id)
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
