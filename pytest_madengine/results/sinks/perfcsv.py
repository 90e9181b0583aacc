"""perf.csv (appended, file-locked, madengine's 29 columns) and perf_entry.csv (this session).

Concurrency: ``append_rows`` holds an exclusive ``flock`` on perf.csv itself while it reads the
header and writes all its rows with one ``write`` + fsync, so writers in other processes (xdist
controller, other sessions, SLURM nodes on a shared filesystem) never lose or interleave rows.

An existing file's header wins: its column order is kept, its columns we do not know are left
empty, and columns of ours that it lacks are dropped (with one warning per file and process);
rewriting an existing results file behind a dashboard's back would be worse.
"""
from __future__ import annotations

import csv
import fcntl
import io
import os
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...fileio import atomic_write
from ...records import PERF_CSV_COLUMNS, ModelResult

COLUMNS = PERF_CSV_COLUMNS
MIN_FREE_BYTES = 64 * 1024  # room for a few hundred rows



class PerfCsvWarning(UserWarning):
    """An existing results file cannot hold every value we have (its header lacks columns)."""


_warned: set[tuple[str, tuple[str, ...]]] = set()


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (created with the 29-column header when new/empty)."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        header, ends_with_newline = _read_header(fd)
        text = io.StringIO()
        if header is None:
            header = list(COLUMNS)
            _writer(text).writerow(header)
        elif not ends_with_newline:
            text.write("\n")  # another tool left the last line open; never glue rows onto it
        _warn_dropped(path, header, rows)
        _write_rows(text, header, rows)
        _write_all(fd, text.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def write_entry(path: Path, rows: list[dict[str, Any]]) -> None:
    """Overwrite perf_entry.csv with this session's rows (atomic replace, 29 columns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    _writer(text).writerow(COLUMNS)
    _write_rows(text, list(COLUMNS), rows)
    atomic_write(path, text.getvalue(), fsync=True)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results CSV as dicts (for reports and tests)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _read_header(fd: int) -> tuple[list[str] | None, bool]:
    """The existing header (None when the file is empty) and whether the file ends with a newline."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, True
    first = b""
    offset = 0
    while b"\n" not in first and offset < size:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        first += chunk
        offset += len(chunk)
    line = first.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    header = [name.strip() for name in next(csv.reader([line]), [])]
    ends_with_newline = os.pread(fd, 1, size - 1) == b"\n"
    if not any(header):
        return None, ends_with_newline
    return header, ends_with_newline


def _writer(handle: io.StringIO) -> Any:
    return csv.writer(handle, lineterminator="\n")


def _write_rows(handle: io.StringIO, header: list[str], rows: Iterable[dict[str, Any]]) -> None:
    writer = _writer(handle)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in header])


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _warn_dropped(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    known = set(header)
    dropped = tuple(name for name in COLUMNS if name not in known and any(row.get(name) for row in rows))
    if dropped and (str(path), dropped) not in _warned:
        _warned.add((str(path), dropped))
        warnings.warn(
            f"{path}: its header lacks the column(s) {', '.join(dropped)}; those values are not "
            f"written. Start a new results file (or add the columns to its header) to keep them.",
            PerfCsvWarning,
            stacklevel=3,
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]



class PerfCsvSink:
    """perf.csv (each result's rows appended as it arrives) and perf_entry.csv (the session's rows).

    Rows that cannot be appended (disk full, file turned read-only) are kept: the sink retries them
    at the end and otherwise writes them to a fallback CSV in the temp dir, named in the summary.
    """

    def __init__(self, perf_csv: Path, fallback_dir: Path | None = None) -> None:
        self.perf_csv = perf_csv
        self.perf_entry_csv = perf_csv.with_name("perf_entry.csv")
        self.fallback_dir = fallback_dir or Path(tempfile.gettempdir())
        self.rows: list[dict[str, str]] = []
        self.unwritten: list[dict[str, str]] = []
        self.results = 0

    def record(self, result: ModelResult) -> None:
        self.results += 1
        self.rows.extend(result.rows)
        if not result.rows:
            return
        try:
            append_rows(self.perf_csv, self.unwritten + result.rows)
        except OSError:
            self.unwritten.extend(result.rows)
            raise
        self.unwritten = []

    def finish(self) -> list[str]:
        if not self.results:
            return []
        lines = [f"results appended to {self.perf_csv}"]
        try:
            if self.unwritten:
                append_rows(self.perf_csv, self.unwritten)
                self.unwritten = []
            write_entry(self.perf_entry_csv, self.rows)
        except OSError as exc:
            lines = self._fall_back(exc)
        return lines

    def _fall_back(self, exc: OSError) -> list[str]:
        fallback = self.fallback_dir / f"perf-unwritten-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
        write_entry(fallback, self.rows)
        line = (f"{self.perf_csv} could not be written ({exc.strerror or exc}): "
                f"this session's {len(self.rows)} row(s) are in {fallback}")
        return [line]


def check_writable(path: Path) -> str:
    """Why perf.csv at ``path`` cannot take rows ('' when it can): a read-only or full filesystem.

    Checked before any model runs; ``access`` sees read-only mounts even for root.
    """
    existing = path if path.exists() else next((p for p in path.absolute().parents if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        return f"{existing or path} is not writable"
    stats = os.statvfs(existing)
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        return f"the filesystem of {existing} is full"
    return ""
