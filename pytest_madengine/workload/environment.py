"""The environment a model sees in its container (or pod), as madengine sets it.

``MAD_*`` variables (``MAD_SYSTEM_GPU_ARCHITECTURE``, ``MAD_SYSTEM_NGPUS``, ``MAD_RUNTIME_NGPUS``,
``MAD_GPU_VENDOR``, ``MAD_GUEST_OS``, ``MAD_MODEL_NAME``, ``MAD_OUTPUT_CSV``, ``MAD_DATANAME``),
GPU visibility (``HIP``/``ROCR``/``CUDA_VISIBLE_DEVICES``, ``MAD_ALLOCATED_GPUS``), the single-node
launcher contract (``MAD_MULTI_NODE_RUNNER`` and the launcher's variables, see ``launchers``),
``JENKINS_BUILD_NUMBER`` (the host's ``BUILD_NUMBER``, else ``0``), ``ROCM_PATH`` on AMD (the image's own, else
``/opt/rocm``), the host variables madengine passes through (``HOST_PASS_THROUGH``, any ``NCCL_*``), the
host's ``MAD_SECRETS_*``, then the card's ``env_vars``, the context's top-level ``env_vars`` (madengine's
deployment variables, which its SLURM and Kubernetes targets export into the job and the pods; here every
target, local containers included) and the context's ``docker_env_vars`` (later wins). ``MIOPEN_USER_DB_PATH``
of ``env_vars`` yields to one the host sets (a SLURM node's per-process cache dir), as in madengine.
``MAD_SYSTEM_HIP_VERSION`` and ``MAD_SYSTEM_GPU_PRODUCT_NAME`` come with the context's ``docker_env_vars``
(``context.host_context``). Target-neutral: every target passes the same mapping to its runtime.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from ..cards import ModelCard
from ..context import Context
from .launchers import local_launcher_env

# Host variables madengine's container runner copies into the container when they are set
# (``container_runner.run_container``: its SLURM list plus MIOPEN_USER_DB_PATH). The GPU visibility
# variables of that list are left out: the allocator narrows the pool by them and the container gets
# its own, container-relative ids (``visibility_env``).
HOST_PASS_THROUGH = (
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "NODE_RANK", "NNODES", "NPROC_PER_NODE",
    "MAD_MULTI_NODE_RUNNER", "MAD_COLLECT_METRICS", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME",
    "PRIMUS_CONFIG_PATH", "PRIMUS_CLI_EXTRA", "TORCH_ELASTIC_RDZV_TIMEOUT", "MIOPEN_USER_DB_PATH",
)
HOST_PASS_THROUGH_PREFIXES = ("NCCL_",)
CONTAINER_ROCM_PATH = "/opt/rocm"  # madengine's default when the image does not set ROCM_PATH


def host_pass_through(host_env: Mapping[str, str]) -> dict[str, str]:
    """The host variables of ``HOST_PASS_THROUGH`` (and every ``NCCL_*``) that are set."""
    return {name: value for name, value in host_env.items()
            if name in HOST_PASS_THROUGH or name.startswith(HOST_PASS_THROUGH_PREFIXES)}


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


def deployment_env(context: Context, passed: Mapping[str, str]) -> dict[str, str]:
    """The context's top-level ``env_vars``; ``MIOPEN_USER_DB_PATH`` only where the host gave none."""
    data = getattr(context, "data", None) or {}
    env = {str(k): str(v) for k, v in (data.get("env_vars") or {}).items()}
    if "MIOPEN_USER_DB_PATH" in passed:
        env.pop("MIOPEN_USER_DB_PATH", None)
    return env


def mad_environment(card: ModelCard, context: Context, gpus: tuple[int, ...], *, devices_passed: bool,
                    host_env: Mapping[str, str] | None = None,
                    image_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """MAD_* variables, GPU visibility, launcher contract, host pass-through, card env_vars, context env.

    ``host_env`` is the environment of the process starting the run (default ``os.environ``);
    ``image_env`` the image's own ``ENV`` (its config), where ``ROCM_PATH`` is looked up.
    """
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
        "JENKINS_BUILD_NUMBER": host_env.get("BUILD_NUMBER", "0"),
    }
    if env["MAD_GPU_VENDOR"].upper() == "AMD":
        env["ROCM_PATH"] = (image_env or {}).get("ROCM_PATH") or CONTAINER_ROCM_PATH
    if card.multiple_results:
        env["MAD_OUTPUT_CSV"] = card.multiple_results
    if card.data:
        env["MAD_DATANAME"] = card.data
    env.update(visibility_env(env["MAD_GPU_VENDOR"], gpus, devices_passed=devices_passed))
    passed = host_pass_through(host_env)
    if "MAD_MULTI_NODE_RUNNER" not in {**passed, **(context.docker_env_vars or {})}:  # a node sets its own
        distributed = (getattr(context, "data", None) or {}).get("distributed")
        env.update(local_launcher_env(card.distributed, distributed, nproc_per_node=runtime,
                                      model_name=card.name, host_launcher=host_env.get("MAD_LAUNCHER", "")))
    env.update(passed)
    if "HIP_VISIBLE_DEVICES" in env:  # rocm/vllm images set it to 1, which makes Ray ignore HIP_VISIBLE_DEVICES
        env["RAY_EXPERIMENTAL_NOSET_HIP_VISIBLE_DEVICES"] = ""
    env.update({k: v for k, v in host_env.items() if k.startswith("MAD_SECRETS_")})
    env.update(card.env_vars)
    env.update(deployment_env(context, passed))
    env.update({str(k): str(v) for k, v in (context.docker_env_vars or {}).items()})
    return env
