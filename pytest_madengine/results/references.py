"""Reference values: load a references file, find a model's reference, judge a value against it.

The file (YAML, or JSON for ``.json``) maps a model pattern to one entry or a list of entries::

    pyt_vllm_llama:                 # exact row model name
      value: 900                    # the expected value (not 0)
      unit: tokens/s                # optional; must equal the reported metric
      tolerance: 5%                 # allowed change on the worse side ("5%" relative, 45 absolute)
    "pyt_*_bert":                   # glob (* ? [...])
      - {value: 1200, tolerance: 3%, gpu_architecture: gfx942, n_gpus: 8}
      - {value: 400, lower: 10%, upper: 20%}   # two-sided band
    "re:^tf_.*_latency$":           # regular expression (re.fullmatch)
      {value: 2.5, tolerance: 0.2, direction: lower}

``direction`` is ``higher`` (default; more is better) or ``lower``. ``tolerance`` bounds the
worse side only; ``lower`` / ``upper`` bound each side explicitly. Optional keys
``gpu_architecture``, ``n_gpus``, ``nnodes`` restrict an entry; the matching entry with the most
keys wins, then exact over glob over regex, then the first in the file. Every problem raises
:class:`MadError` naming the file and the entry.
"""
from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..records import FAILURE, SUCCESS, ModelResult

HIGHER, LOWER = "higher", "lower"
_KIND_RANK = {"exact": 2, "glob": 1, "regex": 0}


@dataclass(frozen=True)
class Tolerance:
    """An allowed deviation: ``amount`` percent of the reference when ``percent``, else in metric units."""

    amount: float
    percent: bool

    def absolute(self, reference: float) -> float:
        return abs(reference) * self.amount / 100.0 if self.percent else self.amount

    def describe(self, unit: str) -> str:
        return f"{fmt(self.amount)} %" if self.percent else f"{fmt(self.amount)} {unit}".rstrip()


@dataclass(frozen=True)
class Context:
    """Where a value was measured: GPU architecture, total GPU count, node count."""

    gpu_architecture: str = ""
    n_gpus: int = 0
    nnodes: int = 1

    @classmethod
    def of_row(cls, row: Mapping[str, str]) -> Context:
        return cls(str(row.get("gpu_architecture", "")), _int(row.get("n_gpus")), _int(row.get("nnodes")) or 1)

    def describe(self) -> str:
        """``gfx942 × 8``, ``8 GPUs``, ``gfx942 × 16, 2 nodes`` ('' when nothing is known)."""
        if self.gpu_architecture:
            text = f"{self.gpu_architecture} × {self.n_gpus}" if self.n_gpus else self.gpu_architecture
        else:
            text = f"{self.n_gpus} GPU{'s' if self.n_gpus != 1 else ''}" if self.n_gpus else ""
        if self.nnodes > 1:
            text = f"{text}, {self.nnodes} nodes" if text else f"{self.nnodes} nodes"
        return text


@dataclass(frozen=True)
class Reference:
    """One entry of a references file."""

    pattern: str  # as written (``re:`` prefix kept)
    kind: str  # exact / glob / regex
    value: float
    unit: str = ""
    direction: str = HIGHER
    lower: Tolerance | None = None  # None: unbounded below
    upper: Tolerance | None = None  # None: unbounded above
    gpu_architecture: str | None = None
    n_gpus: int | None = None
    nnodes: int | None = None
    where: str = ""  # "refs.yaml: pyt_*_bert[0]"

    def band(self) -> tuple[float | None, float | None]:
        """(lowest, highest) value that passes; None = unbounded."""
        low = None if self.lower is None else self.value - self.lower.absolute(self.value)
        high = None if self.upper is None else self.value + self.upper.absolute(self.value)
        return low, high

    def matches(self, model: str, context: Context) -> bool:
        if self.gpu_architecture is not None and self.gpu_architecture != context.gpu_architecture:
            return False
        if self.n_gpus is not None and self.n_gpus != context.n_gpus:
            return False
        if self.nnodes is not None and self.nnodes != context.nnodes:
            return False
        if self.kind == "exact":
            return model == self.pattern
        if self.kind == "glob":
            return fnmatch.fnmatchcase(model, self.pattern)
        return re.fullmatch(self.pattern[3:], model) is not None

    @property
    def specificity(self) -> tuple[int, int]:
        keys = sum(key is not None for key in (self.gpu_architecture, self.n_gpus, self.nnodes))
        return keys, _KIND_RANK[self.kind]


