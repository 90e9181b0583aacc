"""Distributed launchers: their kinds, job templates, runner command lines and the env contract.

``MAD_MULTI_NODE_RUNNER`` is the command line a model script prefixes to its entry point
(``$MAD_MULTI_NODE_RUNNER train.py ...``). Each launcher also exports madengine's variables for
its kind, so a MAD script written for madengine reads what it expects on every target (local,
SLURM, Kubernetes) (madengine ``deployment/slurm.py`` ``_generate_*_command``,
``execution/container_runner.py`` ``_generate_local_launcher_command``). On SLURM and Kubernetes the
torchrun family also gets torchrun's own ``PET_NNODES``, ``PET_NPROC_PER_NODE``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``:

=============  =====================================================  =================================
kind           runner (1 node / several nodes)                        variables
=============  =====================================================  =================================
torchrun,      ``torchrun --standalone --nproc_per_node=G`` /          megatron: TENSOR_MODEL_PARALLEL_
native         ``torchrun --nnodes=N --nproc_per_node=G --node_rank=R  SIZE (min(G,8) / G),
megatron,      --master_addr=A --master_port=P``                       PIPELINE_MODEL_PARALLEL_SIZE
torchtitan                                                            (1 / N), CONTEXT_PARALLEL_SIZE=1;
                                                                      torchtitan: TORCHTITAN_TENSOR_/
                                                                      PIPELINE_PARALLEL_SIZE (G, 1 / N),
                                                                      several nodes also _FSDP_ENABLED=1,
                                                                      _CONTEXT_PARALLEL_SIZE=1
deepspeed      ``deepspeed --num_gpus=G`` / ``deepspeed --no_ssh ...``
vllm           empty                                                  VLLM_TENSOR_PARALLEL_SIZE=G,
                                                                      VLLM_PIPELINE_PARALLEL_SIZE=1,
                                                                      VLLM_DISTRIBUTED_BACKEND auto/none
sglang         empty                                                  SGLANG_TENSOR_/PIPELINE_PARALLEL_
                                                                      SIZE (G, 1), NCCL_INIT_ADDR=A:P
                                                                      (several nodes)
sglang-disagg  empty (3+ nodes: 1 proxy, prefill, decode)             SGLANG_DISAGG_* (see disagg_env)
primus         empty                                                  PRIMUS_CONFIG_PATH,
                                                                      PRIMUS_CLI_EXTRA, BACKEND
=============  =====================================================  =================================

Several nodes of the torchrun family also get ``PET_RDZV_CONF=timeout=T``: a node that cannot reach
its master (wrong address, port or interface) gives up after ``distributed.rendezvous_timeout``
seconds (default 300; torch's own default is 600) with torch's reason, instead of retrying until the
model's timeout.

Differences from madengine, on purpose: a run without a launcher is ``native`` (madengine calls it
torchrun; the runner and variables are the same, and the perf row's ``launcher`` says torchrun on
SLURM as madengine's does); multi-node deepspeed starts one launcher per
node with ``--no_ssh`` instead of madengine's hostfile + pdsh (containers have no ssh between nodes).
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import MadError


@dataclass(frozen=True)
class Launcher:
    name: str  # as written in a card/context, lower case ("megatron-lm", "sglang_disagg", ...)
    family: str  # decides the job template
    kind: str = ""  # madengine's canonical launcher: decides the runner line and the variables
    env: tuple[tuple[str, str], ...] = ()  # launcher-specific defaults exported on every node

    @property
    def template(self) -> str:
        return f"{self.family}.sh.j2"

    @property
    def bare_metal(self) -> bool:
        """The card's own SLURM script is submitted as is (it starts its own containers)."""
        return self.family == "slurm_multi"


_NCCL = (("NCCL_ASYNC_ERROR_HANDLING", "1"), ("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"))
_FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "native": (),
    "torchrun": _NCCL + (("OMP_NUM_THREADS", "1"),),
    "deepspeed": _NCCL + (("OMP_NUM_THREADS", "1"),),
    "vllm": (("VLLM_WORKER_MULTIPROC_METHOD", "spawn"),),
    "sglang": (("SGLANG_HOST_IP", "0.0.0.0"),),
    "sglang_disagg": (("SGLANG_HOST_IP", "0.0.0.0"),),
    "slurm_multi": (),
}
# spelling → (kind, family)
_ALIASES: dict[str, tuple[str, str]] = {
    "": ("native", "native"), "none": ("native", "native"), "native": ("native", "native"),
    "docker": ("native", "native"),
    "torchrun": ("torchrun", "torchrun"), "torch.distributed.run": ("torchrun", "torchrun"),
    "megatron": ("megatron", "torchrun"), "megatron-lm": ("megatron", "torchrun"),
    "megatron_lm": ("megatron", "torchrun"), "torchtitan": ("torchtitan", "torchrun"),
    "primus": ("primus", "native"),
    "deepspeed": ("deepspeed", "deepspeed"),
    "vllm": ("vllm", "vllm"),
    "sglang": ("sglang", "sglang"),
    "sglang-disagg": ("sglang-disagg", "sglang_disagg"), "sglang_disagg": ("sglang-disagg", "sglang_disagg"),
    "slurm_multi": ("slurm_multi", "slurm_multi"), "slurm-multi": ("slurm_multi", "slurm_multi"),
}
_TORCHRUN_KINDS = ("native", "torchrun", "megatron", "torchtitan")
_PRIMUS_BACKENDS = {"maxtext": "MaxText", "torchtitan": "torchtitan", "megatron": "megatron",
                    "megatron_bridge": "megatron_bridge", "moe_package": "moe_package"}
