"""``history import``: madengine perf.csv files into the history, one session per file.

A perf.csv (madengine's 29 columns, the superset files' extra ``configs``/``multi_results``/
``reason``, or any subset holding at least ``model``, ``performance``, ``metric`` and ``status``)
becomes one session: started at the file's modification time, kept after the previous file's
session so the order given is the order of the history; host, commit and GPU architecture from
its first row; ``target`` ``import`` and ``source`` the file. A row model seen k times in a file
gets repeats 0 … k − 1. Each file is one transaction: it is imported whole or not at all.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MadError
from ..records import ModelResult
from .schema import PERF_COLUMNS
from .store import HistoryStore, SessionInfo, new_session_id

REQUIRED = ("model", "performance", "metric", "status")
USED_EXTRA = ("reason",)  # madengine's superset column, stored as the row's reason


@dataclass(frozen=True)
class Imported:
    """One imported file: its session, the rows stored, and the columns it had that are not stored."""

    path: Path
    session: SessionInfo
    rows: int
    ignored: tuple[str, ...]


def import_files(store: HistoryStore, paths: Sequence[Path]) -> list[Imported]:
    """Import ``paths`` in order (see the module doc). Raises :class:`MadError` naming the file
    for one that is missing, unreadable, not a CSV or lacks a required column; files before it
    stay imported."""
    done: list[Imported] = []
    previous = 0.0
    for path in paths:
        header, rows = _read(path)
        started = max(path.stat().st_mtime, previous + 1.0)
        previous = started
        first = rows[0] if rows else {}
        info = SessionInfo(id=new_session_id(started), started=started, host=first.get("machine_name", ""),
                           target="import", git_commit=first.get("git_commit", ""),
                           gpu_architecture=first.get("gpu_architecture", ""), source=str(path.absolute()),
                           ended=started)
        store.import_session(info, _results(rows))
        ignored = tuple(name for name in header if name not in PERF_COLUMNS and name not in USED_EXTRA)
        done.append(Imported(path, info, len(rows), ignored))
    return done


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            rows = [{name.strip(): (value or "").strip() for name, value in row.items() if name is not None}
                    for row in reader]
    except FileNotFoundError:
        raise MadError("no such file", where=str(path), fix="give madengine perf.csv files") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MadError(f"cannot read it as a CSV file ({error})", where=str(path),
                       fix="give madengine perf.csv files (UTF-8 CSV with a header row)") from None
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise MadError(f"no {', '.join(missing)} column(s) in the header", where=str(path),
                       fix=f"a perf.csv has at least the columns {', '.join(REQUIRED)}")
    return header, rows


def _results(rows: Sequence[dict[str, str]]) -> list[tuple[ModelResult, int]]:
    """One single-row result per row, with its repeat number within the file."""
    seen: dict[str, int] = {}
    results = []
    for row in rows:
        fields = {name: row.get(name, "") for name in PERF_COLUMNS}
        model = fields["model"]
        result = ModelResult(model=model, status=fields["status"], reason=row.get("reason", ""),
                             performance=fields["performance"], metric=fields["metric"], rows=[fields])
        results.append((result, seen.get(model, 0)))
        seen[model] = seen.get(model, 0) + 1
    return results