@dataclass(frozen=True)
class References:
    """The entries of one references file, in file order."""

    entries: tuple[Reference, ...]
    source: str = ""

    def lookup(self, model: str, context: Context) -> Reference | None:
        """The most specific entry for ``model`` measured in ``context``; None when none applies."""
        best: Reference | None = None
        for entry in self.entries:
            if entry.matches(model, context) and (best is None or entry.specificity > best.specificity):
                best = entry
        return best


@dataclass(frozen=True)
class Verdict:
    """A value judged against a reference or a baseline.

    ``relative_change`` is in percent of ``expected`` (signed: -9.8 = 9.8 % less); ``lower`` /
    ``upper`` are the band's absolute bounds (None = unbounded); ``message`` is one sentence.
    """

    passed: bool
    value: float
    expected: float
    relative_change: float
    lower: float | None
    upper: float | None
    message: str
    source: str = "reference"  # "reference" or "baseline"

    def junit_properties(self) -> list[tuple[str, str]]:
        """``relative_change`` plus ``reference_lower``/``reference_upper`` or ``baseline``."""
        properties = [("relative_change", f"{self.relative_change:.2f}")]
        if self.source == "reference":
            properties += [("reference_lower", "" if self.lower is None else fmt(self.lower)),
                           ("reference_upper", "" if self.upper is None else fmt(self.upper))]
        else:
            properties.append(("baseline", fmt(self.expected)))
        return properties


def judge_against(value: float, metric: str, reference: Reference, context: Context) -> Verdict:
    """``value`` (in ``metric``) against ``reference``: passes inside the band (bounds included).

    Message: ``812 tokens/s is 9.8 % below the reference 900 (allowed 5 %), gfx942 × 8``.
    A reference whose unit differs from ``metric`` fails with a message saying so.
    """
    low, high = reference.band()
    change = relative_change(value, reference.value)
    if reference.unit and metric and reference.unit != metric:
        message = (f"{fmt(value)} {metric} cannot be compared with the reference {fmt(reference.value)} "
                   f"{reference.unit} ({reference.where}): the units differ")
        return Verdict(False, value, reference.value, change, low, high, message)
    passed = (low is None or value >= low) and (high is None or value <= high)
    below = value < reference.value or (value == reference.value and reference.direction == HIGHER)
    side = reference.lower if below else reference.upper
    allowed = f"no limit {'below' if below else 'above'}" if side is None else \
        f"allowed {side.describe(metric or reference.unit)}"
    message = _sentence(value, metric or reference.unit, reference.value, "the reference", allowed, context)
    return Verdict(passed, value, reference.value, change, low, high, message)


def judge_against_baseline(value: float, baseline: float, fail_pct: float | None, direction: str = HIGHER, *,
                           metric: str = "", context: Context = Context(), label: str = "") -> Verdict:
    """``value`` against a history ``baseline``: fails when worse by more than ``fail_pct`` percent.

    Only the worse side (below for ``higher``, above for ``lower``) fails; ``fail_pct`` None
    compares without failing (report only). ``label`` (e.g. ``last, session 2026…``) is named
    in the message: ``810 tokens/s is 10.0 % below the baseline 900 (last, session …; allowed
    5 %), gfx942 × 8``.
    """
    change = relative_change(value, baseline)
    if fail_pct is None:
        low = high = None
        passed, allowed = True, "report only"
    else:
        limit = abs(baseline) * fail_pct / 100.0
        allowed = f"allowed {fmt(fail_pct)} %"
        if direction == HIGHER:
            low, high, passed = baseline - limit, None, value >= baseline - limit
        else:
            low, high, passed = None, baseline + limit, value <= baseline + limit
    detail = f"{label}; {allowed}" if label else allowed
    message = _sentence(value, metric, baseline, "the baseline", detail, context)
    return Verdict(passed, value, baseline, change, low, high, message, source="baseline")


_TIME_UNITS = {"s", "sec", "secs", "second", "seconds", "ms", "us", "µs", "ns", "min", "minutes", "h", "hours"}


def guess_direction(metric: str) -> str:
    """``lower`` for time-like metrics (s, ms, …, anything with latency or time), else ``higher``."""
    text = metric.strip().lower()
    return LOWER if text in _TIME_UNITS or "latency" in text or "time" in text else HIGHER


