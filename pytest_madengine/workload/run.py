"""What a target is asked to run (``RunRequest``) and what it reports back (``RunOutcome``).

Target-neutral records: the local Docker target, the SLURM target and its per-node runner and any
target a plugin adds read the same request and fill the same outcome; judging (``results.judge``)
turns an outcome into a ``ModelResult``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..cards import ModelCard
from ..context import Context
from ..records import ImageRef
from ..settings import Settings

# Docker SDK ``containers.run`` keyword arguments (or another target's option mapping).
RunOptions = dict[str, object]
# What ``pytest_madengine_container_options`` may set, on every target (see its hookspec).
CONTAINER_OPTION_KEYS = ("environment", "volumes", "cap_add", "devices")
# Target specifics for reports and tests, JSON-like values. Keys the judge reads: ``nnodes``
# (int), ``launcher``, ``git_commit``, ``data_provider_type``, ``data_size``,
# ``data_download_duration``, ``node_junit`` (path), ``tool_outputs`` (list of paths in the log dir),
# ``env_csv`` (the system environment capture), ``report_properties`` (str → str: the target's own JUnit
# properties, e.g. SLURM's ``node_check.*``);
# local: ``container``, ``kept_container``, ``model_dir``; SLURM: ``job_id``, ``job_state``, ``nodes``, ``run_dir``.
TargetDetails = dict[str, object]


@dataclass
class RunRequest:
    """Everything a target needs to run one model once."""

    card: ModelCard
    context: Context
    image: ImageRef
    gpus: tuple[int, ...]  # allocated GPU ids (empty: no devices)
    settings: Settings
    log_path: Path  # where the run's combined output goes
    work_dir: Path  # host dir for this run's result files (copied out of the model dir)
    run_id: str  # unique per run; used for container/job names and labels
    # Called with the target's option mapping (e.g. Docker SDK kwargs) so plugins can adjust it.
    adjust_options: Callable[[RunOptions], None] | None = None
    live_output: Callable[[str], None] | None = None  # receives output lines when streaming
    cache_dir: Path | None = None  # session-wide cache (git clones shared by runs)
    # Called once the model's processes are gone (before cleanup): its GPUs can go to the next model.
    on_model_exit: Callable[[], None] | None = None
    # From ``pytest_madengine_container_options``: keys of CONTAINER_OPTION_KEYS, Docker SDK shapes.
    container_options: RunOptions = field(default_factory=dict)


@dataclass
class RunOutcome:
    """What happened when a target ran a model (before judging)."""

    exit_code: int | None
    log_path: Path
    duration: float  # seconds
    timed_out: bool = False
    timeout: int | None = None  # seconds, the limit that applied
    error: str = ""  # infrastructure problem in one paragraph (no traceback)
    skipped: str = ""  # reason when the model was deliberately not run (--mad-skip-run)
    result_files: list[Path] = field(default_factory=list)  # per node: multiple-results CSVs
    node_logs: list[Path] = field(default_factory=list)  # multi-node: one log per node
    extra: TargetDetails = field(default_factory=dict)


def effective_timeout(card: ModelCard, settings: Settings) -> int | None:
    """Seconds a run may take: ``--mad-timeout`` over the card's ``timeout``; 0 or less = none."""
    if settings.timeout is not None:
        return None if settings.timeout <= 0 else int(settings.timeout)
    return card.timeout
