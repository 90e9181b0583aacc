"""How well each --mad-compare gate finds persistent regressions: changepoint vs last vs mean:N.

    python bench/changepoint_accuracy.py [--series 10] [--length 40] [--noise 2] [--tolerance 5]

Generated series (level 1000, Gaussian noise of --noise % per session, seeded), four kinds:
``step`` (a 10 % drop at a random session), ``drift`` (1 % worse per session over 10 sessions),
``outliers`` (three single sessions 15 % low, no persistent change) and ``variance`` (the noise
triples at a random session, the mean stays). Each gate runs online as in CI, with a tolerance
of --tolerance %: at every session from the 10th on it sees the earlier *passing* sessions (a
failed session is no baseline, as in the history) and flags the current one or not.

Scores, per session: a session is *regressed* when its true mean is worse than the starting
level by more than the tolerance (what the gate should fail). precision = flagged regressed
sessions / flagged sessions; recall = flagged regressed sessions / regressed sessions;
"found" = changes flagged at least once within 5 sessions of becoming a regression.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_madengine.history.changes import latest_shift  # noqa: E402
from pytest_madengine.history.store import Match, SessionValue  # noqa: E402
from pytest_madengine.results.references import HIGHER, judge_against_baseline  # noqa: E402

WARMUP = 10
DELAY = 5  # sessions after a change in which a flag still counts as finding it
MATCH = Match("bench")


@dataclass(frozen=True)
class Case:
    values: list[float]
    regressed: list[bool]  # per session: the true mean is worse than the start beyond the tolerance


Gate = Callable[[Sequence[float], float, float], bool]  # (accepted past, current, tolerance %) → flag


def worse(value: float, baseline: float, tolerance: float) -> bool:
    return not judge_against_baseline(value, baseline, tolerance, HIGHER).passed


def gate_last(past: Sequence[float], value: float, tolerance: float) -> bool:
    return worse(value, past[-1], tolerance)


def gate_mean(count: int) -> Gate:
    return lambda past, value, tolerance: worse(value, statistics.fmean(past[-count:]), tolerance)


def gate_changepoint(past: Sequence[float], value: float, tolerance: float) -> bool:
    series = [SessionValue(str(i), float(i), v, "", 1) for i, v in enumerate([*past, value])]
    shift = latest_shift(MATCH, series)
    return shift is not None and worse(shift.after, shift.before, tolerance) and worse(value, shift.before, tolerance)


def generate(kind: str, length: int, noise: float, tolerance: float, rng: random.Random) -> Case:
    level, sigma = [1000.0] * length, [noise * 10.0] * length
    at = rng.randrange(WARMUP + 5, length - 8)
    if kind == "step":
        level[at:] = [900.0] * (length - at)
    elif kind == "drift":
        level = [1000.0 - 10.0 * min(max(i - at + 1, 0), 10) for i in range(length)]
    elif kind == "variance":
        sigma[at:] = [noise * 30.0] * (length - at)
    values = [rng.gauss(mu, s) for mu, s in zip(level, sigma)]
    if kind == "outliers":
        for index in rng.sample(range(WARMUP, length), 3):
            values[index] = 850.0
    return Case(values, [mu < 1000.0 * (1 - tolerance / 100.0) for mu in level])


def run_gate(gate: Gate, case: Case, tolerance: float) -> tuple[int, int, int, int, int]:
    """(flags on regressed sessions, other flags, regressed sessions, changes, changes found in time)."""
    accepted = list(case.values[:WARMUP])
    tp = fp = 0
    flagged = []
    for index in range(WARMUP, len(case.values)):
        value = case.values[index]
        if gate(accepted, value, tolerance):
            flagged.append(index)
            tp, fp = tp + case.regressed[index], fp + (not case.regressed[index])
        else:
            accepted.append(value)
    start = next((i for i, bad in enumerate(case.regressed) if bad), None)
    found = start is not None and any(start <= index <= start + DELAY for index in flagged)
    return tp, fp, sum(case.regressed[WARMUP:]), int(start is not None), int(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10, help="series per kind (default 10)")
    parser.add_argument("--length", type=int, default=40, help="sessions per series (default 40)")
    parser.add_argument("--noise", type=float, default=2.0, help="noise, %% of the level (default 2)")
    parser.add_argument("--tolerance", type=float, default=5.0, help="--mad-fail-on-regression %% (default 5)")
    args = parser.parse_args()
    gates: dict[str, Gate] = {"changepoint": gate_changepoint, "last": gate_last, "mean:5": gate_mean(5)}
    print(f"{args.series} series × {args.length} sessions per kind, noise {args.noise} %, tolerance {args.tolerance} %")
    print("| kind | gate | changes found | regressed sessions | flags | false flags | precision | recall | ms/check |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {name: [0] * 5 for name in gates}
    for kind in ("step", "drift", "outliers", "variance"):
        rng = random.Random(f"{kind}-{args.series}-{args.length}-{args.noise}")
        cases = [generate(kind, args.length, args.noise, args.tolerance, rng) for _ in range(args.series)]
        for name, gate in gates.items():
            started = time.perf_counter()
            scores = [run_gate(gate, case, args.tolerance) for case in cases]
            per_check = (time.perf_counter() - started) / (len(cases) * (args.length - WARMUP)) * 1000
            sums = [sum(column) for column in zip(*scores)]
            totals[name] = [a + b for a, b in zip(totals[name], sums)]
            print(_line(kind, name, sums, f"{per_check:.1f}"))
    for name, sums in totals.items():
        print(_line("**all**", name, sums, ""))


def _line(kind: str, name: str, sums: Sequence[int], timing: str) -> str:
    tp, fp, regressed, changes, found = sums
    return (f"| {kind} | {name} | {found}/{changes} | {regressed} | {tp + fp} | {fp} | {_ratio(tp, tp + fp)} | "
            f"{_ratio(tp, regressed)} | {timing} |")


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.2f}" if whole else "–"


if __name__ == "__main__":
    main()
