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

from ..records import ModelResult

if TYPE_CHECKING:  # the judging and the history store load on the first check (start-up, issue 22.5)
    from ..results.references import References
    from .spec import CompareSpec


@dataclass(frozen=True)
class PerformanceChecks:
    references: References | None
    history: Path | None
    compare: CompareSpec | None
    fail_on_regression: float | None  # percent; None: compare and report, never fail
    session_id: str  # the current session, never its own baseline

    @property
    def active(self) -> bool:
        return self.references is not None or (self.compare is not None and self.history is not None)

    def apply(self, result: ModelResult) -> ModelResult:
        """``result`` judged against its reference and baseline (unchanged when neither applies)."""
        from ..results.references import judge_result, verdict_properties
        from .compare import compare_result
        from .store import HistoryStore

        properties = dict(result.properties)
        notes = list(result.notes)
        if self.references is not None:
            result, verdicts = judge_result(result, self.references)
            properties.update(verdict_properties(result, verdicts))
        if self.compare is not None and self.history is not None and self.history.is_file():
            with HistoryStore(self.history) as store:
                comparison = compare_result(result, store, self.compare, self.fail_on_regression,
                                            session_id=self.session_id, references=self.references)
            result = comparison.result
            properties.update(verdict_properties(result, comparison.verdicts))
            notes += comparison.notes
        elif self.compare is not None:
            notes.append(f"{result.model}: no history yet at {self.history}; not compared")
        return replace(result, properties=properties, notes=notes)
