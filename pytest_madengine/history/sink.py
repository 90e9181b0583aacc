"""HistorySink: the result sink that writes every result of a session into the history store.

Lives on the controller only (workers and nodes send results to it). The history is data, never
a reason to stop the models: a write that fails (disk full, a lock held past the timeout, the
server gone) keeps that result and every later one in memory, the sink stops waiting on the
history for the rest of the session, and :meth:`HistorySink.finish` writes them all at the end
(as perf.csv's unwritten rows are retried). What still cannot be written is named in the summary
lines, with the way back: perf.csv holds every row, and ``history import`` adds it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ..errors import MadError
from ..records import ModelResult
from .store import HistoryStore, SessionInfo, error_text


@dataclass(frozen=True)
class _Pending:
    result: ModelResult
    repeat: int


class HistorySink:
    """Writes results as they arrive. ``record(result)`` per result, ``finish()`` once at the end.

    ``path``: the history (a file path or URL, see :class:`HistoryStore`), opened and checked now
    and the session stored at once, so a crashed session still shows up with no end time.
    Raises :class:`MadError` when it is not a usable history (damaged, not a history, newer,
    unreachable): the session turns that into a usage error or a warning.
    """

    def __init__(self, path: Path | str, session: SessionInfo, *, timeout: float = 60.0) -> None:
        self.path = path
        self.session = session
        self.timeout = timeout
        self._store: HistoryStore | None = HistoryStore(path, timeout=timeout)
        self.where = self._store.where
        self._runs: dict[str, int] = {}  # model → rows of it recorded so far (repeats recorded one by one)
        self._pending: list[_Pending] = []
        self._session_stored = False
        self.rows = 0
        self.results = 0
        self.error = ""
        self.retried = 0  # results written by the retry at the end
        self._finished = False
        try:
            damage = self._store.check()
            if damage:
                raise MadError(f"the history is damaged ({damage})", where=self.where,
                               fix="move the file aside (a new history starts); `history import perf.csv` "
                               "re-adds results; or pass --mad-history none")
            self._flush()
        except sa.exc.SQLAlchemyError as error:
            self._store.close()
            raise MadError(f"cannot write the history: {error_text(error)}", where=self.where,
                           fix="pass another history with --mad-history, or --mad-history none") from None
        except BaseException:
            self._store.close()
            raise

    @property
    def store(self) -> HistoryStore | None:
        """The open store (for baselines during the session); None after :meth:`finish` or an error."""
        return self._store

    def record(self, result: ModelResult) -> None:
        """Store ``result``'s rows; the n-th result of one model in this session gets repeat n."""
        if self._finished:
            return
        first = result.rows[0].get("model", result.model) if result.rows else result.model
        repeat = self._runs.get(first, 0)
        self._runs[first] = repeat + (sum(1 for row in result.rows if row.get("model") == first) or 1)
        self._pending.append(_Pending(result, repeat))
        if self._store is not None:
            try:
                self._flush()
            except sa.exc.SQLAlchemyError as error:
                self._fail(error)

    def finish(self) -> list[str]:
        """Write what is left (retrying a history that failed), store the end time, close; the
        lines for the terminal summary."""
        self._finished = True
        retry = self._store is None
        left = len(self._pending)
        try:
            if self._store is None:
                self._store = HistoryStore(self.path, timeout=self.timeout)
            self._flush()
            self._store.end_session(self.session.id, time.time())
        except (MadError, sa.exc.SQLAlchemyError) as error:
            self._fail(error)
        else:
            if retry:
                self.retried = left
        if self._store is not None:
            self._store.close()
            self._store = None
        return self._summary()

    def _flush(self) -> None:
        assert self._store is not None
        if not self._session_stored:
            self._store.begin_session(self.session)
            self._session_stored = True
        while self._pending:
            item = self._pending[0]
            self.rows += self._store.add_result(self.session.id, item.result, repeat=item.repeat)
            self.results += 1
            self._pending.pop(0)

    def _fail(self, error: BaseException) -> None:
        reason = error.message if isinstance(error, MadError) else error_text(error)
        self.error = self.error or reason
        if self._store is not None:
            self._store.close()
            self._store = None

    def _summary(self) -> list[str]:
        where = f"  in {_shortest(self.where)}"
        if self._pending:
            return [f"history: NOT complete: {len(self._pending)} result(s) not written ({self.error}); "
                    "perf.csv has them: `python -m pytest_madengine history import perf.csv` adds them", where]
        line = f"history: {self.rows} row(s) of {self.results} result(s), session {self.session.id}"
        if self.retried:
            line += f" ({self.retried} written at the end: {self.error})"
        return [line, where]


def ci_pipeline(environ: Mapping[str, str]) -> str:
    """The CI pipeline/job running this session, as its URL where the CI system gives one
    (GitLab ``CI_JOB_URL``, GitHub Actions run URL, Jenkins ``BUILD_URL``, Buildkite), else ''."""
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    for name in ("CI_JOB_URL", "CI_PIPELINE_URL", "BUILD_URL", "BUILDKITE_BUILD_URL"):
        if environ.get(name):
            return environ[name]
    return ""


def _shortest(where: str) -> str:
    """A file ``where`` relative to the working dir when that is shorter (CI logs are 80 columns)."""
    if "://" in where:
        return where
    relative = os.path.relpath(where)
    return relative if len(relative) < len(where) else where
