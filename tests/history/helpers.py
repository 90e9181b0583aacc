"""Results and sessions for the history tests (rows carry all 29 perf.csv columns)."""
from __future__ import annotations

from pytest_madengine.history.store import HistoryStore, SessionInfo
from pytest_madengine.records import FAILURE, SUCCESS, ModelResult
from pytest_madengine.results.sinks.perfcsv import COLUMNS


def row(model: str, performance: str, *, metric: str = "tokens/s", arch: str = "gfx942", n_gpus: str = "8",
        nnodes: str = "1", status: str = SUCCESS) -> dict[str, str]:
    values = dict.fromkeys(COLUMNS, "")
    values.update(model=model, performance=performance, metric=metric, gpu_architecture=arch, n_gpus=n_gpus,
                  nnodes=nnodes, gpus_per_node=n_gpus, status=status, docker_sha="sha256:feed",
                  machine_name="node-a")
    return values


def result(model: str, *performances: str, status: str = SUCCESS, phase: str = "", reason: str = "",
           **fields: str) -> ModelResult:
    """One run's result; several performances = a multiple-results run (rows model, model_2, …)."""
    rows = [row(model if index == 0 else f"{model}_{index + 1}", value, status=status, **fields)
            for index, value in enumerate(performances or ("",))]
    return ModelResult(model=model, status=status, phase=phase if status == FAILURE else "", reason=reason,
                       performance=rows[0]["performance"], metric=rows[0]["metric"], rows=rows)


def add_session(store: HistoryStore, session_id: str, started: float, *results: ModelResult) -> None:
    store.begin_session(SessionInfo(id=session_id, started=started, host="node-a", target="local",
                                    gpu_vendor="AMD", gpu_architecture="gfx942", gpu_count=8))
    for item in results:
        store.add_result(session_id, item)
    store.end_session(session_id, started + 60)
