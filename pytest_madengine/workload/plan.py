"""A model's workload as every built-in target runs it: one call for a target of your own.

``plan_workload`` prepares the model dir (the card's scripts copied in, its ``url`` cloned, the
tools' helpers and the system environment capture added) and returns the command and variables
that the local container, every SLURM node and every Kubernetes pod run. A target that runs no
container (bare metal, another scheduler) runs ``argv`` with the model dir as working directory
and ``env`` added to its own environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .environment import mad_environment
from .run import RunRequest
from .steps import plan_command


@dataclass(frozen=True)
class Workload:
    """What one run executes.

    - ``argv``: the command (list of strings, never a shell line), run in ``model_dir``;
    - ``env``: variables to add to the process's environment: madengine's ``MAD_*`` contract, GPU
      visibility for ``RunRequest.gpus``, the launcher contract of the card's ``distributed``
      block, the card's ``env_vars``, the context's ``docker_env_vars``, and the step runner's
      own variables. Secret values are among them (the card's credentials): never log ``env``;
    - ``model_dir``: the prepared working directory (inside ``RunRequest.work_dir``);
    - ``git_commit``: HEAD of the card's cloned ``url`` ('' without one), for perf.csv;
    - ``outputs``: model-dir-relative names / globs the tools leave (copy them out after the run);
    - ``secret_values``: values to mask in anything you write besides the run's own log.
    """

    argv: list[str]
    env: dict[str, str]
    model_dir: Path
    git_commit: str = ""
    outputs: list[str] = field(default_factory=list)
    secret_values: list[str] = field(default_factory=list, repr=False)


def plan_workload(request: RunRequest, *, devices_passed: bool = False) -> Workload:
    """Prepare ``request.work_dir / "model"`` and return the run's command and variables.

    ``devices_passed``: True when the target hands the allocated GPUs to the process as devices
    (a container with ``--device``); False (bare host) sets the vendor's visibility variables to
    ``request.gpus`` instead. Raises ``MadError`` (one paragraph naming the card field and the fix)
    for what the user must fix: a missing script, a path leaving the package, a bad ``data`` entry.
    """
    model_dir = request.work_dir / "model"
    plan = plan_command(request, request.settings.package, model_dir)
    env = mad_environment(request.card, request.context, request.gpus, devices_passed=devices_passed)
    return Workload(argv=list(plan.command), env={**env, **plan.env}, model_dir=model_dir,
                    git_commit=plan.git_commit, outputs=list(plan.outputs), secret_values=list(plan.secret_values))
