"""The controller's recorder: fans every judged result out to the result sinks.

Workers never record: they attach results to their reports, and the controller's recorder gets
them from ``pytest_runtest_logreport`` (how pytest's junitxml survives ``-n``). A sink that fails
to write (disk full, read-only file, a damaged results file) is reported once as a warning; the other sinks, and the
results already in memory, are kept.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

from ..errors import MadError
from ..records import ModelResult
from .sinks import ResultSink


class RecorderWarning(UserWarning):
    """A result sink could not write; the message names the sink and the error."""


class Recorder:
    def __init__(self, sinks: Sequence[ResultSink], *,
                 on_recorded: Callable[[ModelResult], None] | None = None) -> None:
        self.sinks = list(sinks)
        self.on_recorded = on_recorded
        self.results: list[ModelResult] = []
        self._failed: set[int] = set()

    def record(self, result: ModelResult) -> None:
        self.results.append(result)
        for index, sink in enumerate(self.sinks):
            try:
                sink.record(result)
            except (OSError, MadError) as exc:
                self._warn(index, sink, exc)
        if self.on_recorded is not None:
            self.on_recorded(result)

    def finish(self) -> list[str]:
        """Finish every sink; the lines they want shown, in sink order."""
        lines: list[str] = []
        for index, sink in enumerate(self.sinks):
            try:
                lines.extend(sink.finish())
            except (OSError, MadError) as exc:
                self._warn(index, sink, exc)
        return lines

    def _warn(self, index: int, sink: ResultSink, exc: OSError | MadError) -> None:
        if index in self._failed:
            return
        self._failed.add(index)
        warnings.warn(RecorderWarning(f"{type(sink).__name__} could not write: {exc}"), stacklevel=2)
