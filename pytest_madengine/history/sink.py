"""HistorySink: the result sink that writes every result of a session into the history store.

Lives on the controller only (workers and nodes send results to it). A write that fails (disk
full, lock held past the timeout) does not stop the session: the sink stops writing and says
so in its summary lines, and perf.csv and JUnit still get every result.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..records import ModelResult
from .store import HistoryStore, SessionInfo


class HistorySink:
    """Writes results as they arrive. ``record(result)`` per result, ``finish()`` once at the end.

    ``path``: the history file (opened now, the session stored at once so a crashed session
    still shows up with no end time). Raises :class:`MadError` when the file is not a usable
    history (the plugin reports it as a usage error before any model runs).
    """

    def __init__(self, path: Path, session: SessionInfo, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.session = session
        self._store: HistoryStore | None = HistoryStore(self.path, timeout=timeout)
        self._runs: dict[str, int] = {}  # model → rows of it recorded so far (repeats recorded one by one)
        self.rows = 0
        self.results = 0
        self.error = ""
        try:
            self._store.begin_session(session)
        except BaseException:
            self._store.close()
            raise

    @property
    def store(self) -> HistoryStore | None:
        """The open store (for baselines during the session); None after :meth:`finish` or an error."""
        return self._store

    def record(self, result: ModelResult) -> None:
        """Store ``result``'s rows; the n-th result of one model in this session gets repeat n."""
        if self._store is None:
            return
        first = result.rows[0].get("model", result.model) if result.rows else result.model
        repeat = self._runs.get(first, 0)
        try:
            written = self._store.add_result(self.session.id, result, repeat=repeat)
        except sqlite3.Error as error:
            self._fail(f"{type(error).__name__}: {error}")
            return
        self._runs[first] = repeat + (sum(1 for row in result.rows if row.get("model") == first) or 1)
        self.rows += written
        self.results += 1

    def finish(self) -> list[str]:
        """Store the session's end time and close; the lines for the terminal summary."""
        if self._store is not None:
            try:
                self._store.end_session(self.session.id, time.time())
            except sqlite3.Error as error:
                self._fail(f"{type(error).__name__}: {error}")
            else:
                self._store.close()
                self._store = None
        where = f"  in {_shortest(self.path)}"
        if self.error:
            return [f"history: NOT complete ({self.rows} row(s) written, then {self.error})", where]
        return [f"history: {self.rows} row(s) of {self.results} result(s), session {self.session.id}", where]

    def _fail(self, error: str) -> None:
        self.error = self.error or error
        if self._store is not None:
            self._store.close()
            self._store = None


def _shortest(path: Path) -> str:
    """``path`` relative to the working dir when that is shorter (CI logs are 80 columns wide)."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
