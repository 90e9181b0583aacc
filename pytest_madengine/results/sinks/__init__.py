"""Result sinks: where the controller sends every judged result (one module per sink).

A sink gets each ``ModelResult`` as soon as its test's report reaches the controller
(``record``), then ``finish()`` once at the end of the session, which returns the lines it wants
shown under the session's "MAD results" heading. Sinks never touch pytest objects or the
terminal; the recorder (``results.recorder``) fans results out to them.

Example of a new sink (one module)::

    class JsonLinesSink:
        def __init__(self, path: Path) -> None:
            self.path = path

        def record(self, result: ModelResult) -> None:
            with self.path.open("a") as out:
                out.write(json.dumps(result.to_json()) + "\n")

        def finish(self) -> list[str]:
            return [f"results streamed to {self.path}"]
"""
from __future__ import annotations

from typing import Protocol

from ...records import ModelResult


class ResultSink(Protocol):
    def record(self, result: ModelResult) -> None:
        """Take one result (controller only, in the order reports arrive). May raise OSError."""
        ...

    def finish(self) -> list[str]:
        """End of session: write what is written once; return lines for the terminal summary."""
        ...
