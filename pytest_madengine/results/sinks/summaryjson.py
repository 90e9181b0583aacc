"""madengine's ``--summary-output`` file: the session's results as one JSON summary.

Shapes (madengine ``execution/container_runner.py:run_models_from_manifest`` and
``orchestration/build_orchestrator.py``), written once at the end of the session (atomically):

* a run session — ``{"successful_runs": [...], "failed_runs": [...], "total_runs": N}``; a passed or
  skipped model is a successful run ``{"model", "image", "status", "performance", "duration"}``
  (``performance`` as perf.csv holds it, ``null`` when none; ``duration`` in seconds), a failed one
  ``{"model", "image", "status", "error"}`` (the failure's reason).
* a ``--mad-build-only`` session — ``{"successful_builds": [...], "failed_builds": [...],
  "total_builds": N}`` with ``{"model", "image"}`` and ``{"model", "error"}`` entries.
"""
from __future__ import annotations

from pathlib import Path

from ...fileio import atomic_write_json
from ...records import FAILURE, JsonValue, ModelResult

Entry = dict[str, JsonValue]


def run_entry(result: ModelResult) -> Entry:
    if result.status == FAILURE:
        return {"model": result.model, "image": result.image, "status": result.status, "error": result.reason}
    return {"model": result.model, "image": result.image, "status": result.status,
            "performance": result.performance or None, "duration": round(result.test_duration, 3)}


def build_entry(result: ModelResult) -> Entry:
    if result.status == FAILURE:
        return {"model": result.model, "error": result.reason}
    return {"model": result.model, "image": result.image}


class SummaryJsonSink:
    """Collects every result; writes the summary JSON at the end of the session."""

    def __init__(self, path: Path, *, build_only: bool = False) -> None:
        self.path = Path(path)
        self.build_only = build_only
        self.results: list[ModelResult] = []

    def record(self, result: ModelResult) -> None:
        self.results.append(result)

    def finish(self) -> list[str]:
        kind, make = ("builds", build_entry) if self.build_only else ("runs", run_entry)
        good = [make(r) for r in self.results if r.status != FAILURE]
        bad = [make(r) for r in self.results if r.status == FAILURE]
        atomic_write_json(self.path, {f"successful_{kind}": good, f"failed_{kind}": bad,
                                      f"total_{kind}": len(good) + len(bad)})
        return [f"summary written to {self.path}"]
