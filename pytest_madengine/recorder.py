"""Where results go: perf.csv (appended as they arrive), perf_entry.csv, JUnit, summary."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .errors import MadError
from .records import ModelResult
from .settings import Settings


def _junit_key(nodeid: str) -> tuple[str, str]:
    from _pytest.junitxml import mangle_test_address

    names = mangle_test_address(nodeid)
    return ".".join(names[:-1]), names[-1]


class Recorder:
    """Controller-side sink for results; workers only attach results to their reports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results: list[tuple[str, ModelResult]] = []

    @property
    def perf_csv(self) -> Path:
        return self.settings.perf_csv

    @property
    def perf_entry_csv(self) -> Path:
        return self.perf_csv.with_name("perf_entry.csv")

    def record(self, nodeid: str, result: ModelResult) -> None:
        from .results.perfcsv import append_rows

        self.results.append((nodeid, result))
        if result.rows:
            append_rows(self.perf_csv, result.rows)

    def finish(self, junit_path: str | None) -> None:
        if not self.results:
            return
        from .results.perfcsv import write_entry

        if not self.settings.build_only:  # a build-only session has no rows: keep the last run's entry
            write_entry(self.perf_entry_csv, [row for _, result in self.results for row in result.rows])
        if junit_path and Path(junit_path).is_file():
            from .results.junit import add_system_out, system_out_line

            lines = {_junit_key(nodeid): system_out_line(result) for nodeid, result in self.results}
            add_system_out(Path(junit_path), lines)
            self._merge_node_junit(Path(junit_path))

    def _merge_node_junit(self, junit_path: Path) -> None:
        """Per-node testcases of multi-node runs (SLURM) join the session's JUnit as their own suites."""
        from .results.junit import merge_junit

        nodes = [Path(r.node_junit) for _, r in self.results if r.node_junit and Path(r.node_junit).is_file()]
        if not nodes:
            return
        try:
            merge_junit([junit_path, *nodes], junit_path)
        except MadError as exc:  # a node wrote a broken file: keep the session's JUnit as it is
            warnings.warn(exc.message, stacklevel=1)

    def print_summary(self, terminalreporter: Any) -> None:
        """The results table; a build-only session tells its images instead (it runs and appends nothing)."""
        if not self.results:
            return
        from .results.summary import render_build_summary, render_summary

        render = render_build_summary if self.settings.build_only else render_summary
        terminalreporter.write_sep("=", "MAD results")
        text = render([result for _, result in self.results], width=terminalreporter._tw.fullwidth)
        terminalreporter.write(text if text.endswith("\n") else text + "\n")
        if self.settings.build_only:
            terminalreporter.write_line(f"build manifest written to {self.settings.manifest_output}")
        else:
            terminalreporter.write_line(f"results appended to {self.perf_csv}")
