"""The history file's tables, versioned with ``PRAGMA user_version``, and its migrations.

Version 1 (the first layout, kept only as a migration source) had ``sessions(id, started,
ended, host, target, args)`` with the pytest arguments as one space-joined string, and
``results(id, session_id, model, status, performance, metric, row_json)`` with the perf.csv row
as a JSON object. Version 2 (current) keeps the session's environment in columns and every
perf.csv field of a result row in a column of its own, plus the parsed value, the failing phase
and reason, the repeat number, the row's index within a multiple-results run and the image
digest. :func:`ensure_schema` creates a new file at the current version or migrates an older one
in one transaction; a newer or foreign file raises :class:`MadError`.
"""
from __future__ import annotations

import json
import math
import shlex
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MadError

CURRENT_VERSION = 2

# The perf.csv fields stored as TEXT columns (madengine's 29, in order); a later perf.csv
# column comes with a migration that adds it.
PERF_COLUMNS: tuple[str, ...] = (
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags",
    "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name",
    "deployment_type", "launcher", "gpu_architecture", "performance", "metric", "relative_change",
    "status", "build_duration", "test_duration", "dataname", "data_provider_type", "data_size",
    "data_download_duration", "build_number", "additional_docker_run_options",
)
# Columns of ``results`` besides the perf.csv fields.
EXTRA_COLUMNS: tuple[str, ...] = ("value", "phase", "reason", "repeat", "row_index", "image_digest", "recorded")

SESSION_COLUMNS: tuple[str, ...] = (
    "id", "started", "ended", "host", "target", "git_commit", "gpu_vendor", "gpu_architecture",
    "gpu_count", "nodes", "pytest_args",
)

_SESSIONS_V2 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,            -- unix seconds
    ended REAL,                       -- unix seconds; NULL while running (or after a crash)
    host TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT '',
    git_commit TEXT NOT NULL DEFAULT '',
    gpu_vendor TEXT NOT NULL DEFAULT '',
    gpu_architecture TEXT NOT NULL DEFAULT '',
    gpu_count INTEGER NOT NULL DEFAULT 0,
    nodes INTEGER NOT NULL DEFAULT 1,
    pytest_args TEXT NOT NULL DEFAULT '[]'   -- JSON list of strings
)"""


def _results_v2(table: str) -> str:
    perf = ",\n    ".join(f"{name} TEXT NOT NULL DEFAULT ''" for name in PERF_COLUMNS)
    return f"""
CREATE TABLE {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    {perf},
    value REAL,                       -- performance as a number; NULL when none or not numeric
    phase TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    repeat INTEGER NOT NULL DEFAULT 0,     -- 0-based run number under --mad-repeat
    row_index INTEGER NOT NULL DEFAULT 0,  -- position among the rows of a multiple-results run
    image_digest TEXT NOT NULL DEFAULT '',
    recorded REAL NOT NULL DEFAULT 0       -- unix seconds
)"""


_INDEXES_V2 = (
    "CREATE INDEX results_match ON results (model, gpu_architecture, n_gpus, nnodes, session_id)",
    "CREATE INDEX results_session ON results (session_id)",
    "CREATE INDEX sessions_started ON sessions (started)",
)


def _create_current(conn: sqlite3.Connection) -> None:
    conn.execute(_SESSIONS_V2)
    conn.execute(_results_v2("results"))
    for statement in _INDEXES_V2:
        conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Sessions gain environment columns (args → JSON list); results get one column per field."""
    for name, ddl in (("git_commit", "TEXT NOT NULL DEFAULT ''"), ("gpu_vendor", "TEXT NOT NULL DEFAULT ''"),
                      ("gpu_architecture", "TEXT NOT NULL DEFAULT ''"), ("gpu_count", "INTEGER NOT NULL DEFAULT 0"),
                      ("nodes", "INTEGER NOT NULL DEFAULT 1"), ("pytest_args", "TEXT NOT NULL DEFAULT '[]'")):
        conn.execute(f"ALTER TABLE sessions ADD COLUMN {name} {ddl}")
    for session_id, args in conn.execute("SELECT id, args FROM sessions").fetchall():
        conn.execute("UPDATE sessions SET pytest_args = ? WHERE id = ?", (json.dumps(_split(args or "")), session_id))
    conn.execute("ALTER TABLE sessions DROP COLUMN args")

    conn.execute(_results_v2("results_v2"))
    columns = ("session_id", *PERF_COLUMNS, "value", "row_index", "recorded")
    insert = (f"INSERT INTO results_v2 (id, {', '.join(columns)}) "
              f"VALUES (?, {', '.join('?' for _ in columns)})")
    old = conn.execute(
        "SELECT r.id, r.session_id, r.model, r.status, r.performance, r.metric, r.row_json, s.started "
        "FROM results r LEFT JOIN sessions s ON s.id = r.session_id ORDER BY r.id").fetchall()
    for row_id, session_id, model, status, performance, metric, row_json, started in old:
        fields = _json_object(row_json)
        fields.update(model=model, status=status, performance=performance or "", metric=metric or "")
        values = [str(fields.get(name, "") if fields.get(name) is not None else "") for name in PERF_COLUMNS]
        conn.execute(insert, (row_id, session_id, *values, parse_value(performance or ""), 0, started or 0.0))
    conn.execute("DROP TABLE results")
    conn.execute("ALTER TABLE results_v2 RENAME TO results")
    for statement in _INDEXES_V2:
        conn.execute(statement)


@dataclass(frozen=True)
class Migration:
    """Brings a file from ``source`` to ``source + 1`` inside the caller's transaction."""

    source: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "session environment columns; one column per perf.csv field", _migrate_1_to_2),
)


def ensure_schema(conn: sqlite3.Connection, where: str) -> int:
    """Create or migrate the schema of ``conn`` (autocommit connection); return the version found.

    Runs under ``BEGIN IMMEDIATE`` so concurrent openers migrate once: the others wait for the
    lock (busy timeout) and then see the current version. Raises :class:`MadError` naming
    ``where`` when the file is newer than this plugin or is an SQLite file of something else.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables:
                raise MadError("this SQLite file is not a pytest-madengine history (no schema version)",
                               where=where, fix="pass another file with --mad-history, or --mad-history none")
            _create_current(conn)
        elif found > CURRENT_VERSION:
            raise MadError(f"the history has schema version {found}, newer than this plugin's "
                           f"{CURRENT_VERSION}", where=where,
                           fix="upgrade pytest-madengine, or write to another file with --mad-history")
        else:
            for migration in MIGRATIONS:
                if migration.source >= found:
                    migration.apply(conn)
        conn.execute(f"PRAGMA user_version = {CURRENT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def parse_value(performance: str) -> float | None:
    """A perf.csv performance as a float; None when empty or not a finite number."""
    try:
        value = float(performance)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _split(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:
        return args.split()


def _json_object(text: str | None) -> dict[str, object]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
