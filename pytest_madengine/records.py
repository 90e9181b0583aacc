"""Plain records at the bottom of the plugin: statuses, phases, perf.csv columns, images, results.

Nothing here imports another module of the plugin; run requests and outcomes, which carry a card,
a context and the settings, live one layer up in ``workload.run``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SUCCESS, FAILURE, SKIPPED = "SUCCESS", "FAILURE", "SKIPPED"

# The phase a failure belongs to (named in the failure message and a JUnit property).
PHASES = ("build", "run", "timeout", "sanity", "performance")

# madengine's perf.csv header, in its order (madengine's ``perf.csv`` writer; MAD dashboards read it).
PERF_CSV_COLUMNS: tuple[str, ...] = (
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags",
    "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name",
    "deployment_type", "launcher", "gpu_architecture", "performance", "metric", "relative_change",
    "status", "build_duration", "test_duration", "dataname", "data_provider_type", "data_size",
    "data_download_duration", "build_number", "additional_docker_run_options",
)


# A JSON value (what ``json.loads`` returns): configs a model reports, results files' records.
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

# The JUnit failure ``type`` of each phase, so CI can tell build, run and timeout failures apart.
FAILURE_TYPES = {phase: f"mad.{phase}" for phase in PHASES}


@dataclass(frozen=True)
class ImageRef:
    """An image ready to run: built here, reused by content hash, pulled, or given."""

    name: str  # e.g. ci-dummy_dummy.ubuntu.amd (or a registry reference)
    dockerfile: str = ""  # package-relative Dockerfile path ('' when not built by us)
    base_docker: str = ""
    docker_sha: str = ""  # madengine's meaning: the base image's digest (sha256:...; '' when unknown)
    build_duration: float = 0.0
    registry_image: str = ""
    reused: bool = False  # True when an existing image with the same content hash was used
    build_log: str = ""
    image_id: str = ""  # the built image's own id (sha256:...)
    build_command: str = ""  # the build as one display line (never run through a shell)
    gpu_vendor: str = ""  # AMD / NVIDIA / '' as madengine infers it from the Dockerfile
    gpu_architecture: str = ""  # the MAD_SYSTEM_GPU_ARCHITECTURE the image was built for ('' = any)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelResult:
    """The judged outcome of one model run: what perf.csv, JUnit and the summary show."""

    model: str
    status: str  # SUCCESS / FAILURE / SKIPPED
    phase: str = ""  # failing phase, '' on success
    reason: str = ""
    performance: str = ""
    metric: str = ""
    rows: list[dict[str, str]] = field(default_factory=list)  # perf.csv rows: the 29 columns, then extras
    log_path: str = ""
    log_tail: str = ""
    image: str = ""
    gpus: tuple[int, ...] = ()
    build_duration: float = 0.0
    test_duration: float = 0.0
    node_junit: str = ""  # multi-node targets: the run's per-node JUnit, merged into the session's
    nodeid: str = ""  # the pytest node id of the test that ran the model (set when it is recorded)
    # More JUnit properties (multi-node aggregation, reference band, baseline, repeat statistics).
    properties: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # for the terminal summary (e.g. no baseline yet)
    configs: JsonValue = None  # the file the card's ``--config`` arg names, loaded (madengine's configs)

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
