"""The built-in targets by name, and how a session picks its target's name.

Like ReFrame's scheduler registry: a name maps to the class implementing ``targets.base.Target``,
imported only when chosen (the SLURM and Kubernetes clients are heavy). Other targets come from
``pytest_madengine_make_target`` implementations in a conftest.py or plugin, which are asked first.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

from ..settings import Option
from ..extras import require
from .base import Target, TargetSettings

BUILTIN_TARGETS: dict[str, str] = {
    "local": "pytest_madengine.targets.local:LocalTarget",
    "slurm": "pytest_madengine.targets.slurm:SlurmTarget",
    "k8s": "pytest_madengine.targets.k8s:K8sTarget",
}
# A target whose client library is an extra of the package: target name → module it imports.
TARGET_MODULES: dict[str, str] = {"k8s": "kubernetes"}


# Each built-in target's light module of options and worker count (see ``targets/<name>/cli.py``).
BUILTIN_CLI: dict[str, str] = {
    "slurm": "pytest_madengine.targets.slurm.cli",
    "k8s": "pytest_madengine.targets.k8s.cli",
}


def builtin_options() -> tuple[Option, ...]:
    """The ``--mad-*`` options the built-in targets own, registered with the plugin's."""
    options: list[Option] = []
    for module in BUILTIN_CLI.values():
        options.extend(importlib.import_module(module).OPTIONS)
    return tuple(options)


def queued_workers(name: str, values: Mapping[str, object]) -> int:
    """How many xdist workers a session of target ``name`` starts when ``-n`` is not given: the
    target's answer (its ``cli.queued_workers``), 1 for a target that runs models in process."""
    module = BUILTIN_CLI.get(name)
    if module is None:
        return 1
    answer: int = importlib.import_module(module).queued_workers(values)
    return answer


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
    """The built-in target named ``settings.name``, or None when there is none of that name.
    Raises MadError naming the ``pip install`` line when the target's extra is not installed."""
    entry = BUILTIN_TARGETS.get(settings.name)
    if entry is None:
        return None
    if settings.name in TARGET_MODULES:
        require(TARGET_MODULES[settings.name], f"--mad-target {settings.name}")
    module_name, class_name = entry.split(":")
    target_class = getattr(importlib.import_module(module_name), class_name)
    target: Target = target_class.from_settings(settings)
    return target
