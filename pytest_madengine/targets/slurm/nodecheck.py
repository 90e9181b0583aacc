"""The node health check of ``slurm.enable_node_check``, on the nodes and for the controller.

On each node, before the image is made available, ``check_before_start`` runs the check: the
site's ``node_check_command`` (exit 0 = healthy, its output is the reason otherwise), or the
built-in one (``host.health.check_gpus``: the GPUs the job needs are present and no process holds
them). Every node writes ``node-check/rank-<r>.json`` (a ``Verdict``) to the shared run dir and
waits for the others; if any node failed, every node stops before its model starts and the job
ends. The controller then reads the verdicts (``read_verdicts``), excludes the failing nodes and
resubmits (``targets.slurm.target``), at most ``node_check_retries`` times. madengine checks the
nodes from the login node before submitting (``deployment/slurm_node_selector.py``); here the check
runs on the nodes SLURM actually allocated, so a node cannot change between check and start.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...fileio import atomic_write_json

if TYPE_CHECKING:
    from .spec import JobSpec

CHECK_DIR = "node-check"
OUTPUT_LINES = 20  # of a check's output kept in the verdict


class NodeCheckFailed(RuntimeError):
    """A node of this job failed its check: no node starts the model."""


@dataclass(frozen=True)
class Verdict:
    """One node's check result, as written to ``node-check/rank-<rank>.json``."""

    rank: int
    node: str
    healthy: bool
    reason: str = ""  # one line: why the node is not healthy
    output: str = ""  # the check's output (last OUTPUT_LINES lines)
    seconds: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(rank=int(data["rank"]), node=str(data["node"]), healthy=bool(data["healthy"]),
                   reason=str(data.get("reason") or ""), output=str(data.get("output") or ""),
                   seconds=float(data.get("seconds") or 0.0))


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-OUTPUT_LINES:])


def site_check(command: list[str], *, timeout: float, gpus: tuple[int, ...], required: int) -> tuple[bool, str, str]:
    """Run the site's check (argv, no shell): (healthy, reason, output)."""
    env = dict(os.environ, MAD_NODE_CHECK_GPUS=",".join(map(str, gpus)), MAD_NODE_CHECK_REQUIRED_GPUS=str(required))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False,
                              errors="replace")
    except subprocess.TimeoutExpired:
        return False, f"node_check_command did not finish within {timeout:.0f} s", ""
    except OSError as exc:
        return False, f"node_check_command {command[0]!r} could not start: {exc.strerror or exc}", ""
    output = _tail((done.stdout or "") + (done.stderr or ""))
    if done.returncode == 0:
        return True, "", output
    last = output.splitlines()[-1] if output else ""
    return False, f"node_check_command exited with {done.returncode}" + (f": {last}" if last else ""), output


def builtin_check(*, gpus: tuple[int, ...], required: int) -> tuple[bool, str, str]:
    """The vendor tools' view (``host.health``): (healthy, reason, output)."""
    from ...host import default_runner
    from ...host.health import check_gpus

    health = check_gpus(default_runner(), required=required, indices=gpus)
    return health.healthy, "; ".join(health.problems), health.report()


def check_node(settings: dict[str, Any], *, rank: int, node: str, gpus: tuple[int, ...]) -> Verdict:
    """Run this node's check as the job spec's ``node_check`` says (``command``, ``timeout``, ``required_gpus``)."""
    started = time.monotonic()
    required = int(settings.get("required_gpus") or 0)
    if settings.get("command"):
        healthy, reason, output = site_check(list(settings["command"]), timeout=float(settings["timeout"]),
                                             gpus=gpus, required=required)
    else:
        healthy, reason, output = builtin_check(gpus=gpus, required=required)
    return Verdict(rank=rank, node=node, healthy=healthy, reason=reason, output=output,
                   seconds=round(time.monotonic() - started, 3))


def meet(folder: Path, verdict: Verdict, nnodes: int, *, timeout: float) -> list[Verdict]:
    """Write this node's verdict, then wait until every rank wrote one (a rank that does not is unhealthy)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / f"rank-{verdict.rank}.json", asdict(verdict))
    deadline = time.monotonic() + timeout
    while len(verdicts := read_verdicts(folder.parent, nnodes)) < nnodes and time.monotonic() < deadline:
        time.sleep(0.2)
    seen = {v.rank for v in verdicts}
    return verdicts + [Verdict(rank=r, node=f"rank {r}", healthy=False,
                               reason=f"did not report its node check within {timeout:.0f} s")
                       for r in range(nnodes) if r not in seen]


def check_before_start(spec: JobSpec, *, rank: int, node: str, gpus: tuple[int, ...]) -> Verdict:
    """The node side: check, meet the other nodes; raise ``NodeCheckFailed`` if any node failed."""
    try:
        verdict = check_node(spec.node_check, rank=rank, node=node, gpus=gpus)
    except Exception as exc:  # noqa: BLE001 -- the other nodes wait for a verdict: always write one
        verdict = Verdict(rank=rank, node=node, healthy=False, reason=f"the check itself failed: {exc}")
    everyone = meet(Path(spec.run_dir) / CHECK_DIR, verdict, spec.nnodes, timeout=spec.barrier_timeout)
    failed = [v for v in everyone if not v.healthy]
    if failed:
        raise NodeCheckFailed(f"node check failed on {describe(failed)}; the model was not started")
    return verdict


def read_verdicts(run_dir: Path, nnodes: int) -> list[Verdict]:
    """The verdicts the nodes of a job wrote, by rank ([] when the check did not run)."""
    found = []
    for rank in range(nnodes):
        path = run_dir / CHECK_DIR / f"rank-{rank}.json"
        try:
            found.append(Verdict.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError):
            continue
    return found


def describe(failed: list[Verdict]) -> str:
    """ "node1 (GPU 0 is busy: pid 4242 (python3)), node2 (...)" """
    return ", ".join(f"{v.node} ({v.reason or 'unhealthy'})" for v in failed)


def log_section(job_id: str, verdicts: list[Verdict]) -> str:
    """What one job's check said, node by node, for the run's combined log."""
    lines = []
    for v in verdicts:
        lines.append(f"SLURM job {job_id}: {v.node} (rank {v.rank}) {'healthy' if v.healthy else 'FAILED'}"
                     + (f": {v.reason}" if v.reason else "") + f" [{v.seconds:.1f} s]")
        lines += [f"    {line}" for line in v.output.splitlines()]
    return "\n".join(lines) + "\n"
