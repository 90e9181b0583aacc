"""perf.csv (appended, file-locked, madengine's 29 columns, then extra columns) and perf_entry.csv.

Concurrency: ``append_rows`` holds an exclusive ``flock`` on perf.csv itself while it reads the
header and writes all its rows with one ``write`` + fsync, so writers in other processes (xdist
controller, other sessions, SLURM nodes on a shared filesystem) never lose or interleave rows.

Extra columns (a multiple-results CSV's own columns, a SKIPPED row's ``reason``) go after the
existing ones, as madengine's pandas writer appends them. An existing file's column order is kept;
when rows bring a column its header lacks, the file is rewritten with the longer header (older rows
padded with empty cells) into a temporary file that atomically replaces it, still under the lock:
a reader sees the old file or the new one, never a half-written one. A writer that waited on the
lock of the replaced file notices (its inode is gone) and locks the new one.
"""
from __future__ import annotations

import csv
import fcntl
import io
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...fileio import atomic_write
from ...records import PERF_CSV_COLUMNS, ModelResult

COLUMNS = PERF_CSV_COLUMNS
MIN_FREE_BYTES = 64 * 1024  # room for a few hundred rows


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (created with the 29-column header when new/empty)."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(path)
    try:
        header, ends_with_newline = _read_header(fd)
        text = io.StringIO()
        if header is None:
            header = columns_of(rows)
            _writer(text).writerow(header)
        else:
            missing = [name for name in columns_of(rows)
                       if name not in header and any(row.get(name) not in (None, "") for row in rows)]
            if missing:
                _rewrite_with_header(path, fd, header + missing, rows)
                return
            if not ends_with_newline:
                text.write("\n")  # another tool left the last line open; never glue rows onto it
        _write_rows(text, header, rows)
        _write_all(fd, text.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def columns_of(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The 29 columns, then every other key of ``rows`` in order of first appearance."""
    names = list(COLUMNS)
    seen = set(names)
    for row in rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _open_locked(path: Path) -> int:
    """An fd of ``path`` holding its exclusive lock (retried when the file was replaced meanwhile)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _rewrite_with_header(path: Path, fd: int, header: list[str], rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` (locked through ``fd``) by its rows under ``header`` plus ``rows``."""
    old = _read_all(fd).decode("utf-8", errors="replace").lstrip("\ufeff")
    text = io.StringIO()
    writer = _writer(text)
    writer.writerow(header)
    for record in list(csv.reader(io.StringIO(old)))[1:]:
        if any(cell.strip() for cell in record):
            writer.writerow(record + [""] * (len(header) - len(record)))
    _write_rows(text, header, rows)
    atomic_write(path, text.getvalue(), mode=os.fstat(fd).st_mode & 0o777, fsync=True)


def _read_all(fd: int) -> bytes:
    size, offset, chunks = os.fstat(fd).st_size, 0, []
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def write_entry(path: Path, rows: list[dict[str, Any]]) -> None:
    """Overwrite perf_entry.csv with this session's rows (atomic replace; 29 columns, then extras)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = columns_of(rows)
    text = io.StringIO()
    _writer(text).writerow(header)
    _write_rows(text, header, rows)
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
        """Retry perf.csv's unwritten rows, write perf_entry.csv; one line per file that failed.

        Each failure names its own file: rows perf.csv already holds are never pointed elsewhere,
        and a fallback CSV holds only the rows that reached neither perf.csv nor perf_entry.csv.
        """
        if not self.results:
            return []
        lines = [f"results appended to {self.perf_csv}"]
        perf_error = entry_error = None
        if self.unwritten:
            try:
                append_rows(self.perf_csv, self.unwritten)
                self.unwritten = []
            except OSError as exc:
                perf_error = exc
        try:
            write_entry(self.perf_entry_csv, self.rows)
        except OSError as exc:
            entry_error = exc
        if entry_error is not None:
            lines = [self._entry_line(entry_error, perf_failed=perf_error is not None)]
        if perf_error is not None:
            lines = [line for line in lines if not line.startswith("results appended")]
            lines.append(self._perf_line(perf_error))
        return lines

    def _entry_line(self, exc: OSError, *, perf_failed: bool) -> str:
        held = "" if perf_failed else f"; {self.perf_csv} holds all {len(self.rows)} row(s) of this session"
        return f"{self.perf_entry_csv} could not be written ({exc.strerror or exc}){held}"

    def _perf_line(self, exc: OSError) -> str:
        fallback = self.fallback_dir / f"perf-unwritten-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
        write_entry(fallback, self.unwritten)
        return (f"{self.perf_csv} could not be written ({exc.strerror or exc}): the {len(self.unwritten)} "
                f"row(s) of this session it lacks are in {fallback}")


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
