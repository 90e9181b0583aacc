"""The built-in targets by name, and how a session picks its target's name.

Like ReFrame's scheduler registry: a name maps to the class implementing ``targets.base.Target``,
imported only when chosen (the SLURM and Kubernetes clients are heavy). Other targets come from
``pytest_madengine_make_target`` implementations in a conftest.py or plugin, which are asked first.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

from .base import Target, TargetSettings

BUILTIN_TARGETS: dict[str, str] = {
    "local": "pytest_madengine.targets.local:LocalTarget",
    "slurm": "pytest_madengine.targets.slurm:SlurmTarget",
    "k8s": "pytest_madengine.targets.k8s:K8sTarget",
}


def infer_target(explicit: str | None, context: Mapping[str, object]) -> str:
    """``--mad-target`` when given (``kubernetes`` = ``k8s``), else ``slurm`` / ``k8s`` when the context
    has that key (``k8s`` or ``kubernetes``), else the context's ``deploy`` (madengine's explicit target,
    also what a build manifest's ``deployment_config.target`` becomes), else local."""
    if explicit:
        return "k8s" if explicit == "kubernetes" else explicit
    if "slurm" in context:
        return "slurm"
    if "k8s" in context or "kubernetes" in context:
        return "k8s"
    deploy = str(context.get("deploy") or "local").strip().lower()
    return {"kubernetes": "k8s", "docker": "local"}.get(deploy, deploy)


def builtin_target(settings: TargetSettings) -> Target | None:
    """The built-in target named ``settings.name``, or None when there is none of that name."""
    entry = BUILTIN_TARGETS.get(settings.name)
    if entry is None:
        return None
    module_name, class_name = entry.split(":")
    target_class = getattr(importlib.import_module(module_name), class_name)
    target: Target = target_class.from_settings(settings)
    return target
