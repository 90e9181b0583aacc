"""The one interface every target (local Docker, SLURM, Kubernetes, a plugin's own) implements.

A target's life in a session, on every process (controller and each xdist worker):

1. ``Cls.from_settings(TargetSettings)`` — cheap: no connection yet, so ``--collect-only`` and
   build-only sessions never reach the backend;
2. ``preflight()`` — optional (a target without it is not checked); controller only, once, before
   any build and not for ``--collect-only`` or ``--mad-build-only``: raise ``MadError`` (a usage
   error naming the backend, its address and the fix) when the backend cannot take runs;
3. ``sweep_stale()`` — controller only, at session start: remove what sessions whose pytest
   process died left behind (containers, jobs, objects). Never raises for an unreachable backend;
4. ``run(RunRequest) -> RunOutcome`` — run one model to completion or timeout; infrastructure
   problems go into ``RunOutcome.error`` as one paragraph, never as an exception;
5. ``cancel_all()`` — stop and remove everything this process started (Ctrl-C, SIGTERM, end of
   session). Idempotent, callable from a signal handler's aftermath;
6. ``close()`` — the session is over: wait for background work; on the controller also remove
   whatever of this session is left (a dead worker's container) unless ``--mad-keep-alive``.

Targets are created through the ``pytest_madengine_make_target`` hook (``targets.builtins`` holds
the built-in ones, which it creates with ``from_settings``; a conftest's hook may construct its
target any way it likes), so a conftest.py or another plugin can add a target without touching
the session, which never asks which target it has.

Images: ``needs_image`` says whether the target runs the model in a container image. When True
(every built-in target) the session builds, reuses or pulls the card's image before ``run`` and
hands it over in ``RunRequest.image``; when False no image is built or pulled and the session
never contacts a Docker engine: ``RunRequest.image`` is an ``ImageRef`` with an empty ``name``.
A target without the attribute is taken to need an image.

Optional class attributes a target may have (the built-in ones do; the session and xdist wiring
never name a target): ``options`` (its own ``--mad-*`` options as ``settings.Option``s, which a
built-in target declares in a light ``targets/<name>/cli.py`` so they exist before any target is
chosen; their values reach it in ``settings.target_options``), ``queued_workers(values) -> int``
(xdist workers a session without ``-n`` starts: one job or Job in flight per worker) and
``pytest_plugins`` (modules with fixtures and hooks, registered when the target is chosen, as
pytest's own ``pytest_plugins`` variable does for a conftest).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from ..context import Context
from ..settings import Settings
from ..workload.run import RunOutcome, RunRequest


@dataclass(frozen=True)
class TargetSettings:
    """What a target is created from (the same on the controller and every xdist worker)."""

    name: str  # the target's name as selected (--mad-target, or inferred from the context)
    session_id: str  # labels every container / job / object of this session
    session_dir: Path  # scratch dir shared by the session's processes on this host
    settings: Settings
    context: Context
    controller: bool  # True on the process that owns the session (not an xdist worker)

    @property
    def package_root(self) -> Path:
        return self.settings.package


class Target(Protocol):
    """Runs models somewhere. See the module docstring for the lifecycle."""

    name: str  # "local", "slurm", ...
    deployment_type: str  # perf.csv ``deployment_type`` of its rows
    needs_image: ClassVar[bool]  # False: no image is built or pulled, no Docker engine is contacted

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> Target:
        """Create the target (cheap: no connection to the backend yet)."""
        ...

    def sweep_stale(self) -> int:
        """Remove leftovers of dead sessions; return how many things were removed."""
        ...

    def run(self, request: RunRequest) -> RunOutcome:
        """Run one model to completion (or timeout) and return what happened."""
        ...

    def cancel_all(self) -> None:
        """Stop and remove everything this process started. Idempotent."""
        ...

    def close(self) -> None:
        """End of session on this process (see the module docstring)."""
        ...
