"""Find a model's performance: the ``performance:`` log line, or its multiple-results CSV."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import MadError

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
# madengine's line: "performance: <number>[/unit][,] <metric>"; the first match wins. Blanks are
# [ \t] rather than \s so a match never runs across lines (madengine reads the log line by line).
PERFORMANCE_RE = re.compile(rf"performance:[ \t]+({_NUMBER})(?:/[^\s,]*)?,?[ \t]+([^\s,]+)")
# HuggingFace Trainer prints "'train_samples_per_second': 12.3" or "train_samples_per_second = 12.3".
HF_SAMPLES_RE = re.compile(rf"train_samples_per_second['\"]?[ \t]*[:=][ \t]*({_NUMBER})")
HF_METRIC = "samples_per_second"

REQUIRED_COLUMNS = ("model", "performance", "metric")

TRAP = ("a card whose script writes a results CSV must name it in 'multiple_results' "
        "(forgetting it, or naming another file, yields an empty FAILURE row)")


def find_performance(log_text: str) -> tuple[str, str] | None:
    """``(performance, metric)`` from a model's log, or None when it reports none."""
    match = PERFORMANCE_RE.search(log_text)
    if match:
        return match.group(1), match.group(2)
    match = HF_SAMPLES_RE.search(log_text)
    if match:
        return match.group(1), HF_METRIC
    return None


def read_multiple_results(path: Path, card_name: str) -> list[dict[str, str]]:
    """The rows of a multiple-results CSV, each ``model`` renamed ``<card name>_<row model>``.

    Header names are stripped, extra columns kept. At least one row needs a performance.
    """
    where = _where(card_name, path.name)
    if not path.is_file():
        raise missing_results_error(path.name, card_name)
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = [name.lstrip("\ufeff").strip() for name in next(reader, [])]
        if not any(header):
            raise MadError(f"the results file {path.name} is empty", where=where,
                           fix=f"write a header 'model,performance,metric' and one row per result; {TRAP}")
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise MadError(f"{path} lacks the column(s) {', '.join(missing)}; its columns are "
                           f"{', '.join(repr(name) for name in header)}", where=where,
                           fix="start the file with the header 'model,performance,metric' "
                               "(more columns may follow)")
        rows = [_row(header, values, card_name) for values in reader if any(v.strip() for v in values)]
    if not any(row["performance"] for row in rows):
        raise MadError(f"the results file {path.name} has no row with a performance value", where=where,
                       fix=f"write one 'model,performance,metric' row per result with a number; {TRAP}")
    return rows


def missing_results_error(file_name: str, card_name: str) -> MadError:
    return MadError(f"the results file {file_name} was not written by the model script",
                    where=_where(card_name, file_name),
                    fix=f"make the script write {file_name} in its working directory; {TRAP}")


def _where(card_name: str, file_name: str) -> str:
    return f"model {card_name}: multiple_results {file_name}"


def _row(header: list[str], values: list[str], card_name: str) -> dict[str, str]:
    row = {name: (values[i].strip() if i < len(values) else "") for i, name in enumerate(header) if name}
    row["model"] = f"{card_name}_{row['model']}"
    return row


def count_performances(rows: list[dict[str, str]]) -> int:
    return sum(1 for row in rows if row.get("performance"))
