"""Turn a followed Job (pod states, pod logs, results blocks) into one RunOutcome.

The run's log is the pod's log (one pod) or one section per rank (an Indexed Job), like the
SLURM target's; each rank's ``multiple_results`` CSV, read back from its log, becomes a result
file (the one with the most performance rows first); each rank becomes a JUnit testcase of its
own, merged per Job (``results.sinks.junit``) into the session's JUnit. The files each pod sent back
in its log (``payload.CARRY_VAR``) are unpacked into a model dir here: rank 0's system environment
capture becomes ``<model>_env.csv`` (as on SLURM), every rank's tool outputs go to the log dir
(``<model>.run.tools/``, ``<model>.run.rank-<i>.tools/`` for the other ranks).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import MadError
from ...results.performance import best_first
from ...workload.gang import RankEnd, first_failure, gang_reason
from ...workload.run import RunOutcome, RunRequest
from ...workload.sysenv import write_env_csv
from ...workload.tools import keep_outputs
from .follow import JobFollower, PodState, Verdict

NODE_LOG_LINES = 40  # of each pod's log in its JUnit testcase


@dataclass(frozen=True)
class JobRecord:
    """The names of one run's objects, for reports and cleanup."""

    namespace: str
    name: str
    launcher: str
    nnodes: int
    timeout: int | None


def _last_pod_per_rank(follower: JobFollower) -> dict[int, PodState]:
    ranks: dict[int, PodState] = {}
    for pod in follower.pods.values():  # watch order: a retried rank's later pod wins
        if pod.name in follower.logs or pod.index not in ranks:
            ranks[pod.index] = pod
    return dict(sorted(ranks.items()))


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _write_log(request: RunRequest, sections: list[tuple[str, str]], error: str) -> None:
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(request.log_path, "w") as handle:
        for title, text in sections:
            if title:
                handle.write(f"===== {title} =====\n")
            handle.write(text)
            if text and not text.endswith("\n"):
                handle.write("\n")
        if error:
            handle.write(f"[pytest-madengine] {error}\n")


def _rank_end(follower: JobFollower, rank: int, pod: PodState) -> RankEnd:
    log = _read(follower.log_path(pod)) if pod.name in follower.logs else ""
    return RankEnd(rank=rank, node=pod.node, exit_code=pod.exit_code, stopped=pod.deleted, finished=pod.finished_at,
                   log=log)


def _result_files(follower: JobFollower, ranks: dict[int, PodState], request: RunRequest) -> list[Path]:
    name = Path(request.card.multiple_results).name if request.card.multiple_results else ""
    files = []
    for rank, pod in ranks.items():
        pump = follower.logs.get(pod.name)
        if name and pump is not None and pump.filter.found:
            path = request.work_dir / (name if len(ranks) == 1 else f"rank-{rank}-{name}")
            path.write_text(pump.filter.csv_text)
            files.append(path)
    return best_first(files)


def _carried(follower: JobFollower, ranks: dict[int, PodState], request: RunRequest, outputs: list[str],
             secret_values: list[str]) -> tuple[dict[str, object], list[str]]:
    """(outcome extras ``tool_outputs`` / ``env_csv``, problems to log) from the pods' files blocks."""
    extra: dict[str, object] = {}
    kept: list[str] = []
    problems = []
    for rank, pod in ranks.items():
        pump = follower.logs.get(pod.name)
        if pump is None or not pump.filter.files_found:
            continue
        model_dir = request.work_dir / ("model" if rank == 0 else f"rank-{rank}-model")
        model_dir.mkdir(parents=True, exist_ok=True)
        try:
            pump.filter.unpack_files(model_dir, where=f"pod {pod.name}")
        except MadError as exc:
            problems.append(exc.message)
            continue
        base = request.log_path.name.removesuffix(".log")
        log_path = request.log_path if rank == 0 else request.log_path.with_name(f"{base}.rank-{rank}.log")
        kept += [str(path) for path in keep_outputs(model_dir, outputs, log_path)]
        env_csv = write_env_csv(model_dir, request.log_path, secret_values) if rank == 0 else None
        if env_csv is not None:
            extra["env_csv"] = str(env_csv)
    if kept:
        extra["tool_outputs"] = kept
    return extra, problems


