"""A sink made when its first result arrives: for a sink whose set-up costs start-up time (the
history loads SQLAlchemy) and is not needed before the first model has run."""
from __future__ import annotations

from collections.abc import Callable

from ...errors import MadError
from ...records import ModelResult
from . import ResultSink


class DeferredSink:
    """Calls ``make`` at the first ``record`` (or at ``finish`` when no result came) and passes
    everything on to the sink it returns.

    ``make`` may return None (nothing to write after all) or raise :class:`MadError`: the results
    then go nowhere and ``finish`` says so in one line, ``"<label> not written: <message>"``; the
    session and its other sinks go on.
    """

    def __init__(self, make: Callable[[], ResultSink | None], *, label: str) -> None:
        self._make: Callable[[], ResultSink | None] | None = make
        self.label = label
        self.sink: ResultSink | None = None
        self.error = ""

    def _made(self) -> ResultSink | None:
        if self._make is not None:
            make, self._make = self._make, None
            try:
                self.sink = make()
            except MadError as exc:
                self.error = exc.message
        return self.sink

    def record(self, result: ModelResult) -> None:
        sink = self._made()
        if sink is not None:
            sink.record(result)

    def finish(self) -> list[str]:
        sink = self._made()
        if self.error:
            return [f"{self.label} not written: {self.error}"]
        return sink.finish() if sink is not None else []