DEFAULT_PRIMUS_CONFIG = "exp_pretrain.yaml"  # madengine's default PRIMUS_CONFIG_PATH
DEFAULT_MASTER_PORT = 29500  # madengine's MASTER_PORT when the config names none
DEFAULT_RENDEZVOUS_TIMEOUT = 300  # seconds a node of a multi-node torchrun waits to meet its master


def get_launcher(name: str | None, *, where: str = "distributed.launcher") -> Launcher:
    """A launcher by any spelling madengine accepts; MadError naming ``where`` for an unknown one."""
    key = (name or "").strip().lower()
    if key not in _ALIASES:
        known = ", ".join(sorted(k for k in _ALIASES if k))
        raise MadError(f"unknown launcher {name!r}", where=where, fix=f"use one of {known}")
    kind, family = _ALIASES[key]
    return Launcher(name=key or "native", family=family, kind=kind, env=_FAMILIES[family])


def families() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def _kind(name: str) -> str:
    """A kind, family or alias → the kind (``runner_command`` accepts all three)."""
    key = name.strip().lower()
    return _ALIASES[key][0] if key in _ALIASES else {"sglang_disagg": "sglang-disagg"}.get(key, key)


def runner_command(family: str, *, nnodes: int, nproc_per_node: int, node_rank: int,
                   master_addr: str, master_port: int) -> str:
    """``MAD_MULTI_NODE_RUNNER`` for one node ('' for launchers that start their own processes).

    ``family`` may be a launcher kind, a template family or any accepted spelling.
    """
    kind = _kind(family)
    values = {"nnodes": nnodes, "nproc": nproc_per_node, "rank": node_rank, "addr": master_addr,
              "port": master_port}
    quoted = {key: shlex.quote(str(value)) for key, value in values.items()}
    if kind in _TORCHRUN_KINDS:
        line = ("torchrun --standalone --nproc_per_node={nproc}" if nnodes == 1 else
                "torchrun --nnodes={nnodes} --nproc_per_node={nproc} --node_rank={rank} "
                "--master_addr={addr} --master_port={port}")
    elif kind == "deepspeed":
        line = ("deepspeed --num_gpus={nproc}" if nnodes == 1 else
                "deepspeed --no_ssh --num_nodes={nnodes} --num_gpus={nproc} --node_rank={rank} "
                "--master_addr={addr} --master_port={port}")
    else:  # vllm, sglang, sglang-disagg, primus, slurm_multi manage their own processes
        line = ""
    return line.format(**quoted)


def merged_distributed(card_distributed: Mapping[str, Any] | None,
                       context_distributed: Mapping[str, Any] | None) -> dict[str, Any]:
    """The card's ``distributed`` section overlaid by the context's (nested dicts merged one level)."""
    merged: dict[str, Any] = {}
    for source in (card_distributed, context_distributed):
        for key, value in (source or {}).items() if isinstance(source, Mapping) else ():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            elif value is not None:
                merged[key] = value
    return merged