def _junit(job: JobRecord, ranks: dict[int, PodState], follower: JobFollower, request: RunRequest,
           seconds: float, junit_dir: Path) -> str:
    """The pods' testcases merged into ``<junit_dir>/<job>.xml`` (it must outlive the run's work dir)."""
    from ...results.sinks.junit import NodeCase, merge_junit, write_node_junit

    files = []
    for rank, pod in ranks.items():
        log = _read(follower.log_path(pod)).splitlines()
        code = pod.exit_code
        failure = "" if code == 0 else (pod.terminated_reason or pod.waiting[0] or pod.pod_reason or "not run")
        failure = failure if code in (0, None) else f"exit code {code} ({pod.terminated_reason or 'Error'})"
        path = junit_dir / f"{job.name}-{rank}.xml"
        write_node_junit(path, NodeCase(
            suite=f"k8s job {job.namespace}/{job.name}", name=f"{request.card.name} [rank {rank}]",
            classname=f"k8s.{pod.node or 'unscheduled'}", seconds=seconds, failure=failure,
            output="\n".join(log[-NODE_LOG_LINES:]),
            properties={"pod": pod.name, "node": pod.node, "rank": str(rank), "exit_code": str(code)}))
        files.append(path)
    if not files:
        return ""
    merged = junit_dir / f"{job.name}.xml"
    try:
        merge_junit(files, merged)
    except MadError:
        return ""
    return str(merged)


def gather_outcome(job: JobRecord, follower: JobFollower, verdict: Verdict, request: RunRequest,
                    *, duration: float, junit_dir: Path, kept: str = "", outputs: list[str] | None = None,
                    secret_values: list[str] | None = None) -> RunOutcome:
    """``outputs``: the tools' output globs; ``secret_values``: never written into the env capture's CSV."""
    ranks = _last_pod_per_rank(follower)
    carried, problems = _carried(follower, ranks, request, outputs or [], secret_values or [])
    sections = [("" if job.nnodes == 1 else f"pod {pod.name} (rank {rank}) on {pod.node or '?'}",
                 _read(follower.log_path(pod)) if pod.name in follower.logs else "")
                for rank, pod in ranks.items()]
    error = verdict.error
    codes = [pod.exit_code for pod in ranks.values()]
    if not error and verdict.state == "Complete" and len(ranks) < job.nnodes:
        error = f"Job {job.name} completed with {len(ranks)} of {job.nnodes} pods seen"
    ends = [_rank_end(follower, rank, pod) for rank, pod in ranks.items()]
    if not error and not verdict.timed_out and job.nnodes > 1:  # the Job controller stopped the others
        error = gang_reason(ends)
    _write_log(request, sections, "; ".join(filter(None, [error, kept, *problems])))
    first = first_failure(ends)
    failing = first.exit_code if first is not None else next((c for c in codes if c not in (0, None)), None)
    exit_code = failing if failing is not None else (0 if codes and len(codes) >= job.nnodes
                                                     and all(c == 0 for c in codes) else None)
    if exit_code is None and not error and not verdict.timed_out:
        error = f"Job {job.name} ended ({verdict.state}) without an exit code from every pod"
    skip_run = bool(getattr(request.settings, "skip_run", False)) and exit_code == 0 and not error
    return RunOutcome(
        exit_code=exit_code, log_path=request.log_path, duration=round(duration, 3), timed_out=verdict.timed_out,
        timeout=job.timeout, error=error, skipped="--mad-skip-run" if skip_run else "",  # as local and SLURM do
        result_files=_result_files(follower, ranks, request),
        node_logs=[follower.log_path(pod) for pod in ranks.values() if pod.name in follower.logs]
        if job.nnodes > 1 else [],
        extra={"job_name": job.name, "namespace": job.namespace, "job_state": verdict.state,
               "nodes": ",".join(pod.node for pod in ranks.values() if pod.node), "nnodes": job.nnodes,
               "launcher": job.launcher, "pods": [pod.name for pod in ranks.values()],
               "node_junit": _junit(job, ranks, follower, request, duration, junit_dir),
               "node_exit_codes": {pod.name: pod.exit_code for pod in ranks.values()}, **carried})
