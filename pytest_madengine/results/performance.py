"""Find a model's performance: the ``performance:`` log line, or its multiple-results CSV."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import MadError

# The grammar is find_performance's docstring. Blanks exclude line ends; the unit's trailing blanks and comma form
# one optional group so that no two quantifiers compete for the same blanks (linear time on long runs).
_BLANK = r"[^\S\r\n]"
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_UNIT = rf",?{_BLANK}*/[A-Za-z]+(?:{_BLANK}*,)?"
_SEPARATOR = rf"(?:{_UNIT}|,)?"
PERFORMANCE_RE = re.compile(rf"performance:{_BLANK}+({_NUMBER}){_SEPARATOR}{_BLANK}+([^\s,]+)")
# HuggingFace Trainer prints "'train_samples_per_second': 12.3" or "train_samples_per_second = 12.3".
HF_SAMPLES_RE = re.compile(rf"train_samples_per_second['\"]?[ \t]*[:=][ \t]*({_NUMBER})")
HF_METRIC = "samples_per_second"

REQUIRED_COLUMNS = ("model", "performance", "metric")
MAX_RESULT_ROWS = 10_000  # perf.csv rows from one run; real models write a few hundred at most

TRAP = ("a card whose script writes a results CSV must name it in 'multiple_results' "
        "(forgetting it, or naming another file, yields an empty FAILURE row)")


def find_performance(log_text: str) -> tuple[str, str] | None:
    r"""``(performance, metric)`` from a model's log, or None when it reports none.

    The first line of this grammar in the log wins (madengine: ``PERFORMANCE_LOG_PATTERN`` in
    ``deployment/base.py``, searched by ``execution/container_runner.py``; its cases are in
    ``tests/unit/test_container_runner.py``)::

        performance:<blanks> NUMBER [SEPARATOR] <blanks> METRIC

        NUMBER     optional sign, then digits with an optional dot and decimals, or a dot and
                   decimals, then an optional exponent: 12  -3  +1.5  1.  .5  1.2E4  1.23e-4
        SEPARATOR  a comma right after the number, or a unit "/letters" (dropped) with an optional
                   comma right after the number and/or one after the unit, blanks allowed around
                   the unit: ,  /s  /s,  ,/s  , /s  " /s ,"
        METRIC     the next run of characters without blanks or commas

        performance: 812.4 tokens/s          -> 812.4    tokens/s
        performance: 1.23E+4 samples/sec     -> 1.23E+4  samples/sec
        performance: 14164.5/s, samples      -> 14164.5  samples
        performance: 123,/s tokens           -> 123      tokens
        performance: 123, /s tokens          -> 123      tokens
        performance: 99, requests_per_s      -> 99       requests_per_s
        performance: 12 /s                   -> 12       /s   (nothing after the unit: it is the metric)
        performance: N/A samples_per_second  -> None     (a number is required)
        performance:12 tokens                -> None     (a blank must follow the colon)

    Digits are ASCII, as madengine's ``[0-9]`` (Python's ``\d`` would take any script's digits). One
    narrowing: blanks are whitespace other than line ends, so number and metric come from one line
    (madengine's ``\s`` would pair a number at the end of a line with the next line's first word).

    Fallback: HuggingFace Trainer's ``train_samples_per_second`` value, metric ``samples_per_second``.
    """
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
    try:
        rows = _read_rows(path, card_name, where)
    except csv.Error as exc:  # e.g. a field over csv's size limit: a runaway writer
        raise MadError(f"the results file {path.name} is not a readable CSV ({exc})", where=where,
                       fix="write one short 'model,performance,metric' row per result") from None
    if not any(row["performance"] for row in rows):
        raise MadError(f"the results file {path.name} has no row with a performance value", where=where,
                       fix=f"write one 'model,performance,metric' row per result with a number; {TRAP}")
    return rows


def _read_rows(path: Path, card_name: str, where: str) -> list[dict[str, str]]:
    """The file's rows, read as a stream and refused past MAX_RESULT_ROWS (memory stays bounded)."""
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
        rows: list[dict[str, str]] = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(rows) == MAX_RESULT_ROWS:
                raise MadError(f"the results file {path.name} has more than {MAX_RESULT_ROWS} rows", where=where,
                               fix="write one row per measured configuration (aggregate repeated samples)")
            rows.append(_row(header, values, card_name))
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


def performance_rows(path: Path) -> int:
    """How many rows of a multiple-results CSV carry a performance value."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            return sum(1 for row in reader
                       if str({(k or "").strip(): v for k, v in row.items()}.get("performance") or "").strip())
    except (OSError, csv.Error, UnicodeDecodeError):
        return 0


def best_first(files: list[Path]) -> list[Path]:
    """The node / pod file with the most non-empty performance rows first (ties keep rank order)."""
    return sorted(files, key=lambda path: -performance_rows(path))
