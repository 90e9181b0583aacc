"""What the session knows of its history before the first model, without loading SQLAlchemy.

Opening the history costs SQLAlchemy's import (0.2 s on a 2-core VM), paid before the first
container when the session opens it at start. The session opens it at start only when it has to
find out whether it is usable (an unusable named history is a usage error before anything runs);
a history that :func:`opens_cleanly` says is fine, the common case, is opened at the first result
instead (issue 22.5: import only what each phase needs). The check is an optimisation only: any
doubt answers False, and the full open then says what is wrong, in its own words.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from ..errors import MadError

# The schema's head revision and Alembic's version table (history.schema re-exports them).
HEAD = "v3"
VERSION_TABLE = "mad_history_version"  # named apart from other applications' in a shared database


def sqlite_path(value: str | Path, *, where: str) -> Path | None:
    """The file of an SQLite history (a bare PATH or ``sqlite:///PATH``); None for another scheme.

    Raises :class:`MadError` naming ``where`` for an ``sqlite://`` URL that names no file.
    """
    text = str(value).strip()
    if isinstance(value, Path) or "://" not in text:
        return Path(text).expanduser().absolute()
    if text.split("://", 1)[0].lower() != "sqlite":
        return None
    rest = text[len("sqlite:///"):] if text.lower().startswith("sqlite:///") else ""
    if not rest:
        raise MadError(f"{text!r} names no file", where=where,
                       fix="write sqlite:///relative/path.sqlite or sqlite:////absolute/path.sqlite")
    return Path(rest).expanduser().absolute()


def opens_cleanly(value: str | Path) -> bool:
    """True when the history ``value`` is an SQLite file that will open without a migration or an
    error: a new file in a writable directory, or an undamaged history at the head revision that
    this process may write. False for anything else (a server URL included)."""
    try:
        path = sqlite_path(value, where="")
    except MadError:
        return False
    if path is None or path.is_dir():
        return False
    if not path.exists():
        parent = next((p for p in (path, *path.parents) if p.exists()), None)
        return parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        return False
    try:
        return _healthy_at_head(path)
    except sqlite3.Error:
        return False


def _healthy_at_head(path: Path) -> bool:
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    try:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return True  # an empty file, as a new one: the open creates the schema
        if VERSION_TABLE not in tables:
            return False
        revisions = [str(value) for (value,) in connection.execute(f"SELECT version_num FROM {VERSION_TABLE}")]
        if revisions != [HEAD]:
            return False
        found = [str(line) for (line,) in connection.execute("PRAGMA quick_check(3)")]
        return found == ["ok"]
    finally:
        connection.close()
