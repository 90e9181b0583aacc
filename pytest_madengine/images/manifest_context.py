"""What a build manifest gives the context of the run that uses it (``--mad-manifest``).

madengine's run orchestrator (``run_orchestrator.py``: ``_load_and_merge_manifest``, ``_execute_local``)
restores from the manifest the build's ``context`` keys ``docker_env_vars``, ``tools``, ``pre_scripts``,
``post_scripts`` and ``encapsulate_script``, and from its ``deployment_config`` the ``slurm``, ``k8s`` /
``kubernetes``, ``distributed`` and ``env_vars`` sections and the ``target``; the run's own context wins
key by key. The returned mapping is the lowest user layer of ``context.build_context`` (``base``).

Left out: the build host's facts (``MAD_GPU_VENDOR``, ``MAD_SYSTEM_*`` of ``docker_env_vars``; the run
host detects its own) and every ``<redacted>`` value (a manifest never holds secrets: the run takes them
from its own context or the host's environment).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..jsonfile import read_json, require_object
from ..workload.secrets import REDACTED

CONTEXT_KEYS = ("docker_env_vars", "tools", "pre_scripts", "post_scripts", "encapsulate_script")
DEPLOYMENT_KEYS = ("slurm", "k8s", "kubernetes", "distributed", "env_vars")
BUILD_HOST_VARIABLES = frozenset({"MAD_GPU_VENDOR", "MAD_SYSTEM_NGPUS", "MAD_SYSTEM_GPU_ARCHITECTURE",
                                  "MAD_SYSTEM_GPU_PRODUCT_NAME", "MAD_SYSTEM_HIP_VERSION"})


def _without_redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_redacted(v) for k, v in value.items() if v != REDACTED}
    if isinstance(value, list):
        return [_without_redacted(item) for item in value]
    return value


def _section(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    require_object(value, f"the manifest's {key!r}", where=str(path),
                   fix="rewrite the manifest with --mad-build-only")
    return value


def manifest_context(path: str | Path) -> dict[str, Any]:
    """The context layer a build manifest carries (see the module doc). Raises MadError naming the file."""
    path = Path(path)
    data = read_json(path, where=str(path), fix="give the file written by `pytest --mad-build-only`")
    require_object(data, "the build manifest", where=str(path), verb="holds",
                   fix="use a manifest written by --mad-build-only")
    context, deployment = _section(data, "context", path), _section(data, "deployment_config", path)
    layer = {key: context[key] for key in CONTEXT_KEYS if context.get(key) is not None}
    if isinstance(layer.get("docker_env_vars"), dict):
        layer["docker_env_vars"] = {k: v for k, v in layer["docker_env_vars"].items()
                                    if k not in BUILD_HOST_VARIABLES}
    layer.update({key: deployment[key] for key in DEPLOYMENT_KEYS if deployment.get(key) is not None})
    target = str(deployment.get("target") or "").strip()
    if target and target != "local":
        layer["deploy"] = target
    return _without_redacted(layer)


def manifest_layer(path: str | Path | None) -> dict[str, Any] | None:
    """``manifest_context(path)``, or None without a manifest."""
    return manifest_context(path) if path else None
