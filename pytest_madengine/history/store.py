"""HistoryStore: sessions and result rows in an SQLite file or a PostgreSQL database, and the
queries on them (SQLAlchemy Core; the location is parsed by :mod:`.backend`).

Concurrency: every write is one transaction (SQLite: ``BEGIN IMMEDIATE`` in WAL mode with a busy
timeout, so writers in other processes queue on the lock and readers never block them;
PostgreSQL: ordinary transactions, rows of concurrent sessions interleave freely). Only the
controller of a session writes (workers and SLURM/Kubernetes nodes send their results to it).
An SQLite history needs a local filesystem of the host(s) writing it; sessions on several
hosts (CI runners) share a PostgreSQL history instead.

Errors: opening something that is not a history, or a newer one, or a server that refuses the
connection raises :class:`MadError`; a failing write or query (disk full, lock held longer than
the timeout, the server gone) raises ``sqlalchemy.exc.SQLAlchemyError``.
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import MadError
from ..records import SUCCESS, ModelResult
from .backend import HistoryLocation, create_engine, parse_location, read_options, redact_urls, write_options
from .schema import PERF_COLUMNS, SESSION_COLUMNS, ensure_schema, parse_value
from .schema import results as results_table
from .schema import sessions as sessions_table
from .entities import Baseline, HistoryRow, Match, SessionInfo, SessionSummary, SessionValue, new_session_id
from .spec import CompareSpec, parse_compare_spec

__all__ = ["HIGHER", "LOWER", "Baseline", "HistoryRow", "HistoryStore", "Match", "SessionInfo", "SessionSummary",
           "SessionValue", "error_text", "new_session_id", "result_rows"]

if TYPE_CHECKING:
    from typing import Self

HIGHER, LOWER = "higher", "lower"


@dataclass
class HistoryStore:
    """An open history. Use as a context manager or call :meth:`close`.

    ``path``: an SQLite file (a :class:`Path` or a bare path string; created with its
    directory), ``sqlite:///PATH`` or a ``postgresql://`` URL (see :mod:`.backend`);
    ``timeout``: seconds a writer waits for another process's lock (SQLite) or for the
    server's connection (PostgreSQL).
    """

    path: Path | str = field(repr=False)
    timeout: float = 60.0
    location: HistoryLocation = field(init=False)
    _engine: sa.Engine = field(init=False, repr=False)
    _conn: sa.Connection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.location = parse_location(self.path)
        if self.location.path is not None:
            self.path = self.location.path
        try:
            self._engine = create_engine(self.location, self.timeout)
        except OSError as error:  # the directory cannot be made (a file in the way, no permission)
            raise MadError(f"cannot open the history: {error.strerror or error}", where=self.where,
                           fix=_open_fix(self.location)) from None
        try:
            self._conn = self._engine.connect()
        except sa.exc.SQLAlchemyError as error:
            raise MadError(f"cannot open the history: {error_text(error)}", where=self.where,
                           fix=_open_fix(self.location)) from None
        try:
            ensure_schema(self._conn, self.where)
        except sa.exc.SQLAlchemyError as error:
            self.close()
            raise MadError(f"cannot open the history: {error_text(error)}", where=self.where,
                           fix=_open_fix(self.location)) from None
        except BaseException:
            self.close()
            raise

    @property
    def where(self) -> str:
        """The history for messages: its file, or its URL without the password."""
        return self.location.shown

    def check(self) -> str:
        """What is damaged ('' when nothing is): SQLite's ``quick_check`` over every page.

        Reads the whole file (≈ 0.1 s per 30 MB); a server database checks itself ('').
        """
        if not self.location.is_sqlite:
            return ""
        self._conn.execution_options(**read_options())
        try:
            with self._conn.begin():
                found = [str(line) for (line,) in self._conn.exec_driver_sql("PRAGMA quick_check(3)")]
        except sa.exc.DatabaseError as error:  # damage the check itself trips over
            return error_text(error)
        problems = [part.strip() for line in found for part in line.splitlines()
                    if part.strip() and not part.startswith("***")]
        return "" if problems == ["ok"] else "; ".join(problems)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- writes ----------------------------------------------------------------------------

    def begin_session(self, info: SessionInfo) -> None:
        """Store a new session (raises ``sqlalchemy.exc.IntegrityError`` when the id exists).

        A ``scheme://user:password@`` in the pytest arguments is stored with the password masked.
        """
        values = {name: getattr(info, name) for name in SESSION_COLUMNS if name != "pytest_args"}
        values["pytest_args"] = json.dumps([redact_urls(str(arg)) for arg in info.pytest_args])
        with self._write() as conn:
            conn.execute(sa.insert(sessions_table).values(values))

    def end_session(self, session_id: str, ended: float) -> None:
        """Set the session's end time (unix seconds)."""
        with self._write() as conn:
            conn.execute(sa.update(sessions_table).where(sessions_table.c.id == session_id).values(ended=ended))

    def add_result(self, session_id: str, result: ModelResult, *, repeat: int = 0,
                   image_digest: str = "") -> int:
        """Store every perf.csv row of ``result`` (one transaction); return the number of rows.

        A row model that occurs k times in ``result`` (a combined ``--mad-repeat`` result) gets
        repeat numbers ``repeat`` … ``repeat + k − 1``; ``row_index`` is the row model's position
        within one run (multiple results). A result without rows is stored as one row from its
        own fields. ``image_digest`` defaults to each row's ``docker_sha``.
        """
        values = result_rows(session_id, result, repeat=repeat, image_digest=image_digest)
        with self._write() as conn:
            conn.execute(sa.insert(results_table), values)
        return len(values)

    def import_session(self, info: SessionInfo, results: Sequence[tuple[ModelResult, int]]) -> int:
        """Store a finished session and its results (each with its repeat number) in one
        transaction; return the number of rows. Used by ``history import``."""
        values = [row for result, repeat in results for row in result_rows(info.id, result, repeat=repeat)]
        session = {name: getattr(info, name) for name in SESSION_COLUMNS if name != "pytest_args"}
        session["pytest_args"] = "[]"
        with self._write() as conn:
            conn.execute(sa.insert(sessions_table).values(session))
            if values:
                conn.execute(sa.insert(results_table), values)
        return len(values)

    # --- queries ---------------------------------------------------------------------------

    def sessions(self, limit: int | None = None) -> list[SessionSummary]:
        """Sessions, newest first, with their row, failure and model counts."""
        s, r = sessions_table, results_table
        failed = sa.func.coalesce(sa.func.sum(sa.case((r.c.status == "FAILURE", 1), else_=0)), 0)
        query = (sa.select(*(s.c[name] for name in SESSION_COLUMNS), sa.func.count(r.c.id), failed,
                           sa.func.count(sa.distinct(r.c.model)))
                 .select_from(s.outerjoin(r, r.c.session_id == s.c.id))
                 .group_by(*(s.c[name] for name in SESSION_COLUMNS))
                 .order_by(s.c.started.desc(), s.c.id.desc()))
        if limit is not None:
            query = query.limit(int(limit))
        summaries = []
        for record in self._read(query):
            info = _session_info(record[: len(SESSION_COLUMNS)])
            rows, failures, models = record[len(SESSION_COLUMNS):]
            summaries.append(SessionSummary(info, int(rows), int(failures), int(models)))
        return summaries

    def session(self, session_id: str) -> SessionInfo | None:
        query = sa.select(*(sessions_table.c[name] for name in SESSION_COLUMNS)).where(
            sessions_table.c.id == session_id)
        records = self._read(query)
        return _session_info(records[0]) if records else None

    def rows(self, *, session_id: str | None = None, model: str | None = None) -> Iterator[HistoryRow]:
        """Stored rows in recording order (sessions oldest first), optionally of one session / model."""
        s, r = sessions_table, results_table
        query = (sa.select(r.c.session_id, s.c.started, *(r.c[n] for n in PERF_COLUMNS), r.c.value, r.c.phase,
                           r.c.reason, r.c.repeat, r.c.row_index, r.c.image_digest)
                 .select_from(r.join(s, s.c.id == r.c.session_id)).order_by(s.c.started, r.c.id))
        if session_id is not None:
            query = query.where(r.c.session_id == session_id)
        if model is not None:
            query = query.where(r.c.model == model)
        width = len(PERF_COLUMNS)
        for record in self._read(query):
            yield HistoryRow(session_id=record[0], started=float(record[1]),
                             fields=dict(zip(PERF_COLUMNS, record[2: 2 + width])), value=record[2 + width],
                             phase=record[3 + width], reason=record[4 + width], repeat=record[5 + width],
                             row_index=record[6 + width], image_digest=record[7 + width])

    def models(self) -> list[str]:
        """Every row model name in the history, sorted."""
        query = sa.select(results_table.c.model).distinct().order_by(results_table.c.model)
        return [name for (name,) in self._read(query)]

    def matches(self) -> list[Match]:
        """Every (row model, GPU architecture, GPU count, node count) in the history, sorted."""
        r = results_table
        columns = (r.c.model, r.c.gpu_architecture, r.c.n_gpus, r.c.nnodes)
        return [Match(*record) for record in self._read(sa.select(*columns).distinct().order_by(*columns))]

    def session_values(self, match: Match, *, metric: str = "", exclude_session: str = "",
                       successful_only: bool = True) -> list[SessionValue]:
        """Per session (newest first): the median value of the rows matching ``match``.

        Only rows with a numeric performance count; by default only SUCCESS rows (a baseline is a
        value that was accepted, so a regression that failed does not become the next baseline).
        ``metric`` (when given) must match too; ``exclude_session`` is left out (the current one).
        """
        s, r = sessions_table, results_table
        query = (sa.select(r.c.session_id, s.c.started, r.c.value, r.c.metric)
                 .select_from(r.join(s, s.c.id == r.c.session_id))
                 .where(r.c.model == match.model, r.c.gpu_architecture == match.gpu_architecture,
                        r.c.n_gpus == match.n_gpus, r.c.nnodes == match.nnodes, r.c.value.is_not(None),
                        r.c.session_id != exclude_session))
        if successful_only:
            query = query.where(r.c.status == SUCCESS)
        if metric:
            query = query.where(r.c.metric == metric)
        grouped: dict[str, tuple[float, str, list[float]]] = {}
        for session_id, started, value, row_metric in self._read(query):
            grouped.setdefault(session_id, (float(started), row_metric, []))[2].append(value)
        values = [SessionValue(sid, started, statistics.median(vals), row_metric, len(vals))
                  for sid, (started, row_metric, vals) in grouped.items()]
        return sorted(values, key=lambda item: (item.started, item.session_id), reverse=True)

    def baseline(self, spec: CompareSpec | str, match: Match, *, metric: str = "", direction: str = HIGHER,
                 exclude_session: str = "", now: float | None = None) -> Baseline | None:
        """The baseline for ``match`` per ``spec`` (see :class:`CompareSpec`); None when the history has none.

        ``direction`` (higher/lower is better) decides ``best``; ``now`` (unix seconds) anchors a
        time window (default: the current time).
        """
        if isinstance(spec, str):
            spec = parse_compare_spec(spec)
        values = self.session_values(match, metric=metric, exclude_session=exclude_session)
        if spec.kind == "session":
            values = [item for item in values if item.session_id == spec.session_id]
        elif spec.seconds is not None:
            start = (time.time() if now is None else now) - spec.seconds
            values = [item for item in values if item.started >= start]
        elif spec.count is not None:
            values = values[: spec.count]
        if not values:
            return None
        if spec.kind in ("last", "session"):
            chosen = [values[0]]
            value = values[0].value
        elif spec.kind == "best":
            pick = max if direction == HIGHER else min
            chosen = [pick(values, key=lambda item: item.value)]
            value = chosen[0].value
        else:
            chosen = values
            numbers = [item.value for item in values]
            value = statistics.fmean(numbers) if spec.kind == "mean" else statistics.median(numbers)
        ids = tuple(item.session_id for item in chosen)
        description = (f"{spec.text}, session {ids[0]}" if len(ids) == 1
                       else f"{spec.text} of {len(ids)} sessions")
        return Baseline(value=value, metric=chosen[0].metric, spec=spec.text, sessions=ids, description=description)

    # --- internals -------------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[sa.Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``); commits, or rolls back on error."""
        self._conn.execution_options(**write_options())
        return _committing(self._conn)

    def _read(self, query: sa.Executable) -> list[sa.Row[tuple[object, ...]]]:
        """All records of ``query``, read in a transaction of its own (no snapshot held after)."""
        self._conn.execution_options(**read_options())
        with self._conn.begin():
            return list(self._conn.execute(query))


