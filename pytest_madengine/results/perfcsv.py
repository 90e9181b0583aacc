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
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMNS: tuple[str, ...] = (
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags",
    "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name",
    "deployment_type", "launcher", "gpu_architecture", "performance", "metric", "relative_change",
    "status", "build_duration", "test_duration", "dataname", "data_provider_type", "data_size",
    "data_download_duration", "build_number", "additional_docker_run_options",
)



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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.getvalue().encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

