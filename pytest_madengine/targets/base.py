"""The one small interface every target (local Docker, SLURM, Kubernetes) implements."""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from ..errors import MadError
from ..records import RunOutcome, RunRequest

_TARGETS = {
    "local": "pytest_madengine.targets.local:LocalTarget",
    "slurm": "pytest_madengine.targets.slurm:SlurmTarget",
    "k8s": "pytest_madengine.targets.k8s:KubernetesTarget",
}


class Target(Protocol):
    name: str

    def run(self, request: RunRequest) -> RunOutcome:
        """Run one model to completion (or timeout) and return what happened."""

    def cancel_all(self) -> None:
        """Stop and remove everything this process started (containers, jobs). Idempotent."""


def infer_target(explicit: str | None, context: dict[str, Any]) -> str:
    if explicit:
        return explicit
    if "slurm" in context:
        return "slurm"
    if "k8s" in context or "kubernetes" in context:
        return "k8s"
    return "local"


def get_target(name: str, **kwargs: Any) -> Target:
    """Instantiate a target by name; its module is imported only now (heavy SDKs)."""
    if name not in _TARGETS:
        raise MadError(f"unknown target {name!r}", where="--mad-target",
                       fix=f"use one of {', '.join(_TARGETS)}")
    module_name, cls_name = _TARGETS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise MadError(f"the {name} target is not available in this version",
                           where="--mad-target", fix="use --mad-target local or slurm") from None
        raise
    return getattr(module, cls_name)(**kwargs)
