"""The per-node entry of a SLURM job: ``python -m pytest_madengine.targets.slurm.node SPEC``.

Runs once per node (one SLURM task per node). Reads the job spec written by SlurmTarget, makes
the image available (pull / shared tar / build) behind a barrier so no node starts its model
against a missing image, then runs the model's container with the local Docker target's code,
the distributed variables added to the context's ``docker_env_vars``. Writes
``node-<rank>.log`` and ``node-<rank>.json`` next to the spec; exits with the model's exit code.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...context import Context
from ...fileio import atomic_write_json
from ...workload.launchers import (DEFAULT_MASTER_PORT, distributed_env, get_launcher, merged_distributed,
                                  yield_to_env_vars)
from ...workload.run import RunRequest
from . import spec as specfile
from .node_image import barrier, ensure_image, report_failure
from .nodecheck import check_before_start

if TYPE_CHECKING:
    from .spec import JobSpec

# What a node's local run adds to the perf.csv row (the controller takes rank 0's).
NODE_LOG_LINES = 40  # of each node's log in its JUnit testcase
PERF_FIELDS = ("git_commit", "data_provider_type", "data_size", "data_download_duration")


def node_identity() -> tuple[int, str]:
    rank = int(os.environ.get("SLURM_NODEID") or os.environ.get("SLURM_PROCID") or 0)
    return rank, os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def node_gpus(gpus_per_node: int) -> tuple[int, ...]:
    if gpus_per_node <= 0:
        return ()
    for name in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        value = os.environ.get(name, "")
        if value and all(part.isdigit() for part in value.split(",")):
            return tuple(int(part) for part in value.split(","))
    return tuple(range(gpus_per_node))


def job_env(rank: int, nnodes: int) -> dict[str, str]:
    """madengine's SLURM job variables (``job.sh.j2``), as the model's container sees them."""
    local_rank = os.environ.get("SLURM_LOCALID") or "0"
    return {
        "MAD_DEPLOYMENT_TYPE": "slurm",
        "MAD_SLURM_JOB_ID": os.environ.get("SLURM_JOB_ID", ""),
        "MAD_NODE_RANK": str(rank),
        "MAD_TOTAL_NODES": str(nnodes),
        # madengine's per-process MIOpen cache (job.sh.j2), LOCAL_RANK left for the model script to expand
        "MIOPEN_USER_DB_PATH": f"/tmp/.miopen/node_{rank}_rank_${{LOCAL_RANK:-0}}",
        "MAD_IN_SLURM_JOB": "1",
        "MAD_COLLECT_METRICS": "true" if rank == 0 else "false",  # only the master node reports
        "RANK": str(rank),
        "LOCAL_RANK": local_rank,
        "TORCH_ELASTIC_RDZV_TIMEOUT": "3600",
    }


def node_env(spec: JobSpec, rank: int, node: str) -> dict[str, str]:
    """Rendezvous, runner and launcher contract (``launchers.distributed_env``) plus the job variables."""
    card, context = spec.card or {}, spec.context or {}
    distributed = merged_distributed(card.get("distributed"), context.get("distributed"))
    launcher = get_launcher(spec.launcher)
    port = os.environ.get("MASTER_PORT") or spec.master_port or DEFAULT_MASTER_PORT  # the job script's (per job)
    env = distributed_env(
        launcher, nnodes=spec.nnodes, nproc_per_node=spec.nproc_per_node,
        node_rank=rank, master_addr=os.environ.get("MASTER_ADDR") or node, master_port=int(port),
        distributed=distributed, model_name=str(card.get("name") or ""), node_ips=os.environ.get("SGLANG_NODE_IPS", ""))
    env["DISTRIBUTED_BACKEND"] = str(distributed.get("backend") or "nccl")  # madengine's job.sh.j2, default nccl
    user_env = {**(context.get("env_vars") or {}), **(context.get("docker_env_vars") or {})}
    env = yield_to_env_vars(env, launcher, user_env)
    env.update(job_env(rank, spec.nnodes))
    env.update(spec.job_env or {})  # slurm.network_interface, slurm.env_vars
    return env


def node_context(spec: JobSpec, env: dict[str, str]) -> Context:
    """The controller's context with this node's launcher variables; host facts detected here."""
    data = dict(spec.context)
    data["docker_env_vars"] = {**(data.get("docker_env_vars") or {}), **env}
    return Context.from_json(data)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_node(spec_path: Path) -> int:
    spec = specfile.read_spec(spec_path)
    run_dir = Path(spec.run_dir)
    rank, node = node_identity()
    result: dict[str, Any] = {"rank": rank, "node": node, "started": time.time(), "exit_code": None,
                              "timed_out": False, "error": "", "result_files": [], "model_started": None}
    log_path = run_dir / f"node-{rank}.log"
    target = None
    signal.signal(signal.SIGTERM, _terminate)
    try:
        env = node_env(spec, rank, node)
        result["env"] = env
        card = specfile.card_from_json(spec.card)
        image = specfile.image_from_json(spec.image)
        context = node_context(spec, env)
        if spec.node_check:  # before the image: a bad node must not pull or build
            verdict = check_before_start(spec, rank=rank, node=node, gpus=node_gpus(spec.gpus_per_node))
            result["node_check"] = {"healthy": verdict.healthy, "output": verdict.output}
        try:
            reference = ensure_image(spec, card, image, context, rank=rank, node=node)
        except Exception as exc:  # the other nodes must not wait for us
            report_failure(run_dir / "barriers" / "image", rank, str(exc))
            raise
        barrier(run_dir / "barriers" / "image", rank, spec.nnodes, timeout=spec.barrier_timeout)
        from ..local.target import LocalTarget

        package = Path(spec.package_root)
        target = LocalTarget(session_id=spec.session_id, package_root=package)
        request = RunRequest(
            card=card, context=context, image=_with_name(image, reference),
            gpus=node_gpus(spec.gpus_per_node),
            settings=specfile.settings_from_json(spec.settings, package),
            log_path=log_path, work_dir=run_dir / f"node-{rank}", run_id=f"{spec.run_id}-n{rank}",
            container_options=spec.container_options or {})
        result["model_started"] = time.time()
        outcome = target.run(request)
        result.update(exit_code=outcome.exit_code, timed_out=outcome.timed_out, error=outcome.error,
                      skipped=outcome.skipped, result_files=[str(p) for p in outcome.result_files],
                      perf_fields={k: outcome.extra[k] for k in PERF_FIELDS if k in outcome.extra},
                      tool_outputs=outcome.extra.get("tool_outputs") or [], env_csv=outcome.extra.get("env_csv", ""))
    except KeyboardInterrupt as exc:
        result.update(error=f"node {node} (rank {rank}) was stopped ({exc})", stopped=True)
        if target is not None:
            target.cancel_all()
    except Exception as exc:  # noqa: BLE001 -- any node failure is reported in the test, not as a traceback
        result["error"] = f"node {node} (rank {rank}): {exc}"
    result["finished"] = time.time()
    atomic_write_json(run_dir / f"node-{rank}.json", result)
    _write_junit(run_dir / f"node-{rank}.xml", spec, result, log_path)
    if result["error"] or result["exit_code"] is None:
        return 1
    return int(result["exit_code"])


def _with_name(image: Any, reference: str) -> Any:
    from dataclasses import replace

    return image if reference == image.name else replace(image, name=reference)


def _write_junit(path: Path, spec: JobSpec, result: dict[str, Any], log_path: Path) -> None:
    from ...results.sinks.junit import NodeCase, write_node_junit

    code = result["exit_code"]
    failure = result["error"] or ("" if code == 0 else f"exit code {code}")
    if result["timed_out"]:
        failure = failure or "timed out"
    log = log_path.read_text(errors="replace").splitlines() if log_path.is_file() else []
    started = result["model_started"] or result["started"]
    name = spec.card.get("name", "model") if isinstance(spec.card, dict) else "model"
    write_node_junit(path, NodeCase(
        suite=f"slurm job {os.environ.get('SLURM_JOB_ID', '?')}", name=f"{name} [rank {result['rank']}]",
        classname=f"slurm.{result['node']}", seconds=result["finished"] - started, failure=failure,
        output="\n".join(log[-NODE_LOG_LINES:]),
        properties={"node": str(result["node"]), "rank": str(result["rank"]), "exit_code": str(code)}))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pytest_madengine.targets.slurm.node SPEC.json", file=sys.stderr)
        return 2
    return run_node(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
