"""Where the history lives: an SQLite file or a PostgreSQL database, chosen by URL.

``--mad-history`` / ``--history`` take ``sqlite:///PATH`` (or a bare PATH: an SQLite file, the
embedded default) or ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB`` (``postgres://`` and
``postgresql+psycopg://`` too; the driver is psycopg 3). Without a password in the URL, libpq
finds it as usual: ``PGPASSWORD``, ``~/.pgpass`` (``PGPASSFILE``), and ``PGHOST``/``PGUSER``/…
fill what the URL leaves out. A password never appears in messages: :attr:`HistoryLocation.shown`
masks it, and :func:`redact_urls` masks it in any text (the stored command line).

SQLite connections run in WAL mode with a busy timeout; every write transaction is
``BEGIN IMMEDIATE`` (it takes the write lock up front, so concurrent writers queue instead of
failing on a lock upgrade), reads are deferred transactions that never block writers.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from ..errors import MadError
from .early import sqlite_path

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?P<tail>@)")
_BEGIN = "mad_begin"  # execution option: the BEGIN statement of the next SQLite transaction


@dataclass(frozen=True)
class HistoryLocation:
    """A parsed history location: ``url`` (SQLAlchemy form, may hold a password), ``path`` for SQLite."""

    url: URL
    path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None

    @property
    def shown(self) -> str:
        """The location for messages: the file path, or the URL with its password masked."""
        if self.path is not None:
            return str(self.path)
        return self.url.set(drivername="postgresql").render_as_string(hide_password=True)


def parse_location(value: str | Path, *, where: str = "--mad-history") -> HistoryLocation:
    """``sqlite:///PATH``, a bare PATH or a PostgreSQL URL as a :class:`HistoryLocation`.

    Raises :class:`MadError` naming ``where`` for another scheme or a malformed URL.
    """
    path = sqlite_path(value, where=where)
    if path is not None:
        return HistoryLocation(URL.create("sqlite", database=str(path)), path)
    text = str(value).strip()
    scheme = text.split("://", 1)[0].lower()
    if scheme not in POSTGRES_SCHEMES:
        raise MadError(f"the history backend {scheme!r} is not supported", where=where,
                       fix="give a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    try:
        url = make_url(text).set(drivername="postgresql+psycopg")
    except sa.exc.ArgumentError:
        raise MadError(f"{redact_urls(text)!r} is not a valid database URL", where=where,
                       fix="write postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass)") from None
    if not url.database:
        raise MadError(f"{redact_urls(text)!r} names no database", where=where,
                       fix="end the URL with /DBNAME, e.g. postgresql://ci@db.example:5432/mad")
    return HistoryLocation(url)


def redact_urls(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)


def create_engine(location: HistoryLocation, timeout: float) -> sa.Engine:
    """An engine for ``location``; ``timeout``: seconds a writer waits for a lock / a connection."""
    if location.path is not None:
        location.path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(location.url, poolclass=NullPool,
                                  connect_args={"timeout": timeout, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_connect(timeout, location))
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return sa.create_engine(location.url, poolclass=NullPool,
                                connect_args={"connect_timeout": max(1, int(min(timeout, 30))),
                                              "application_name": "pytest-madengine"})
    except ImportError:
        raise MadError("a PostgreSQL history needs the psycopg driver, which is not installed",
                       where=location.shown, fix="pip install 'pytest-madengine[postgresql]'") from None


def write_options() -> dict[str, str]:
    """Execution options of a connection whose next transaction writes (SQLite: BEGIN IMMEDIATE)."""
    return {_BEGIN: "BEGIN IMMEDIATE"}


def read_options() -> dict[str, str]:
    return {_BEGIN: "BEGIN"}


def _sqlite_connect(timeout: float, location: HistoryLocation) -> Callable[[DBAPIConnection, ConnectionPoolEntry], None]:
    def connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # SQLAlchemy emits BEGIN itself (_sqlite_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if str(cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() != "wal":
                raise MadError("SQLite could not switch the history to WAL mode", where=location.shown,
                               fix="put the history on a local filesystem (--mad-history PATH)")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()
    return connect


def _sqlite_begin(connection: sa.Connection) -> None:
    connection.exec_driver_sql(str(connection.get_execution_options().get(_BEGIN, "BEGIN")))