def disagg_split(nnodes: int, distributed: Mapping[str, Any]) -> tuple[int, int]:
    """(prefill nodes, decode nodes) of an SGLang disaggregated job: node 0 is the proxy.

    ``distributed.sglang_disagg.{prefill_nodes, decode_nodes}`` when both are given (they must add
    up to nnodes - 1), else madengine's split: ~40 % of the workers prefill, the rest decode.
    """
    where = "distributed.sglang_disagg"
    if nnodes < 3:
        raise MadError(f"sglang-disagg needs at least 3 nodes (1 proxy + 1 prefill + 1 decode), got {nnodes}",
                       where="distributed.nnodes", fix="set distributed.nnodes to 3 or more")
    split = distributed.get("sglang_disagg") or {}
    if not isinstance(split, Mapping):
        raise MadError(f"{where} is a {type(split).__name__}", where=where,
                       fix='write it as {"prefill_nodes": 1, "decode_nodes": 1}')
    prefill, decode = split.get("prefill_nodes"), split.get("decode_nodes")
    if prefill is None or decode is None:
        prefill = max(1, (nnodes - 1) * 2 // 5)
        return prefill, nnodes - 1 - prefill
    try:
        prefill, decode = int(prefill), int(decode)
    except (TypeError, ValueError):
        raise MadError(f"prefill_nodes {prefill!r} / decode_nodes {decode!r} are not node counts", where=where,
                       fix="give whole numbers") from None
    if prefill < 1 or decode < 1 or prefill + decode + 1 != nnodes:
        raise MadError(f"prefill_nodes {prefill} + decode_nodes {decode} + 1 proxy must equal nnodes {nnodes}, "
                       "with at least one of each", where=where,
                       fix=f"choose prefill_nodes + decode_nodes = {nnodes - 1}")
    return prefill, decode


def disagg_role(node_rank: int, prefill: int) -> str:
    """proxy (rank 0), prefill (ranks 1..prefill) or decode (the rest)."""
    return "proxy" if node_rank == 0 else "prefill" if node_rank <= prefill else "decode"


def primus_env(distributed: Mapping[str, Any], model_name: str) -> dict[str, str]:
    """PRIMUS_CONFIG_PATH, PRIMUS_CLI_EXTRA (when given) and BACKEND (given, or from a
    ``primus_pretrain/<backend>_...`` model name), from ``distributed.primus``."""
    primus = distributed.get("primus") or {}
    primus = primus if isinstance(primus, Mapping) else {}
    env = {"PRIMUS_CONFIG_PATH": str(primus.get("config_path") or DEFAULT_PRIMUS_CONFIG)}
    if str(primus.get("cli_extra") or "").strip():
        env["PRIMUS_CLI_EXTRA"] = str(primus["cli_extra"])
    backend = str(primus.get("backend") or "").strip()
    prefix = "primus_pretrain/"
    if not backend and model_name.startswith(prefix):
        backend = _PRIMUS_BACKENDS.get(model_name[len(prefix):].split("_", 1)[0].lower(), "")
    if backend:
        env["BACKEND"] = backend
    return env


def contract_env(kind: str, *, nnodes: int, nproc_per_node: int, node_rank: int = 0, master_addr: str = "",
                 master_port: int = DEFAULT_MASTER_PORT, distributed: Mapping[str, Any] | None = None,
                 model_name: str = "", node_ips: str = "") -> dict[str, str]:
    """The launcher-specific variables of madengine's contract (table above), for one node."""
    distributed = distributed or {}
    g, multi = str(nproc_per_node), nnodes > 1
    if kind == "megatron":
        return {"TENSOR_MODEL_PARALLEL_SIZE": str(nproc_per_node if multi else min(nproc_per_node, 8)),
                "PIPELINE_MODEL_PARALLEL_SIZE": str(nnodes if multi else 1), "CONTEXT_PARALLEL_SIZE": "1"}
    if kind == "torchtitan":
        env = {"TORCHTITAN_TENSOR_PARALLEL_SIZE": g, "TORCHTITAN_PIPELINE_PARALLEL_SIZE": str(nnodes if multi else 1)}
        if multi:
            env.update(TORCHTITAN_FSDP_ENABLED="1", TORCHTITAN_CONTEXT_PARALLEL_SIZE="1")
        return env
    if kind == "vllm":
        return {"VLLM_TENSOR_PARALLEL_SIZE": g, "VLLM_PIPELINE_PARALLEL_SIZE": "1",
                "VLLM_DISTRIBUTED_BACKEND": "none" if multi else "auto"}
    if kind == "sglang":
        env = {"SGLANG_TENSOR_PARALLEL_SIZE": g, "SGLANG_PIPELINE_PARALLEL_SIZE": "1"}
        if multi:
            env["NCCL_INIT_ADDR"] = f"{master_addr}:{master_port}"
        return env
    if kind == "sglang-disagg":
        return disagg_env(nnodes=nnodes, nproc_per_node=nproc_per_node, node_rank=node_rank,
                          distributed=distributed, node_ips=node_ips) if multi else {}
    if kind == "primus":
        return primus_env(distributed, model_name)
    return {}


def disagg_env(*, nnodes: int, nproc_per_node: int, node_rank: int, distributed: Mapping[str, Any],
               node_ips: str) -> dict[str, str]:
    """SGLANG_DISAGG_MODE/_PREFILL_NODES/_DECODE_NODES/_TOTAL_NODES, SGLANG_TP_SIZE, SGLANG_NODE_RANK,
    SGLANG_NODE_IPS (comma-separated, rank order) and our SGLANG_DISAGG_ROLE (proxy/prefill/decode)."""
    prefill, decode = disagg_split(nnodes, distributed)
    env = {"SGLANG_DISAGG_MODE": "enabled", "SGLANG_DISAGG_PREFILL_NODES": str(prefill),
           "SGLANG_DISAGG_DECODE_NODES": str(decode), "SGLANG_DISAGG_TOTAL_NODES": str(nnodes),
           "SGLANG_TP_SIZE": str(nproc_per_node), "SGLANG_NODE_RANK": str(node_rank),
           "SGLANG_DISAGG_ROLE": disagg_role(node_rank, prefill)}
    if node_ips:
        env["SGLANG_NODE_IPS"] = node_ips
    return env


def rendezvous_timeout(distributed: Mapping[str, Any]) -> int:
    """``distributed.rendezvous_timeout`` in seconds (default 300); MadError for a non-positive number."""
    value = distributed.get("rendezvous_timeout")
    if value in (None, ""):
        return DEFAULT_RENDEZVOUS_TIMEOUT
    try:
        seconds = int(str(value).strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise MadError(f"rendezvous_timeout {value!r} is not a number of seconds",
                       where="distributed.rendezvous_timeout",
                       fix="give the seconds a node may wait to meet its master, e.g. 300")
    return seconds


def distributed_env(launcher: Launcher, *, nnodes: int, nproc_per_node: int, node_rank: int,
                    master_addr: str, master_port: int, distributed: Mapping[str, Any] | None = None,
                    model_name: str = "", node_ips: str = "") -> dict[str, str]:
    """The variables every node's container gets (madengine's names): rendezvous, runner, contract."""
    env = dict(launcher.env)
    env.update(
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
        NNODES=str(nnodes),
        NODE_RANK=str(node_rank),
        NPROC_PER_NODE=str(nproc_per_node),
        WORLD_SIZE=str(nnodes * nproc_per_node),
        MAD_LAUNCHER_TYPE=launcher.kind or launcher.family,
        MAD_MULTI_NODE_RUNNER=runner_command(
            launcher.kind or launcher.family, nnodes=nnodes, nproc_per_node=nproc_per_node, node_rank=node_rank,
            master_addr=master_addr, master_port=master_port),
    )
    if launcher.family == "torchrun":  # torchrun reads its options from PET_<OPTION> too
        env.update(PET_NNODES=str(nnodes), PET_NPROC_PER_NODE=str(nproc_per_node), PET_NODE_RANK=str(node_rank),
                   PET_MASTER_ADDR=master_addr, PET_MASTER_PORT=str(master_port))
        if nnodes > 1:
            env["PET_RDZV_CONF"] = f"timeout={rendezvous_timeout(distributed or {})}"
    env.update(contract_env(launcher.kind or launcher.family, nnodes=nnodes, nproc_per_node=nproc_per_node,
                            node_rank=node_rank, master_addr=master_addr, master_port=master_port,
                            distributed=distributed, model_name=model_name, node_ips=node_ips))
    return env


def local_launcher_env(card_distributed: Mapping[str, Any] | None, context_distributed: Mapping[str, Any] | None,
                       *, nproc_per_node: int, model_name: str, host_launcher: str = "") -> dict[str, str]:
    """A single-node (local container) run's runner and contract variables, as madengine's local run
    sets them: launcher from the context's ``distributed``, then the card's, then ``MAD_LAUNCHER``."""
    distributed = merged_distributed(card_distributed, context_distributed)
    name = distributed.get("launcher") or host_launcher
    launcher = get_launcher(name, where="distributed.launcher" if distributed.get("launcher") else "MAD_LAUNCHER")
    if launcher.bare_metal:
        return {}
    env = {"MAD_MULTI_NODE_RUNNER": runner_command(launcher.kind, nnodes=1, nproc_per_node=nproc_per_node,
                                                   node_rank=0, master_addr="", master_port=0)}
    env.update(contract_env(launcher.kind, nnodes=1, nproc_per_node=nproc_per_node, distributed=distributed,
                            model_name=model_name))
    return env


def yield_to_env_vars(env: Mapping[str, str], launcher: Launcher, env_vars: Mapping[str, str]) -> dict[str, str]:
    """``env`` less the launcher's own defaults (``OMP_NUM_THREADS=1``, ...) that the user sets (the context's
    ``env_vars`` / ``docker_env_vars``): madengine sets no such defaults, so a copied config's value must win."""
    defaults = {name for name, _ in launcher.env}
    return {name: value for name, value in env.items() if not (name in defaults and name in env_vars)}
