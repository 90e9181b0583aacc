"""The context, card and ``slurm`` keys pytest-madengine understands; every other one is warned about.

A MAD package or context written for madengine may carry keys this plugin does not act on; they are
reported once per session (``MadKeyWarning``) naming the key and where it came from, never dropped
silently. Keys starting with ``_`` (madengine's ``_comment``, ``_description``, ``_note*``) are notes
for readers, accepted silently at every level. Kubernetes keys are left to the Kubernetes target, which knows its own vocabulary.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import WarnOnce

# Top-level context keys (detected by the host, given by the user, or read by a target/step).
CONTEXT_KEYS = frozenset({
    "gpu_vendor", "guest_os", "host_os", "gpu_architecture", "gpu_product", "n_system_gpus", "rocm_path",
    "machine_name", "docker_env_vars", "docker_build_arg", "docker_mounts", "docker_gpus", "docker_cpus",
    "pre_scripts", "post_scripts", "tools", "encapsulate_script", "log_error_patterns",
    "log_error_benign_patterns", "log_error_pattern_scan", "slurm", "distributed", "k8s", "kubernetes",
    "data", "pipeline", "git_commit", "model_args", "MAD_CONTAINER_IMAGE", "MAD_ROCM_PATH",
    "n_gpus", "gpu_count", "num_gpus", "ngpus", "gpus_per_node", "gen_sys_env_details", "rocenv_mode",
    "env_vars", "deploy",
})
# Card keys (models.json entries); madengine's informational fields count as understood.
CARD_KEYS = frozenset({
    "name", "dockerfile", "scripts", "n_gpus", "timeout", "tags", "args", "multiple_results", "skip_gpu_arch",
    "training_precision", "owner", "url", "cred", "data", "env_vars", "distributed", "slurm",
    "additional_docker_run_options", "dockercontext", "docker_build_arg", "description",
    "log_error_pattern_scan", "log_error_patterns", "log_error_benign_patterns", "nnodes",
})
SLURM_KEYS = frozenset({
    "partition", "nodes", "gpus_per_node", "time", "exclusive", "reservation", "nodelist", "account", "qos",
    "extra_sbatch_options", "max_pending_seconds", "image_distribution", "barrier_timeout", "shared_dir",
    "python", "constraint", "exclude", "mem", "modules", "network_interface", "env_vars", "shared_workspace",
    "output_dir", "results_dir", "enable_node_check", "node_check_command", "node_check_retries", "node_check_timeout",
    "auto_cleanup_nodes",
})
DISTRIBUTED_KEYS = frozenset({"launcher", "nnodes", "nproc_per_node", "master_port", "port", "sglang_disagg",
                              "primus", "backend", "rendezvous_timeout"})
_SECTIONS = {"slurm": SLURM_KEYS, "distributed": DISTRIBUTED_KEYS}


class MadKeyWarning(UserWarning):
    """A context, card or ``slurm``/``distributed`` key that pytest-madengine does not act on."""


def unknown_keys(data: Mapping[str, Any], known: frozenset[str], where: str) -> list[tuple[str, str]]:
    """(dotted key, where) for each key of ``data`` and of its ``slurm``/``distributed`` sections not known."""
    found = [(key, where) for key in data if key not in known and not is_annotation(key)]
    for section, section_known in _SECTIONS.items():
        value = data.get(section)
        if isinstance(value, Mapping):
            found += [(f"{section}.{key}", where) for key in value if key not in section_known and not is_annotation(key)]
    return found


def is_annotation(key: str) -> bool:
    """Whether ``key`` is a note for readers (``_comment``, ``_description``, ``_note``, ``_use_case``...):
    madengine's configs carry them at every level, and they are accepted silently."""
    return str(key).startswith("_")


def context_unknown(data: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    return unknown_keys(data, CONTEXT_KEYS, where)


def cards_unknown(raws: Iterable[tuple[Mapping[str, Any], str]]) -> list[tuple[str, str]]:
    """Unknown keys of each card (its raw entry, its registry file), each (key, file) once."""
    seen: dict[tuple[str, str], None] = {}
    for raw, source in raws:
        seen.update(dict.fromkeys(unknown_keys(raw, CARD_KEYS, source)))
    return list(seen)


def key_warnings(found: Iterable[tuple[str, str]], already: WarnOnce) -> list[MadKeyWarning]:
    """One ``MadKeyWarning`` per (key, where) not reported yet by ``already`` (which remembers them)."""
    made = []
    for key, where in found:
        if not already.first((key, where)):
            continue
        made.append(MadKeyWarning(
            f"{where}: key {key!r} is not acted on by pytest-madengine (it has no effect here). Fix: remove it, "
            "or check its spelling against the MAD package format (README, 'Context keys')."))
    return made
