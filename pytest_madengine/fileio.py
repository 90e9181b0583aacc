"""Files shared between processes: atomic replacement, exclusive locks, safe names.

Every output the plugin writes while other processes may read it (manifests, job specs, GPU
state, perf_entry.csv, caches) goes through :func:`atomic_write`: readers see the old file or
the new one, never half of one. Every critical section shared by xdist workers, SLURM nodes or
two sessions takes :func:`locked` on a lock file (``fcntl.flock``: released by the kernel when
the holder dies, so a killed worker never leaves a stale lock).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
_UNSAFE_DOCKER = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """A file-name-safe form of ``text``: runs of other characters become one ``_``.

    ``'pyt_bert [bs=8]'`` → ``'pyt_bert_bs=8'``. Used for log files, run dirs and lock files.
    """
    return _UNSAFE.sub("_", text).strip("_")


# Terminal control sequences a model may print: OSC (titles, hyperlinks; ended by BEL or ESC \\),
# CSI (colours, cursor moves, screen clears), other two-byte escapes, and 8-bit CSI.
_ESCAPE_SEQUENCES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]?"
                               r"|\x9b[0-?]*[ -/]*[@-~]")
# What is left that a terminal or an XML 1.0 parser would act on or refuse (tab and newline stay).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """``text`` (a model's or a build's output) safe for a terminal, a CI log and XML: escape
    sequences removed, a lone carriage return made a line break, other control characters shown
    as ``\\xNN``. ``'\\x1b[31mred\\x1b[0m\\x07'`` → ``'red\\x07'`` (the BEL as four visible chars)."""
    text = _ESCAPE_SEQUENCES.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def object_name(text: str) -> str:
    """A name Docker and SLURM accept for containers and jobs (``[A-Za-z0-9_.-]``).

    ``'scripts/a b'`` → ``'scripts_a_b'``.
    """
    return _UNSAFE_DOCKER.sub("_", text).strip("_")


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` in one step (temp file in the same dir + ``os.replace``).

    ``mode`` sets the permission bits (e.g. ``0o600`` for files that hold secrets) before the
    file becomes visible. Raises OSError (disk full, read-only) with nothing left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: object, *, indent: int | None = 2, sort_keys: bool = False,
                      mode: int | None = None) -> None:
    """:func:`atomic_write` of ``data`` as JSON (non-JSON values as ``str``), newline-terminated."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=str)
    atomic_write(path, text + "\n", mode=mode)


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created with its parents) for the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pid_alive(pid: str | int) -> bool:
    """Whether process ``pid`` (on this host) still exists; False for a malformed pid."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def disambiguated(names: Iterable[str], key: Callable[[str], str]) -> dict[str, str]:
    """Each distinct name → ``key(name)``, plus ``-<8 hex of sha1(name)>`` where names share a key.

    ``key`` maps a name to the file or object name it becomes (e.g. :func:`safe_name`): the
    root card ``a_b`` and the ``scripts/a`` card ``b`` (``a/b``) both become ``a_b``, so both get
    a suffix and neither run reads the other's log or image. Names without a clash keep their
    plain form (the names madengine uses).
    """
    by_key: dict[str, set[str]] = {}
    for name in names:
        by_key.setdefault(key(name), set()).add(name)
    return {name: (plain if len(group) == 1 else f"{plain}-{_short_hash(name)}")
            for plain, group in by_key.items() for name in group}


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]  # a name, not security
