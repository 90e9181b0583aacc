"""The controller's side of ``slurm.enable_node_check``: what the nodes said, whether and where to resubmit.

One ``CheckRecord`` follows a model run across its jobs: the nodes that failed their check (with
the reason), the jobs submitted, the check log. ``refusal`` says why the run cannot be resubmitted
(retries used, inside an allocation, a failing node pinned by ``nodelist``, too few nodes left in
the partition) or "" when it can; ``exclude_list`` is then the new ``--exclude`` (the user's
``exclude`` plus every failed node).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...cards import ModelCard
from .config import JobConfig
from .jobs import SlurmCli
from .nodecheck import Verdict, describe, log_section


@dataclass
class CheckRecord:
    """The node checks of one model run, job after job."""

    jobs: list[str]  # SLURM job ids, in submission order
    first_run_dir: str  # the first job's run dir name; a retry's is "<it>-retry<n>"
    user_exclude: str  # slurm.exclude as the user gave it
    failed: dict[str, str] = field(default_factory=dict)  # node → why its check failed
    healthy: list[str] = field(default_factory=list)  # the nodes whose check passed in the last job
    log: list[str] = field(default_factory=list)  # log_section per job
    log_file: str = ""  # where the collected log sections were written (beside the model's log)

    def properties(self) -> dict[str, str]:
        """JUnit properties: ``node_check.jobs``, ``.healthy``, ``.excluded``, ``.failed.<node>`` (the reason)
        and ``.log`` (the file with every node's check output)."""
        found = {"node_check.jobs": ",".join(self.jobs), "node_check.healthy": ",".join(self.healthy)}
        if self.log_file:
            found["node_check.log"] = self.log_file
        if self.failed:
            found["node_check.excluded"] = ",".join(sorted(self.failed))
            found.update({f"node_check.failed.{node}": reason for node, reason in sorted(self.failed.items())})
        return found


def start_record(job_id: str, config: JobConfig, run_dir: Path) -> CheckRecord:
    return CheckRecord(jobs=[job_id], first_run_dir=run_dir.name, user_exclude=config.exclude)


def node_settings(config: JobConfig, card: ModelCard, context: dict[str, Any]) -> dict[str, Any] | None:
    """The job spec's ``node_check``: the site command, its timeout and the GPUs a node must have.

    A node needs ``gpus_per_node`` GPUs, else the card's ``n_gpus`` (at least one); none when the
    context says ``gpu_vendor: NONE``.
    """
    if config.node_check is None:
        return None
    required = 0
    if str(context.get("gpu_vendor") or "").upper() != "NONE":
        required = config.gpus_per_node or (card.n_gpus if card.n_gpus > 0 else 1)
    return {"command": list(config.node_check.command), "timeout": config.node_check.timeout,
            "required_gpus": required}


def note_verdicts(record: CheckRecord, job_id: str, verdicts: list[Verdict]) -> list[Verdict]:
    """Keep what a job's nodes said; returns the verdicts of the nodes that failed."""
    if verdicts:
        record.log.append(log_section(job_id, verdicts))
        record.healthy = [v.node for v in verdicts if v.healthy]
    failed = [v for v in verdicts if not v.healthy]
    record.failed.update({v.node: v.reason for v in failed})
    return failed


def _exclusions(record: CheckRecord, cli: SlurmCli) -> set[str]:
    user = set(cli.hostnames(record.user_exclude)) if record.user_exclude else set()
    return user | set(record.failed)


def exclude_list(record: CheckRecord, cli: SlurmCli) -> str:
    """The resubmission's ``--exclude``: the user's ``exclude`` (expanded) and every node that failed."""
    return ",".join(sorted(_exclusions(record, cli)))


def refusal(record: CheckRecord, config: JobConfig, failed: list[Verdict], *, job_id: str, in_allocation: bool,
            cli: SlurmCli) -> str:
    """Why the run cannot be resubmitted without the failed nodes (one paragraph), or "" when it can."""
    head = f"node check failed on {describe(failed)} in SLURM job {job_id} (the check output is in the log)"
    names = {v.node for v in failed}
    retries = config.node_check.retries if config.node_check else 0
    if in_allocation:
        return (f"{head}; inside an existing allocation (SLURM_JOB_ID is set) the run cannot move to other nodes. "
                "Fix: free or repair those nodes, or submit from outside the allocation")
    if any(v.node.startswith("rank ") for v in failed):
        return (f"{head}; a node that never reported cannot be named in --exclude. "
                "Fix: look at the job output in the log; slurm.barrier_timeout bounds the wait")
    pinned = sorted(names & set(cli.hostnames(config.nodelist))) if config.nodelist else []
    if pinned:
        return (f"{head}; {', '.join(pinned)} is pinned by slurm.nodelist={config.nodelist} and cannot be excluded. "
                "Fix: take it out of slurm.nodelist (or drop nodelist) so the job can move")
    if len(record.jobs) > retries:
        return (f"{head}; node_check_retries={retries} resubmission(s) used (jobs {', '.join(record.jobs)}). "
                "Fix: free or repair the nodes, or raise slurm.node_check_retries")
    return _too_few(head, config, _exclusions(record, cli), cli)


def _too_few(head: str, config: JobConfig, excluded: set[str], cli: SlurmCli) -> str:
    available = cli.partition_nodes(config.partition)
    if available is None:
        return ""  # sinfo did not answer: let SLURM judge the resubmission
    left = sorted(set(available) - excluded)
    if len(left) >= config.nnodes:
        return ""
    where = f"partition {config.partition}" if config.partition else "the cluster"
    return (f"{head}; no healthy set of {config.nnodes} node(s) remains in {where} (excluded: "
            f"{', '.join(sorted(excluded))}; left: {', '.join(left) or 'none'}). "
            "Fix: free or repair the excluded nodes, or run on another partition")
