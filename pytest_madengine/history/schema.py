"""The history's tables (SQLAlchemy Core, one schema for SQLite and PostgreSQL) and how a
database is brought to them (Alembic migrations in ``history/migrations``).

Revisions: ``v1`` (the first SQLite layout: ``sessions(id, started, ended, host, target,
args)``, ``results(…, row_json)``), ``v2`` (the session environment in columns, one column per
perf.csv field, the parsed value, phase, reason, repeat, row index, image digest), ``v3``
(sessions gain ``pipeline``, the CI pipeline that ran them, and ``source``, the perf.csv a
``history import`` read). SQLite files written before Alembic carry their layout in ``PRAGMA
user_version`` (1 or 2): :func:`ensure_schema` stamps them at that revision, then upgrades;
an SQLite file also gets ``user_version`` = :data:`CURRENT_VERSION`, so an older plugin refuses
it instead of writing rows it does not know.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import sqlalchemy as sa

from ..errors import MadError
from .backend import write_options
from .early import HEAD, VERSION_TABLE

CURRENT_VERSION = 3
_LEGACY_REVISIONS = {1: "v1", 2: "v2"}  # PRAGMA user_version of a pre-Alembic file → its revision
_MIGRATION_LOCK = 0x6D6164  # PostgreSQL advisory lock: one session migrates, the others wait

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
    "gpu_count", "nodes", "pytest_args", "pipeline", "source",
)

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def text_column(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False, server_default="")


metadata = sa.MetaData()

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("started", sa.Float, nullable=False),  # unix seconds
    sa.Column("ended", sa.Float),  # unix seconds; NULL while running (or after a crash)
    *(text_column(name) for name in ("host", "target", "git_commit", "gpu_vendor", "gpu_architecture")),
    sa.Column("gpu_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("nodes", sa.Integer, nullable=False, server_default="1"),
    sa.Column("pytest_args", sa.Text, nullable=False, server_default="[]"),  # JSON list of strings
    text_column("pipeline"),
    text_column("source"),
    sa.Index("sessions_started", "started"),
)

results = sa.Table(
    "results", metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), nullable=False),
    *(text_column(name) for name in PERF_COLUMNS),
    sa.Column("value", sa.Float),  # performance as a number; NULL when none or not numeric
    text_column("phase"),
    text_column("reason"),
    sa.Column("repeat", sa.Integer, nullable=False, server_default="0"),  # 0-based run under --mad-repeat
    sa.Column("row_index", sa.Integer, nullable=False, server_default="0"),  # among a multiple-results run's rows
    text_column("image_digest"),
    sa.Column("recorded", sa.Float, nullable=False, server_default="0"),  # unix seconds
    sa.Index("results_match", "model", "gpu_architecture", "n_gpus", "nnodes", "session_id"),
    sa.Index("results_session", "session_id"),
)


def ensure_schema(conn: sa.Connection, where: str) -> str | None:
    """Create or migrate the schema on ``conn`` (not in a transaction); return the revision found.

    Concurrent openers migrate once: SQLite's ``BEGIN IMMEDIATE`` / a PostgreSQL advisory lock
    serialises them and the later ones find the head. Raises :class:`MadError` naming ``where``
    for a database newer than this plugin or one that holds tables of something else.
    """
    found = _revision(conn, where)
    if found == HEAD:
        conn.rollback()
        return found
    conn.rollback()
    conn.execution_options(**write_options())
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        found = _revision(conn, where)
        if found != HEAD:
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
            config.attributes["connection"] = conn
            config.attributes["version_table"] = VERSION_TABLE
            if found is not None and not _has_alembic_table(conn):
                command.stamp(config, found)
            command.upgrade(config, HEAD)
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(f"PRAGMA user_version = {CURRENT_VERSION}")
    return found


def _revision(conn: sa.Connection, where: str) -> str | None:
    """The revision of the database (a pre-Alembic SQLite file's by its user_version); None: empty."""
    if _has_alembic_table(conn):
        if _stored_revisions(conn) == [HEAD]:
            return HEAD  # every session's case, read without importing Alembic (0.13 s of start-up)
        from alembic.runtime.migration import MigrationContext

        revision = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if revision is not None and revision not in _known_revisions():
            raise MadError(f"the history has schema revision {revision!r}, newer than this plugin's {HEAD!r}",
                           where=where, fix="upgrade pytest-madengine, or write to another history")
        return revision
    version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0) if conn.dialect.name == "sqlite" else 0
    if version > CURRENT_VERSION or (version == CURRENT_VERSION and version not in _LEGACY_REVISIONS):
        raise MadError(f"the history has schema version {version}, newer than this plugin's {CURRENT_VERSION}",
                       where=where, fix="upgrade pytest-madengine, or write to another file with --mad-history")
    if version in _LEGACY_REVISIONS:
        return _LEGACY_REVISIONS[version]
    tables = set(sa.inspect(conn).get_table_names())
    # An SQLite file is the history's alone; a server database may hold other applications' tables.
    if tables & {"sessions", "results"} or (tables and conn.dialect.name == "sqlite"):
        raise MadError("this database holds tables but is not a pytest-madengine history", where=where,
                       fix="pass another file or database with --mad-history, or --mad-history none")
    return None


def _has_alembic_table(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(VERSION_TABLE)


def _stored_revisions(conn: sa.Connection) -> list[str]:
    """The rows of Alembic's version table (one per head; Alembic itself reads anything else)."""
    query = sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))
    return [str(value) for value in conn.execute(query).scalars()]


@functools.cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(__file__).with_name("migrations")))
    return frozenset(script.revision for script in scripts.walk_revisions())


def parse_value(performance: str) -> float | None:
    """A perf.csv performance as a float; None when empty or not a finite number."""
    try:
        value = float(performance)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
