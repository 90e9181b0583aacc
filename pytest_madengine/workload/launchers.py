"""Distributed launchers: their families, job templates, runner command lines and node env.

``MAD_MULTI_NODE_RUNNER`` is the command line a model script prefixes to its entry point
(``$MAD_MULTI_NODE_RUNNER train.py ...``); it is built here for one node from its rank and the
job's master address, so every target (SLURM, Kubernetes) sets the same variables. The torchrun
family also gets torchrun's own ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``,
``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import MadError


@dataclass(frozen=True)
class Launcher:
    name: str  # as written in a card/context ("torchrun", "megatron", ...)
    family: str  # decides the runner line and the job template
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
    "slurm_multi": (),
}
_ALIASES = {
    "": "native", "none": "native", "native": "native", "docker": "native",
    "torchrun": "torchrun", "torch.distributed.run": "torchrun", "megatron": "torchrun",
    "megatron-lm": "torchrun", "torchtitan": "torchrun", "primus": "torchrun",
    "deepspeed": "deepspeed",
    "vllm": "vllm",
    "sglang": "sglang", "sglang-disagg": "sglang", "sglang_disagg": "sglang",
    "slurm_multi": "slurm_multi", "slurm-multi": "slurm_multi",
}


def get_launcher(name: str | None, *, where: str = "distributed.launcher") -> Launcher:
    key = (name or "").strip().lower()
    if key not in _ALIASES:
        known = ", ".join(sorted(k for k in _ALIASES if k))
        raise MadError(f"unknown launcher {name!r}", where=where, fix=f"use one of {known}")
    family = _ALIASES[key]
    return Launcher(name=key or "native", family=family, env=_FAMILIES[family])


def families() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def runner_command(family: str, *, nnodes: int, nproc_per_node: int, node_rank: int,
                   master_addr: str, master_port: int) -> str:
    """The launcher command line for one node ('' for the native family: no launcher)."""
    world = nnodes * nproc_per_node
    common = {"nnodes": nnodes, "nproc": nproc_per_node, "rank": node_rank, "addr": master_addr,
                  "port": master_port, "world": world}
    lines = {
        "native": "",
        "slurm_multi": "",
        "torchrun": "torchrun --nnodes={nnodes} --nproc_per_node={nproc} --node_rank={rank} "
                    "--master_addr={addr} --master_port={port}",
        "deepspeed": "deepspeed --no_ssh --num_nodes={nnodes} --num_gpus={nproc} "
                     "--node_rank={rank} --master_addr={addr} --master_port={port}",
        "vllm": "vllm serve --distributed-executor-backend mp --tensor-parallel-size {nproc} "
                "--pipeline-parallel-size {nnodes} --nnodes {nnodes} --node-rank {rank} "
                "--master-addr {addr} --master-port {port}" + (" --headless" if node_rank else ""),
        "sglang": "python3 -m sglang.launch_server --tp-size {world} --nnodes {nnodes} "
                  "--node-rank {rank} --dist-init-addr {addr}:{port}",
    }
    quoted = {key: shlex.quote(str(value)) for key, value in common.items()}
    return lines[family].format(**quoted)


def distributed_env(launcher: Launcher, *, nnodes: int, nproc_per_node: int, node_rank: int,
                    master_addr: str, master_port: int) -> dict[str, str]:
    """The variables every node's container gets (madengine's names)."""
    env = dict(launcher.env)
    env.update(
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
        NNODES=str(nnodes),
        NODE_RANK=str(node_rank),
        NPROC_PER_NODE=str(nproc_per_node),
        WORLD_SIZE=str(nnodes * nproc_per_node),
        MAD_MULTI_NODE_RUNNER=runner_command(
            launcher.family, nnodes=nnodes, nproc_per_node=nproc_per_node, node_rank=node_rank,
            master_addr=master_addr, master_port=master_port),
    )
    if launcher.family == "torchrun":  # torchrun reads its options from PET_<OPTION> too
        env.update(PET_NNODES=str(nnodes), PET_NPROC_PER_NODE=str(nproc_per_node), PET_NODE_RANK=str(node_rank),
                   PET_MASTER_ADDR=master_addr, PET_MASTER_PORT=str(master_port))
    return env
