"""Plain records passed between the modules: images, run requests/outcomes, results."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUCCESS, FAILURE, SKIPPED = "SUCCESS", "FAILURE", "SKIPPED"

# The phase a failure belongs to (named in the failure message and a JUnit property).
PHASES = ("build", "run", "timeout", "sanity", "performance")


@dataclass(frozen=True)
class ImageRef:
    """An image ready to run: built here, reused by content hash, pulled, or given."""

    name: str  # e.g. ci-dummy_dummy.ubuntu.amd (or a registry reference)
    dockerfile: str = ""  # package-relative Dockerfile path ('' when not built by us)
    base_docker: str = ""
    docker_sha: str = ""  # image id (sha256:...)
    build_duration: float = 0.0
    registry_image: str = ""
    reused: bool = False  # True when an existing image with the same content hash was used
    build_log: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRequest:
    """Everything a target needs to run one model once."""

    card: Any  # cards.ModelCard
    context: Any  # context.Context
    image: ImageRef
    gpus: tuple[int, ...]  # allocated GPU ids ('' pool → no devices)
    settings: Any  # settings.Settings
    log_path: Path  # where the run's combined output goes
    work_dir: Path  # host dir for this run's result files (copied out of the model dir)
    run_id: str  # unique per run; used for container/job names and labels
    # Called with the target's option dict (e.g. Docker SDK kwargs) so plugins can adjust it.
    adjust_options: Callable[[dict[str, Any]], None] | None = None
    live_output: Callable[[str], None] | None = None  # receives output lines when streaming
    cache_dir: Path | None = None  # session-wide cache (git clones shared by runs)
    # Called once the model's processes are gone (before cleanup): its GPUs can go to the next model.
    on_model_exit: Callable[[], None] | None = None


@dataclass
class RunOutcome:
    """What happened when a target ran a model (before judging)."""

    exit_code: int | None
    log_path: Path
    duration: float
    timed_out: bool = False
    timeout: int | None = None
    error: str = ""  # infrastructure problem in one paragraph (no traceback)
    skipped: str = ""  # reason when the model was deliberately not run (--mad-skip-run)
    result_files: list[Path] = field(default_factory=list)  # per node: multiple-results CSVs
    node_logs: list[Path] = field(default_factory=list)  # multi-node: one log per node
    extra: dict[str, Any] = field(default_factory=dict)  # target specifics (job id, nodes...)


@dataclass
class ModelResult:
    """The judged outcome of one model run: what perf.csv, JUnit and the summary show."""

    model: str
    status: str  # SUCCESS / FAILURE / SKIPPED
    phase: str = ""  # failing phase, '' on success
    reason: str = ""
    performance: str = ""
    metric: str = ""
    rows: list[dict[str, str]] = field(default_factory=list)  # perf.csv rows (29 columns)
    log_path: str = ""
    log_tail: str = ""
    image: str = ""
    gpus: tuple[int, ...] = ()
    build_duration: float = 0.0
    test_duration: float = 0.0
    node_junit: str = ""  # multi-node targets: the run's per-node JUnit, merged into the session's

    @property
    def passed(self) -> bool:
        return self.status == SUCCESS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = list(self.gpus)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelResult:
        data = dict(data)
        data["gpus"] = tuple(data.get("gpus") or ())
        return cls(**data)
