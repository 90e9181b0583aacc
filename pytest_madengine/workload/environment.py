"""The environment a model sees in its container (or pod), as madengine sets it.

``MAD_*`` variables (``MAD_SYSTEM_GPU_ARCHITECTURE``, ``MAD_SYSTEM_NGPUS``, ``MAD_RUNTIME_NGPUS``,
``MAD_GPU_VENDOR``, ``MAD_GUEST_OS``, ``MAD_MODEL_NAME``, ``MAD_OUTPUT_CSV``, ``MAD_DATANAME``),
GPU visibility (``HIP``/``ROCR``/``CUDA_VISIBLE_DEVICES``, ``MAD_ALLOCATED_GPUS``), the single-node
launcher contract (``MAD_MULTI_NODE_RUNNER`` and the launcher's variables, see ``launchers``), the host's
``MAD_SECRETS_*``, then the card's ``env_vars`` and the context's ``docker_env_vars`` (later wins).
Target-neutral: every target passes the same mapping to its runtime.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from ..cards import ModelCard
from ..context import Context
from .launchers import local_launcher_env


def visibility_env(vendor: str, gpus: tuple[int, ...], *, devices_passed: bool) -> dict[str, str]:
    """Which GPUs the runtime shows: container-relative ids when devices are passed, else host ids."""
    if not gpus:
        return {}
    env = {"MAD_ALLOCATED_GPUS": ",".join(str(gpu) for gpu in gpus)}
    ids = ",".join(str(i) for i in range(len(gpus))) if devices_passed else env["MAD_ALLOCATED_GPUS"]
    vendor = (vendor or "NONE").upper()
    names = {"AMD": ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"), "NVIDIA": ("CUDA_VISIBLE_DEVICES",)}
    for name in names.get(vendor, ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")):
        env[name] = ids
    return env


def mad_environment(card: ModelCard, context: Context, gpus: tuple[int, ...], *, devices_passed: bool,
                    host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """MAD_* variables, GPU visibility, host MAD_SECRETS_*, card env_vars, context docker_env_vars."""
    host_env = os.environ if host_env is None else host_env
    system = context.host.gpu_count
    runtime = len(gpus) if gpus else (card.n_gpus if card.n_gpus >= 0 else system)
    env = {
        "MAD_SYSTEM_GPU_ARCHITECTURE": context.gpu_architecture,
        "MAD_SYSTEM_NGPUS": str(system),
        "MAD_RUNTIME_NGPUS": str(runtime),
        "MAD_GPU_VENDOR": str(context.gpu_vendor or ""),
        "MAD_GUEST_OS": str(context.guest_os or ""),
        "MAD_MODEL_NAME": card.name,
    }
    if card.multiple_results:
        env["MAD_OUTPUT_CSV"] = card.multiple_results
    if card.data:
        env["MAD_DATANAME"] = card.data
    env.update(visibility_env(env["MAD_GPU_VENDOR"], gpus, devices_passed=devices_passed))
    if "MAD_MULTI_NODE_RUNNER" not in (context.docker_env_vars or {}):  # a SLURM/k8s node sets its own
        env.update(local_launcher_env(card.distributed, (getattr(context, "data", None) or {}).get("distributed"), nproc_per_node=runtime,
                                      model_name=card.name, host_launcher=host_env.get("MAD_LAUNCHER", "")))
    env.update({k: v for k, v in host_env.items() if k.startswith("MAD_SECRETS_")})
    env.update(card.env_vars)
    env.update({str(k): str(v) for k, v in (context.docker_env_vars or {}).items()})
    return env