@contextmanager
def _committing(conn: sa.Connection) -> Iterator[sa.Connection]:
    with conn.begin():
        yield conn


def result_rows(session_id: str, result: ModelResult, *, repeat: int = 0, image_digest: str = "",
                recorded: float | None = None) -> list[dict[str, object]]:
    """The ``results`` records of ``result`` (see :meth:`HistoryStore.add_result`)."""
    rows = result.rows or [{"model": result.model, "status": result.status,
                            "performance": result.performance, "metric": result.metric}]
    now = time.time() if recorded is None else recorded
    seen: dict[str, int] = {}  # row model → rows of it so far (a combined repeat holds N each)
    order: dict[str, int] = {}  # row model → its index within one run
    values: list[dict[str, object]] = []
    for row in rows:
        name = str(row.get("model", ""))
        order.setdefault(name, len(order))
        seen[name] = seen.get(name, -1) + 1
        record: dict[str, object] = {column: str(row.get(column, "") or "") for column in PERF_COLUMNS}
        record.update(session_id=session_id, value=parse_value(str(row.get("performance", "") or "")),
                      phase=result.phase, reason=result.reason, repeat=repeat + seen[name], row_index=order[name],
                      image_digest=image_digest or str(row.get("docker_sha", "") or ""), recorded=now)
        values.append(record)
    return values


