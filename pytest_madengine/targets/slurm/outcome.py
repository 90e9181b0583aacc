"""Turn a finished job's run dir (node results, node logs, job output) into one RunOutcome."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...results.performance import best_first
from ...workload.gang import RankEnd, first_failure, gang_reason
from ...workload.run import RunOutcome
from .jobs import NODE_FAILURES, JobState


def _node_results(run_dir: Path, nnodes: int) -> dict[int, dict[str, Any]]:
    results = {}
    for rank in range(nnodes):
        path = run_dir / f"node-{rank}.json"
        if path.is_file():
            results[rank] = json.loads(path.read_text())
    return results


def _rank_end(run_dir: Path, rank: int, result: dict[str, Any]) -> RankEnd:
    return RankEnd(rank=rank, node=str(result.get("node") or ""), exit_code=result.get("exit_code"),
                   error=str(result.get("error") or ""), stopped=bool(result.get("stopped")),
                   finished=float(result.get("finished") or 0.0), log=_read(run_dir / f"node-{rank}.log"))


def _merged_node_junit(run_dir: Path, nnodes: int) -> str:
    """The nodes' JUnit files merged (junitparser) into the run's ``junit.xml``; '' without any."""
    from ...errors import MadError
    from ...results.sinks.junit import merge_junit

    files = [run_dir / f"node-{rank}.xml" for rank in range(nnodes) if (run_dir / f"node-{rank}.xml").is_file()]
    if not files:
        return ""
    try:
        merge_junit(files, run_dir / "junit.xml")
    except MadError:
        return ""  # a node died while writing: its JSON result and log still tell the story
    return str(run_dir / "junit.xml")


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _write_combined_log(log_path: Path, sections: list[tuple[str, str]]) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as handle:
        for title, text in sections:
            handle.write(f"===== {title} =====\n{text}")
            if text and not text.endswith("\n"):
                handle.write("\n")


def _check_log(checks: Any, log_path: Path) -> str:
    """The checks' output goes to its own file: the model's log is scanned for error patterns, and a
    failed check's output (excluded, the model then passed elsewhere) must not fail the model."""
    path = log_path.with_name(f"{log_path.name.removesuffix('.log')}.node_check.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(checks.log) or "no node reported its check\n")
    checks.log_file = str(path)
    excluded = ", ".join(sorted(checks.failed)) or "none"
    return (f"SLURM job(s) {', '.join(checks.jobs)}; healthy: {', '.join(checks.healthy) or 'none'}; "
            f"excluded: {excluded}; each node's check output: {path}\n")


def gather_outcome(job: Any, final: JobState | None, *, timed_out: bool, error: str,
                    duration: float) -> RunOutcome:
    request, config, run_dir = job.request, job.config, job.run_dir
    nnodes = config.nnodes
    bare = config.launcher.bare_metal
    results = {} if bare else _node_results(run_dir, nnodes)
    node_logs = [run_dir / f"node-{rank}.log" for rank in range(nnodes)
                 if (run_dir / f"node-{rank}.log").is_file()]
    sections = []
    for rank in range(nnodes if not bare else 0):
        node = results.get(rank, {}).get("node", f"rank {rank}")
        text = _read(run_dir / f"node-{rank}.log")
        if results.get(rank, {}).get("error"):
            text += f"\n[pytest-madengine] {results[rank]['error']}\n"
        sections.append((f"node {node} (rank {rank})", text))
    sections.append((f"SLURM job {job.job_id} output", _read(run_dir / "job.out")))
    checks = job.extra.get("node_check")  # nodecheck_retry.CheckRecord when slurm.enable_node_check
    if checks is not None:
        sections.insert(0, ("node check (slurm.enable_node_check)", _check_log(checks, request.log_path)))
    _write_combined_log(request.log_path, sections)

    job_state = final.state if final else "UNKNOWN"
    job_code = final.exit_code if final else None
    if job_code is None and (run_dir / "job.rc").is_file():
        job_code = int(_read(run_dir / "job.rc").strip() or 1)
    ends = [_rank_end(run_dir, rank, results[rank]) for rank in sorted(results)]
    first = first_failure(ends)
    exit_code = first.exit_code if first is not None else None
    if exit_code is None:
        exit_code = job_code if (bare or len(results) == nnodes) else (job_code or 1)
    problems = [error] if error else []
    if job_state in NODE_FAILURES and not error:
        problems.append(f"SLURM node failure: job {job.job_id} ended {job_state} (a node of "
                        f"{job.extra.get('nodes') or 'the job'} failed); this is a cluster fault, not a model failure")
    if not timed_out and not error:
        gang = gang_reason(ends) if nnodes > 1 else ""
        problems += [gang] if gang else [results[r]["error"] for r in sorted(results) if results[r].get("error")]
        missing = [str(r) for r in range(nnodes) if r not in results]
        if missing and not bare:
            problems.append(f"SLURM job {job.job_id} ended {job_state} and rank(s) {', '.join(missing)} "
                            "wrote no result; see the job output in the log")
    files = [Path(p) for r in sorted(results) for p in results[r].get("result_files", [])]
    files += job.extra.get("result_files", [])
    found = job.extra["result_lookup"].find(job.job_id) if job.extra.get("result_lookup") else []
    files += found  # slurm_multi: the CSV the card's script left where madengine's wrapper looks
    files = best_first([p for p in files if Path(p).is_file()])
    hostnames = [results[r].get("node", "") for r in sorted(results)]
    node_junit = _merged_node_junit(run_dir, nnodes)
    return RunOutcome(
        exit_code=exit_code, log_path=request.log_path, duration=round(duration, 3),
        timed_out=timed_out, timeout=job.timeout, error="; ".join(problems),
        skipped=str(results.get(0, {}).get("skipped") or ""),
        result_files=files, node_logs=node_logs,
        extra={"job_id": job.job_id, "job_state": job_state, "nodes": hostnames or job.extra.get("nodes", ""),
               "nnodes": nnodes, "launcher": config.launcher.name if config.launcher_given else "", "run_dir": str(run_dir),
               "result_file": str(files[0]) if files else "",
               **(results.get(0, {}).get("perf_fields") or {}),  # git_commit, data columns of rank 0
               "node_junit": node_junit, "job_results_csv": bool(found),
               "report_properties": checks.properties() if checks is not None else {},
               "tool_outputs": [path for r in sorted(results) for path in results[r].get("tool_outputs") or []],
               "env_csv": str(results.get(0, {}).get("env_csv") or ""),  # rank 0's, as for the perf row
               "node_exit_codes": {results[r].get("node", str(r)): results[r].get("exit_code")
                                   for r in sorted(results)}},
    )
