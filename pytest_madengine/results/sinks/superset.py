"""madengine's performance superset beside perf.csv: ``perf_super.json`` / ``.csv`` (cumulative) and
``perf_entry_super.json`` / ``.csv`` (the last model run's records).

Shapes (madengine ``reporting/update_perf_super.py``):

* ``perf_super.json`` — a JSON list, one object appended per perf.csv row. A single-result, failed
  or skipped run adds its run details (``entries.single_record``: the row + ``configs``) with
  ``"multi_results": null``. A successful multiple-results run adds, per row, the shared fields
  (``common_info.json``) then ``model``, ``performance``, ``metric``, ``multi_results`` (the results
  CSV's other columns, numbers as numbers, empty ones left out; ``null`` when none) and
  ``status``, with ``configs`` matched to the row. Numbers are numbers where madengine writes
  numbers (``entries.NUMERIC_DETAILS``, a multiple-results ``performance``).
* ``perf_super.csv`` — the same records as CSV: columns in order of first appearance, ``configs``
  and ``multi_results`` as JSON text, ``null`` as an empty cell.
* ``perf_entry_super.json`` / ``.csv`` — only the records the last model run added.

Several writers (other sessions, SLURM nodes on a shared filesystem) take the lock file
``.perf_super.json.lock`` around read-modify-write; files are replaced atomically. An existing
``perf_super.json`` that is not a JSON list is an error naming the file (never overwritten).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ...errors import MadError
from ...fileio import atomic_write, atomic_write_json, locked
from ...records import SUCCESS, JsonValue, ModelResult
from ..configs import typed
from .entries import PER_ROW, Record, common_info, extras, is_multiple, row_records, single_record, with_numbers

SUPER_FIELDS = ("configs", "multi_results")  # JSON-valued columns, written as JSON text in the CSVs


def super_records(result: ModelResult) -> list[Record]:
    """The records one model run adds to ``perf_super.json``."""
    if not (is_multiple(result) and result.status == SUCCESS):
        single = single_record(result)
        single["multi_results"] = None
        return [single]
    shared = common_info(result)
    records = []
    for row, with_config in zip(result.rows, row_records(result)):
        record: Record = dict(shared)
        record.update({name: row[name] for name in PER_ROW if name != "status"})
        with_numbers(record, ("performance",))
        others = {name: typed(value) for name, value in extras(row).items() if name != "status"}
        record["multi_results"] = {k: v for k, v in others.items() if v is not None} or None
        record["status"] = row["status"]
        record["configs"] = with_config["configs"]
        records.append(record)
    return records


def to_csv(records: list[Record]) -> str:
    """``records`` as CSV text (see the module docstring)."""
    columns: list[str] = []
    for record in records:
        columns.extend(name for name in record if name not in columns)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(name, record.get(name)) for name in columns])
    return text.getvalue()


def _cell(name: str, value: JsonValue) -> str:
    if value is None:
        return ""
    if name in SUPER_FIELDS or isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def load_super(path: Path) -> list[Record]:
    """The records of an existing ``perf_super.json`` ([] when there is none). Raises MadError."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise MadError(f"{path.name} is not valid JSON ({error})", where=str(path),
                       fix="move the damaged file away; the next session starts a new one") from None
    if isinstance(data, dict):
        return [data]  # madengine reads a lone object as a one-record list
    if not isinstance(data, list):
        raise MadError(f"{path.name} holds a {type(data).__name__}, not a list of records", where=str(path),
                       fix="move the file away; the next session starts a new one")
    return data


class PerfSuperSink:
    """Appends each result's records to ``perf_super.json`` and regenerates the CSV and entry files."""

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        self.json_path = directory / "perf_super.json"
        self.csv_path = directory / "perf_super.csv"
        self.entry_json = directory / "perf_entry_super.json"
        self.entry_csv = directory / "perf_entry_super.csv"
        self.lock = directory / ".perf_super.json.lock"
        self.added = 0

    def record(self, result: ModelResult) -> None:
        new = super_records(result)
        with locked(self.lock):
            records = load_super(self.json_path) + new
            atomic_write_json(self.json_path, records)
            atomic_write(self.csv_path, to_csv(records))
            atomic_write_json(self.entry_json, new)
            atomic_write(self.entry_csv, to_csv(new))
        self.added += len(new)

    def finish(self) -> list[str]:
        if not self.added:
            return []
        return [f"{self.added} record(s) added to {self.json_path}"]
