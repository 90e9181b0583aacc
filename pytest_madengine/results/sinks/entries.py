"""madengine's per-run JSON files beside perf.csv: ``perf_entry.json`` and ``common_info.json``.

Shapes (madengine ``execution/container_runner.py`` and ``reporting/update_perf_csv.py``), each
file rewritten (atomically) after every model run, so it always holds the last run's:

* ``perf_entry.json`` — a single-result run: one object, the run's perf.csv row (29 columns, plus
  ``reason`` on a SKIPPED row) and ``configs`` (see ``results.configs``). A multiple-results run:
  a list with one object per row (29 columns, the results CSV's other columns, ``configs`` matched
  to the row), or that one object when the CSV has a single row.
* ``common_info.json`` — written for a successful multiple-results run only: the fields every row
  shares, i.e. the row without ``model``, ``performance``, ``metric`` and ``status``, plus the
  whole ``configs``.

Values are the strings perf.csv holds, except where madengine writes numbers: ``build_duration``,
``test_duration`` and ``data_download_duration`` (seconds, measured as floats in madengine's run
details) are numbers, and so is a multiple-results row's ``performance`` (pandas reads the results
CSV); an empty cell stays ``""``. ``configs`` is JSON as loaded.
"""
from __future__ import annotations

from pathlib import Path

from ...fileio import atomic_write_json
from ...records import PERF_CSV_COLUMNS, SUCCESS, JsonValue, ModelResult
from ..configs import match_config, typed

PER_ROW = ("model", "performance", "metric", "status")
# Run details madengine records as numbers (``container_runner.py:create_run_details_dict``).
NUMERIC_DETAILS = ("build_duration", "test_duration", "data_download_duration")
Record = dict[str, JsonValue]


def with_numbers(record: Record, names: tuple[str, ...] = NUMERIC_DETAILS) -> Record:
    """``record`` with the ``names`` cells that read as finite numbers turned into numbers."""
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            number = typed(value)
            if isinstance(number, (int, float)):
                record[name] = number
    return record


def is_multiple(result: ModelResult) -> bool:
    """Whether the rows came from a multiple-results CSV (row models are ``<card>_<row>``)."""
    return any(row.get("model") != result.model for row in result.rows)


def single_record(result: ModelResult) -> Record:
    """The run details of a single-result (or failed, or skipped) run: its first row + ``configs``."""
    record: Record = dict(result.rows[0]) if result.rows else {"model": result.model, "status": result.status}
    record["configs"] = result.configs
    return with_numbers(record)


def row_records(result: ModelResult) -> list[Record]:
    """One object per row of a multiple-results run, each with the config matching it."""
    records: list[Record] = []
    for row in result.rows:
        record: Record = dict(row)
        record["configs"] = match_config(result.configs, _row_view(row, result.model), row["model"])
        records.append(with_numbers(record, (*NUMERIC_DETAILS, "performance")))
    return records


def common_info(result: ModelResult) -> Record:
    """The fields a multiple-results run's rows share (madengine's ``common_info.json``)."""
    first = result.rows[0] if result.rows else {}
    record: Record = {name: first.get(name, "") for name in PERF_CSV_COLUMNS if name not in PER_ROW}
    record["configs"] = result.configs
    return with_numbers(record)


def extras(row: dict[str, str]) -> dict[str, str]:
    """A row's columns beyond the 29 (a results CSV's own columns, ``reason``)."""
    return {name: value for name, value in row.items() if name not in PERF_CSV_COLUMNS}


def _row_view(row: dict[str, str], card_model: str) -> Record:
    """A row as its results CSV wrote it (``model`` without the card prefix), values typed."""
    view: Record = {name: typed(value) for name, value in extras(row).items()}
    view["model"] = row["model"].removeprefix(f"{card_model}_")
    return view


class PerfEntrySink:
    """``perf_entry.json`` (every result) and ``common_info.json`` (successful multiple-results runs)."""

    def __init__(self, directory: Path) -> None:
        self.perf_entry = Path(directory) / "perf_entry.json"
        self.common_info = Path(directory) / "common_info.json"
        self.written = False

    def record(self, result: ModelResult) -> None:
        if is_multiple(result):
            records = row_records(result)
            atomic_write_json(self.perf_entry, records[0] if len(records) == 1 else records)
            if result.status == SUCCESS:
                atomic_write_json(self.common_info, common_info(result))
        else:
            atomic_write_json(self.perf_entry, single_record(result))
        self.written = True

    def finish(self) -> list[str]:
        return []
