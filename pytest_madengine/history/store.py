"""HistoryStore: sessions and result rows in one SQLite file, and the queries on them.

Concurrency: the file is opened in WAL mode with a busy timeout; every write is one
``BEGIN IMMEDIATE`` transaction, so writers in other processes (another session, the xdist
controller of a parallel run) queue on SQLite's lock instead of failing, and readers never
block them. Only the controller of a session writes (workers and SLURM/Kubernetes nodes send
their results to it). WAL needs the file on a local filesystem of the host(s) writing it;
keep the history off NFS (pass ``--mad-history`` a local path) when sessions start on
several hosts.

Errors: opening a file that is not a history, or a newer one, raises :class:`MadError`;
SQLite problems (disk full, lock held longer than the timeout) raise ``sqlite3.Error``.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import MadError
from ..records import SUCCESS, ModelResult
from ..results.references import Context
from .schema import PERF_COLUMNS, SESSION_COLUMNS, ensure_schema, parse_value
from .spec import CompareSpec, parse_compare_spec

if TYPE_CHECKING:
    from typing import Self

HIGHER, LOWER = "higher", "lower"


def new_session_id(now: float | None = None) -> str:
    """A sortable, unique session id: ``20261130-142501-3f9a1c`` (UTC start time + 24 random bits)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SessionInfo:
    """One pytest session as the history keeps it (times in unix seconds)."""

    id: str
    started: float
    host: str = ""
    target: str = ""  # local / slurm / k8s
    git_commit: str = ""  # of the MAD package
    gpu_vendor: str = ""  # AMD / NVIDIA / ''
    gpu_architecture: str = ""  # e.g. gfx942
    gpu_count: int = 0  # GPUs of the session's pool
    nodes: int = 1
    pytest_args: tuple[str, ...] = ()
    ended: float | None = None


@dataclass(frozen=True)
class SessionSummary:
    """A stored session with its result counts (rows, FAILURE rows, distinct models)."""

    info: SessionInfo
    rows: int
    failures: int
    models: int


@dataclass(frozen=True)
class HistoryRow:
    """One stored result row: the perf.csv fields plus what the history adds."""

    session_id: str
    started: float  # the session's start (unix seconds)
    fields: dict[str, str]  # the 29 perf.csv fields
    value: float | None  # performance as a number
    phase: str = ""
    reason: str = ""
    repeat: int = 0
    row_index: int = 0
    image_digest: str = ""

    @property
    def model(self) -> str:
        return self.fields["model"]


@dataclass(frozen=True)
class Match:
    """What makes two results comparable: same model (row name), GPU architecture, GPU and node count."""

    model: str
    gpu_architecture: str = ""
    n_gpus: str = ""  # as in perf.csv ('8')
    nnodes: str = "1"

    @classmethod
    def of_row(cls, row: Mapping[str, str]) -> Match:
        return cls(str(row.get("model", "")), str(row.get("gpu_architecture", "")),
                   str(row.get("n_gpus", "")), str(row.get("nnodes", "") or "1"))

    def context(self) -> Context:
        """The GPU facts as a :class:`Context` (for reference look-ups and messages)."""
        return Context(self.gpu_architecture, _int(self.n_gpus), _int(self.nnodes) or 1)


@dataclass(frozen=True)
class SessionValue:
    """A session's value for one match: the median of its successful rows (repeats)."""

    session_id: str
    started: float
    value: float
    metric: str
    samples: int


@dataclass(frozen=True)
class Baseline:
    """The history value a result is compared with, and where it came from."""

    value: float
    metric: str
    spec: str  # the --mad-compare text
    sessions: tuple[str, ...]  # ids of the sessions it was computed from (newest first)
    description: str = ""  # e.g. "last, session 20261130-142501-3f9a1c"


