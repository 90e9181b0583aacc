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
``.perf_super.json.lock`` around each append. The cumulative files are appended in place (a
result costs the same at 10 or 10,000 earlier records; madengine rewrites them whole): the JSON
list's closing bracket is replaced by the new records, in the layout a whole-file ``json.dump``
with ``indent=2`` gives; CSV rows are appended under the existing header. Only a record with a
column the CSV header lacks rewrites ``perf_super.csv`` (from the CSV itself). The entry files
are replaced atomically. An existing ``perf_super.json`` that is not a JSON list (or does not end
in ``]``) is an error naming the file (never overwritten).
"""
from __future__ import annotations

import csv
import io
import json
import os
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


def append_records(path: Path, records: list[Record]) -> None:
    """Append ``records`` to the JSON list in ``path`` in place (created when missing or empty);
    reads only the file's first and last bytes. Raises MadError for a file that is not a list."""
    body = json.dumps(records, indent=2, default=str)[1:-1].strip("\n")  # the records, indented
    if not path.is_file() or path.stat().st_size == 0:
        path.write_text(f"[\n{body}\n]\n", encoding="utf-8")
        return
    with open(path, "r+b") as handle:
        head = handle.read(64).lstrip()
        closing = _closing_bracket(handle)
        if head.startswith(b"{"):  # madengine's lone record: becomes a list, once
            handle.close()
            atomic_write_json(path, load_super(path) + records)
            return
        if not head.startswith(b"[") or closing is None:
            handle.close()
            load_super(path)  # the precise reason, as MadError
            raise MadError(f"{path.name} does not end with a JSON list's ']'", where=str(path),
                           fix="move the damaged file away; the next session starts a new one")
        handle.seek(0)
        empty = handle.read(closing).strip() == b"["
        handle.seek(closing)
        handle.truncate()
        handle.write(((b"\n" if empty else b",\n") + body.encode() + b"\n]\n"))
        handle.flush()
        os.fsync(handle.fileno())


def _closing_bracket(handle: io.BufferedRandom) -> int | None:
    """Offset of the list's final ``]`` (the newline before it included), from the last bytes."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - 64))
    tail = handle.read()
    stripped = tail.rstrip()
    if not stripped.endswith(b"]"):
        return None
    end = len(stripped) - 1
    start = len(stripped[:end].rstrip())
    return size - len(tail) + start


def append_csv(path: Path, records: list[Record]) -> None:
    """Append ``records`` as CSV rows under the existing header (written when missing); a record
    with a new column rewrites the file with the widened header."""
    if not path.is_file() or path.stat().st_size == 0:
        path.write_text(to_csv(records), encoding="utf-8")
        return
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    if any(name not in header for record in records for name in record):
        with open(path, newline="", encoding="utf-8") as handle:
            old = [dict(row) for row in csv.DictReader(handle)]
        columns = header + [n for r in records for n in r if n not in header]
        atomic_write(path, _rows_csv(columns, [*old, *({n: _cell(n, r.get(n)) for n in r} for r in records)]))
        return
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([[_cell(n, r.get(n)) for n in header] for r in records])
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(text.getvalue())


def _rows_csv(columns: list[str], rows: list[dict[str, str]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[row.get(name, "") for name in columns] for row in rows])
    return text.getvalue()


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
            append_records(self.json_path, new)
            append_csv(self.csv_path, new)
            atomic_write_json(self.entry_json, new)
            atomic_write(self.entry_csv, to_csv(new))
        self.added += len(new)

    def finish(self) -> list[str]:
        if not self.added:
            return []
        return [f"{self.added} record(s) added to {self.json_path}"]
