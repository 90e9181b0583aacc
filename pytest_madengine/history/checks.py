"""Performance checks of one result: its reference band (``--mad-references``) and its history
baseline (``--mad-compare`` with ``--mad-fail-on-regression``), in that order.

Run where the test runs (an xdist worker decides its item's outcome): references are loaded
once per process, the history is opened read-only per check (WAL readers never block the
controller's writer). The verdicts go into the result (status FAILURE, phase ``performance``,
``relative_change`` in its rows), its JUnit properties (``reference_lower``,
``reference_upper``, ``baseline``, ``relative_change``) and its notes (no baseline: a note,
never a failure).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MadError
from ..records import ModelResult

if TYPE_CHECKING:  # the judging and the history store load on the first check (start-up, issue 22.5)
    from ..results.references import References
    from .spec import CompareSpec


@dataclass(frozen=True)
class PerformanceChecks:
    references: References | None
    history: Path | str | None  # an SQLite file or a database URL
    compare: CompareSpec | None
    fail_on_regression: float | None  # percent; None: compare and report, never fail
    session_id: str  # the current session, never its own baseline

    @property
    def active(self) -> bool:
        return self.references is not None or (self.compare is not None and self.history is not None)

    def check_baseline_session(self) -> None:
        """``--mad-compare SESSION_ID``: raise :class:`MadError` unless the history holds that
        session (otherwise every model would go uncompared and the regression gate be off)."""
        if self.compare is None or self.compare.kind != "session" or self.history is None:
            return
        from sqlalchemy.exc import SQLAlchemyError

        from .backend import redact_urls
        from .store import HistoryStore, error_text

        found = False
        if not isinstance(self.history, Path) or self.history.is_file():  # a URL, or an SQLite file
            try:
                with HistoryStore(self.history) as store:
                    found = store.session(self.compare.session_id) is not None
            except SQLAlchemyError as error:
                raise MadError(f"the history cannot be read to find session {self.compare.session_id!r} "
                               f"({error_text(error)})", where=f"--mad-compare {self.compare.text}",
                               fix="check --mad-history (or leave out --mad-compare)") from None
        if not found:
            raise MadError(f"the history {redact_urls(str(self.history))} has no session {self.compare.session_id!r}",
                           where=f"--mad-compare {self.compare.text}",
                           fix="pick an id from `python -m pytest_madengine history list` (or use last, best, "
                           "mean:N, median:N)")

    def apply(self, result: ModelResult) -> ModelResult:
        """``result`` judged against its reference and baseline (unchanged when neither applies)."""
        from ..results.references import judge_result, verdict_properties
        from .compare import compare_result
        from sqlalchemy.exc import SQLAlchemyError

        from .store import HistoryStore, error_text

        properties = dict(result.properties)
        notes = list(result.notes)
        if self.references is not None:
            result, verdicts = judge_result(result, self.references)
            properties.update(verdict_properties(result, verdicts))
        if self.compare is not None and self.history is not None and self._exists():
            try:
                with HistoryStore(self.history) as store:
                    comparison = compare_result(result, store, self.compare, self.fail_on_regression,
                                                session_id=self.session_id, references=self.references)
            except (MadError, SQLAlchemyError) as error:  # the history is data: never fails a model
                text = error.message if isinstance(error, MadError) else error_text(error)
                notes.append(f"{result.model}: history unreadable, not compared ({text})")
            else:
                result = comparison.result
                properties.update(verdict_properties(result, comparison.verdicts))
                notes += comparison.notes
        elif self.compare is not None:
            notes.append(f"{result.model}: no history yet at {self.history}; not compared")
        return replace(result, properties=properties, notes=notes)

    def _exists(self) -> bool:
        """A database URL always is; a file only once a session has written it."""
        return not isinstance(self.history, Path) or self.history.is_file()