def relative_change(value: float, expected: float) -> float:
    """(value − expected) / |expected| in percent (0 when expected is 0)."""
    return (value - expected) / abs(expected) * 100.0 if expected else 0.0


def _sentence(value: float, unit: str, expected: float, against: str, detail: str, context: Context) -> str:
    amount = f"{fmt(value)} {unit}".rstrip()
    change = relative_change(value, expected)
    against = f"{against} {fmt(expected)}"
    if value == expected:
        text = f"{amount} equals {against} ({detail})"
    else:
        text = f"{amount} is {abs(change):.1f} % {'below' if change < 0 else 'above'} {against} ({detail})"
    where = context.describe()
    return f"{text}, {where}" if where else text


def fmt(number: float) -> str:
    """A number as a person writes it: 900, 812.4, 0.0123 (up to 6 significant digits)."""
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    text = f"{number:.6g}"
    return text if "e" not in text else repr(number)


# --- whole results -------------------------------------------------------------------------

def row_groups(result: ModelResult) -> dict[str, list[dict[str, str]]]:
    """The result's rows by row model (repeats put N rows under each name), in first-seen order."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in result.rows:
        groups.setdefault(row.get("model", result.model), []).append(row)
    return groups


def judged_value(rows: Sequence[Mapping[str, str]]) -> float | None:
    """The median of the rows' numeric performances (the value a repeated model is judged on)."""
    values = sorted(v for v in (_float(row.get("performance", "")) for row in rows) if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0


def judge_result(result: ModelResult, references: References) -> tuple[ModelResult, dict[str, Verdict]]:
    """Judge every row model of ``result`` that has a reference; return the updated result and verdicts.

    Each row model is judged on the median of its rows (one row per run), in the context of its
    first row. See :func:`apply_verdicts` for what changes in the result.
    """
    verdicts: dict[str, Verdict] = {}
    for model, rows in row_groups(result).items():
        value = judged_value(rows)
        context = Context.of_row(rows[0])
        reference = references.lookup(model, context) if value is not None else None
        if reference is not None and value is not None:
            verdicts[model] = judge_against(value, rows[0].get("metric", "") or result.metric, reference, context)
    return apply_verdicts(result, verdicts), verdicts


def apply_verdicts(result: ModelResult, verdicts: Mapping[str, Verdict]) -> ModelResult:
    """A copy of ``result`` with the verdicts (by row model) applied.

    Every row of a judged model whose ``relative_change`` is still empty gets one (its own value
    against the verdict's expected value, percent with 2 decimals): the first judgement applied
    (the reference, when the session applies references before baselines) fills it. When a
    verdict failed and the result had succeeded (or failed only on performance), the result
    becomes ``FAILURE`` with phase ``performance`` and the failing messages appended to its
    reason, and the failing models' rows get status ``FAILURE``.
    """
    if not verdicts:
        return result
    failing = {model: verdict for model, verdict in verdicts.items() if not verdict.passed}
    judgeable = result.status == SUCCESS or result.phase == "performance"
    rows = []
    for row in result.rows:
        verdict = verdicts.get(row.get("model", ""))
        new = dict(row)
        own = _float(row.get("performance", ""))
        if verdict is not None and own is not None and not row.get("relative_change"):
            new["relative_change"] = f"{relative_change(own, verdict.expected):.2f}"
        if row.get("model", "") in failing and judgeable:
            new["status"] = FAILURE
        rows.append(new)
    if failing and judgeable:
        reasons = [result.reason] if result.reason and result.phase == "performance" else []
        reasons += [verdict.message for verdict in failing.values()]
        return replace(result, status=FAILURE, phase="performance", reason="; ".join(reasons), rows=rows)
    return replace(result, rows=rows)


def verdict_properties(result: ModelResult, verdicts: Mapping[str, Verdict]) -> list[tuple[str, str]]:
    """JUnit properties: the main model's verdict plainly, other row models' with a ``.<name>`` suffix."""
    properties: list[tuple[str, str]] = []
    prefix = f"{result.model}_"
    for model, verdict in verdicts.items():
        suffix = "" if model == result.model or len(verdicts) == 1 else "." + model.removeprefix(prefix)
        properties += [(name + suffix, value) for name, value in verdict.junit_properties()]
    return properties


def _float(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(text: object) -> int:
    try:
        return int(str(text))
    except ValueError:
        return 0