def _session_info(record: Sequence[object]) -> SessionInfo:
    values = dict(zip(SESSION_COLUMNS, record))
    ended = values["ended"]
    return SessionInfo(id=str(values["id"]), started=float(values["started"] or 0.0),  # type: ignore[arg-type]
                       ended=None if ended is None else float(ended),  # type: ignore[arg-type]
                       host=str(values["host"]), target=str(values["target"]), git_commit=str(values["git_commit"]),
                       gpu_vendor=str(values["gpu_vendor"]), gpu_architecture=str(values["gpu_architecture"]),
                       gpu_count=int(values["gpu_count"] or 0), nodes=int(values["nodes"] or 1),  # type: ignore[call-overload]
                       pytest_args=tuple(str(arg) for arg in json.loads(str(values["pytest_args"] or "[]"))),
                       pipeline=str(values["pipeline"]), source=str(values["source"]))


def error_text(error: BaseException) -> str:
    """``Type: first line`` of the driver's message (never SQLAlchemy's SQL and parameter dump)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return redact_urls(f"{type(original).__name__}: {lines[0]}" if lines else type(original).__name__)


def _open_fix(location: HistoryLocation) -> str:
    if location.is_sqlite:
        return "pass another file with --mad-history, or --mad-history none"
    return ("check the server, user and database in the URL; the password comes from the URL, PGPASSWORD or "
            "~/.pgpass; or pass --mad-history none")