@dataclass
class HistoryStore:
    """An open history file. Use as a context manager or call :meth:`close`.

    ``path``: the SQLite file (created with its directory); ``timeout``: seconds a writer waits
    for another process's write lock before ``sqlite3.OperationalError``.
    """

    path: Path
    timeout: float = 60.0
    _conn: sqlite3.Connection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise MadError("SQLite could not switch the history to WAL mode", where=str(self.path),
                               fix="put the history on a local filesystem (--mad-history PATH)")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            ensure_schema(self._conn, str(self.path))
        except sqlite3.DatabaseError as error:
            self._conn.close()
            raise MadError(f"cannot open the history: {error}", where=str(self.path),
                           fix="pass another file with --mad-history, or --mad-history none") from None
        except BaseException:
            self._conn.close()
            raise

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- writes ----------------------------------------------------------------------------

    def begin_session(self, info: SessionInfo) -> None:
        """Store a new session (raises ``sqlite3.IntegrityError`` when the id exists)."""
        values = (info.id, info.started, info.ended, info.host, info.target, info.git_commit, info.gpu_vendor,
                  info.gpu_architecture, info.gpu_count, info.nodes, json.dumps(list(info.pytest_args)))
        with self._write():
            self._conn.execute(f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
                               f"VALUES ({', '.join('?' for _ in SESSION_COLUMNS)})", values)

    def end_session(self, session_id: str, ended: float) -> None:
        """Set the session's end time (unix seconds)."""
        with self._write():
            self._conn.execute("UPDATE sessions SET ended = ? WHERE id = ?", (ended, session_id))

    def add_result(self, session_id: str, result: ModelResult, *, repeat: int = 0,
                   image_digest: str = "") -> int:
        """Store every perf.csv row of ``result`` (one transaction); return the number of rows.

        A row model that occurs k times in ``result`` (a combined ``--mad-repeat`` result) gets
        repeat numbers ``repeat`` … ``repeat + k − 1``; ``row_index`` is the row model's position
        within one run (multiple results). A result without rows is stored as one row from its
        own fields. ``image_digest`` defaults to each row's ``docker_sha``.
        """
        rows = result.rows or [{"model": result.model, "status": result.status,
                                "performance": result.performance, "metric": result.metric}]
        columns = ("session_id", *PERF_COLUMNS, "value", "phase", "reason", "repeat", "row_index",
                   "image_digest", "recorded")
        statement = (f"INSERT INTO results ({', '.join(columns)}) "
                     f"VALUES ({', '.join('?' for _ in columns)})")
        now = time.time()
        seen: dict[str, int] = {}  # row model → rows of it so far (a combined repeat holds N each)
        order: dict[str, int] = {}  # row model → its index within one run
        values = []
        for row in rows:
            name = str(row.get("model", ""))
            order.setdefault(name, len(order))
            seen[name] = seen.get(name, -1) + 1
            values.append((session_id, *(str(row.get(column, "") or "") for column in PERF_COLUMNS),
                           parse_value(str(row.get("performance", "") or "")), result.phase, result.reason,
                           repeat + seen[name], order[name], image_digest or str(row.get("docker_sha", "") or ""),
                           now))
        with self._write():
            self._conn.executemany(statement, values)
        return len(values)

    # --- queries ---------------------------------------------------------------------------

    def sessions(self, limit: int | None = None) -> list[SessionSummary]:
        """Sessions, newest first, with their row, failure and model counts."""
        query = (f"SELECT {', '.join('s.' + name for name in SESSION_COLUMNS)}, count(r.id), "
                 "coalesce(sum(r.status = 'FAILURE'), 0), count(DISTINCT r.model) "
                 "FROM sessions s LEFT JOIN results r ON r.session_id = s.id "
                 "GROUP BY s.id ORDER BY s.started DESC, s.id DESC")
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        summaries = []
        for record in self._conn.execute(query):
            info = _session_info(record[: len(SESSION_COLUMNS)])
            rows, failures, models = record[len(SESSION_COLUMNS):]
            summaries.append(SessionSummary(info, int(rows), int(failures), int(models)))
        return summaries

    def session(self, session_id: str) -> SessionInfo | None:
        record = self._conn.execute(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE id = ?",
                                    (session_id,)).fetchone()
        return _session_info(record) if record else None

    def rows(self, *, session_id: str | None = None, model: str | None = None) -> Iterator[HistoryRow]:
        """Stored rows in recording order (sessions oldest first), optionally of one session / model."""
        where, params = [], []
        if session_id is not None:
            where.append("r.session_id = ?")
            params.append(session_id)
        if model is not None:
            where.append("r.model = ?")
            params.append(model)
        query = (f"SELECT r.session_id, s.started, {', '.join('r.' + n for n in PERF_COLUMNS)}, r.value, r.phase, "
                 "r.reason, r.repeat, r.row_index, r.image_digest FROM results r JOIN sessions s ON "
                 f"s.id = r.session_id {'WHERE ' + ' AND '.join(where) if where else ''} "
                 "ORDER BY s.started, r.id")
        width = len(PERF_COLUMNS)
        for record in self._conn.execute(query, params):
            yield HistoryRow(session_id=record[0], started=record[1],
                             fields=dict(zip(PERF_COLUMNS, record[2: 2 + width])), value=record[2 + width],
                             phase=record[3 + width], reason=record[4 + width], repeat=record[5 + width],
                             row_index=record[6 + width], image_digest=record[7 + width])

    def models(self) -> list[str]:
        """Every row model name in the history, sorted."""
        return [name for (name,) in self._conn.execute("SELECT DISTINCT model FROM results ORDER BY model")]

    def session_values(self, match: Match, *, metric: str = "", exclude_session: str = "",
                       successful_only: bool = True) -> list[SessionValue]:
        """Per session (newest first): the median value of the rows matching ``match``.

        Only rows with a numeric performance count; by default only SUCCESS rows (a baseline is a
        value that was accepted, so a regression that failed does not become the next baseline).
        ``metric`` (when given) must match too; ``exclude_session`` is left out (the current one).
        """
        query = ("SELECT r.session_id, s.started, r.value, r.metric FROM results r JOIN sessions s ON "
                 "s.id = r.session_id WHERE r.model = ? AND r.gpu_architecture = ? AND r.n_gpus = ? "
                 "AND r.nnodes = ? AND r.value IS NOT NULL AND r.session_id != ?")
        params: list[str] = [match.model, match.gpu_architecture, match.n_gpus, match.nnodes, exclude_session]
        if successful_only:
            query += " AND r.status = ?"
            params.append(SUCCESS)
        if metric:
            query += " AND r.metric = ?"
            params.append(metric)
        grouped: dict[str, tuple[float, str, list[float]]] = {}
        for session_id, started, value, row_metric in self._conn.execute(query, params):
            grouped.setdefault(session_id, (started, row_metric, []))[2].append(value)
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

    def _write(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error): takes the write lock up front."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._conn.execute("COMMIT" if kind is None else "ROLLBACK")


_SessionRecord = tuple[str, float, "float | None", str, str, str, str, str, int, int, str]


def _session_info(record: _SessionRecord) -> SessionInfo:
    (session_id, started, ended, host, target, git_commit, gpu_vendor, gpu_architecture, gpu_count, nodes,
     pytest_args) = record
    return SessionInfo(id=session_id, started=float(started or 0.0), ended=None if ended is None else float(ended),
                       host=host, target=target, git_commit=git_commit, gpu_vendor=gpu_vendor,
                       gpu_architecture=gpu_architecture, gpu_count=int(gpu_count or 0), nodes=int(nodes or 1),
                       pytest_args=tuple(str(arg) for arg in json.loads(pytest_args or "[]")))


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
