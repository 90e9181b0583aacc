"""The SLURM target: one model run = one job (sbatch), or job steps (srun) inside an allocation.

``run`` = ``submit`` + ``wait``: submit renders the launcher family's template and writes the job
spec to the shared run dir; wait follows the job with the session's shared squeue poller (scancel
on timeout / Ctrl-C) and gathers the nodes' result files into one RunOutcome (``outcome``).
Several jobs are in the queue at once because each xdist worker runs one (``--mad-slurm-jobs``).
With ``slurm.enable_node_check`` wait resubmits the run around nodes that failed their check
(``nodecheck``, ``nodecheck_retry``).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...errors import MadError, WarnOnce
from ...fileio import object_name, pid_alive
from ...workload.known_keys import MadKeyWarning
from ...workload.run import RunOutcome, RunRequest, effective_timeout
from ...workload.tools import multi_node_context
from ..base import TargetSettings
from . import cli, nodecheck_retry
from . import spec as specfile
from .outcome import gather_outcome
from .config import JobConfig, resolve
from .jobs import HOPELESS, JobPoller, JobState, SlurmCli, job_comment, parse_job_comment
from .nodecheck import Verdict, describe, read_verdicts
from .render import ScriptInputs, render_job_script

NODE_TIMEOUT_GRACE = 120  # the node's own timeout, a safety net behind ours
RECORD_GRACE = 15  # seconds a job may still show RUNNING after its batch script wrote job.rc
CONTROLLER_GRACE = 300  # seconds slurmctld may stay silent (a restart) before a running job's state is unknown


@dataclass
class SubmittedJob:
    request: RunRequest
    config: JobConfig
    run_dir: Path
    job_id: str
    submitted: float
    timeout: int | None
    process: subprocess.Popen[bytes] | None = None  # steps inside an existing allocation
    extra: dict[str, Any] = field(default_factory=dict)


class SlurmTarget:
    """One SLURM job (or job steps inside an allocation) per model run (``targets.base.Target``)."""

    name = "slurm"
    deployment_type = "slurm"
    needs_image = True
    options = cli.OPTIONS
    queued_workers = staticmethod(cli.queued_workers)

    def __init__(self, *, session_id: str, package_root: Path, shared_dir: Path | None = None,
                 client: SlurmCli | None = None) -> None:
        self.session_id = session_id
        self.package_root = Path(package_root).resolve()
        self.shared_dir = Path(shared_dir).resolve() if shared_dir else None
        self.cli = client or SlurmCli()
        self.poller = JobPoller(self.cli)
        self._active: dict[str, SubmittedJob] = {}
        self._lock = threading.Lock()
        self._warned = WarnOnce()

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> SlurmTarget:
        return cls(session_id=settings.session_id, package_root=settings.package_root)

    def preflight(self) -> None:
        """Once per session, before any build: the SLURM client tools exist and the controller answers."""
        self.cli.ping()

    def sweep_stale(self) -> int:
        """Cancel queued or running jobs of sessions on this host whose pytest process is gone."""
        try:
            jobs = self.cli.tagged_jobs()
        except MadError:
            return 0  # no SLURM client here: each model reports that clearly when it runs
        host = socket.gethostname()
        stale = {job_id: fields["session"] for job_id, comment in jobs.items()
                 if (fields := parse_job_comment(comment)).get("host") == host
                 and fields.get("session") != self.session_id and not pid_alive(fields.get("pid", ""))}
        work_dirs = self.cli.work_dirs(list(stale))
        self.cli.scancel(list(stale))
        for job_id, session in stale.items():  # a killed session never removed its jobs' secrets
            spec_path = Path(work_dirs.get(job_id, "")) / "spec.json"
            if work_dirs.get(job_id) and specfile.spec_session(spec_path) == session:
                specfile.remove_secrets(spec_path)
        return len(stale)

    def close(self) -> None:
        self.cancel_all()  # idempotent: a session calls cancel_all before close anyway

    # --- public ------------------------------------------------------------------------
    def run(self, request: RunRequest) -> RunOutcome:
        """Submit and follow one job; a refused submission (slurmctld down, bad settings) is the
        outcome's error, in one paragraph."""
        started = time.monotonic()
        if request.adjust_options is not None:
            self._warned.warn("pytest_madengine_docker_run_options", MadKeyWarning(
                "conftest.py / plugin: hook 'pytest_madengine_docker_run_options' adjusts Docker SDK options of the "
                "local target only; it is not applied to the containers of SLURM nodes (use "
                "pytest_madengine_container_options, which reaches every node)"), stacklevel=2)
        try:
            job = self.submit(request)
        except MadError as exc:
            request.log_path.parent.mkdir(parents=True, exist_ok=True)
            request.log_path.write_text(f"[pytest-madengine] {exc.message}\n")
            return RunOutcome(exit_code=None, log_path=request.log_path, error=exc.message,
                              duration=round(time.monotonic() - started, 3),
                              timeout=effective_timeout(request.card, request.settings))
        if request.live_output is None:
            return self.wait(job)
        # --mad-live-output: the nodes write the job's output where only the job's end makes it whole
        request.live_output(f"{request.card.name}: SLURM job {job.job_id} submitted; SLURM writes its output "
                            "on the nodes, so it is shown here when the job ends")
        outcome = self.wait(job)
        with contextlib.suppress(OSError):
            for line in outcome.log_path.read_text(errors="replace").splitlines():
                request.live_output(line)
        return outcome

    def submit(self, request: RunRequest) -> SubmittedJob:
        context = request.context.to_json()
        timeout = effective_timeout(request.card, request.settings)
        config = resolve(request.card, context, timeout=timeout)
        run_dir = self._run_dir(config, request)
        run_dir.mkdir(parents=True, exist_ok=True)
        if config.launcher.bare_metal:
            from .multi import submit_card_script

            job_id, lookup = submit_card_script(self.cli, request, config, run_dir, self.package_root,
                                                context, submitted=time.time(),
                                                comment=job_comment(self.session_id, socket.gethostname(), os.getpid()))
            extra: dict[str, Any] = {"result_files": [], "result_lookup": lookup}
            process = None
        else:
            script = self._prepare(request, config, context, run_dir, timeout)
            job_id, process = self._start(script, run_dir, request)
            extra = {"result_files": []}
        if config.node_check is not None:
            extra["node_check"] = nodecheck_retry.start_record(job_id, config, run_dir)
        return self._register(SubmittedJob(request, config, run_dir, job_id, time.time(), timeout, process, extra))

    def wait(self, job: SubmittedJob) -> RunOutcome:
        """Follow the job to its end; with ``enable_node_check``, resubmit it around nodes that failed their check."""
        started = time.monotonic()
        final, timed_out, error = self._wait_job(job)
        while job.config.node_check is not None and not (timed_out or error):
            failed = nodecheck_retry.note_verdicts(job.extra["node_check"], job.job_id,
                                                   read_verdicts(job.run_dir, job.config.nnodes))
            if not failed:
                break
            retry, error = self._retry(job, failed)
            if retry is None:
                break
            job = retry
            final, timed_out, error = self._wait_job(job)
        return gather_outcome(job, final, timed_out=timed_out, error=error, duration=time.monotonic() - started)

    def _retry(self, job: SubmittedJob, failed: list[Verdict]) -> tuple[SubmittedJob | None, str]:
        """(the resubmitted job, "") or (None, why the run cannot move off the failed nodes)."""
        try:
            error = nodecheck_retry.refusal(job.extra["node_check"], job.config, failed, job_id=job.job_id,
                                            in_allocation=job.process is not None, cli=self.cli)
            return (None, error) if error else (self._resubmit(job), "")
        except MadError as exc:  # scontrol/sinfo/sbatch refused: the run fails with both reasons
            return None, f"node check failed on {describe(failed)}; resubmitting without them failed: {exc.message}"

    def _wait_job(self, job: SubmittedJob) -> tuple[JobState | None, bool, str]:
        try:
            return self._wait_steps(job) if job.process is not None else self._follow(job)
        except KeyboardInterrupt:
            self._cancel(job)
            raise
        finally:
            with self._lock:
                self._active.pop(job.job_id, None)
            self.poller.forget(job.job_id)
            specfile.remove_secrets(job.run_dir / "spec.json")

    def _register(self, job: SubmittedJob) -> SubmittedJob:
        with self._lock:
            self._active[job.job_id] = job
        if job.process is None:
            self.poller.track(job.job_id)
        return job

    def _resubmit(self, job: SubmittedJob) -> SubmittedJob:
        """The same run again in a fresh run dir, ``--exclude`` naming the nodes that failed their check."""
        record = job.extra["node_check"]
        config = replace(job.config, exclude=nodecheck_retry.exclude_list(record, self.cli))
        run_dir = job.run_dir.with_name(f"{record.first_run_dir}-retry{len(record.jobs)}")
        run_dir.mkdir(parents=True, exist_ok=True)
        script = self._prepare(job.request, config, job.request.context.to_json(), run_dir, job.timeout)
        job_id, process = self._start(script, run_dir, job.request)
        record.jobs.append(job_id)
        return self._register(SubmittedJob(job.request, config, run_dir, job_id, time.time(), job.timeout, process,
                                           {"result_files": [], "node_check": record}))

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._active.values())
        for job in jobs:
            self._cancel(job)

    # --- submission --------------------------------------------------------------------
    def _run_dir(self, config: JobConfig, request: RunRequest) -> Path:
        base = self.shared_dir or (Path(config.shared_dir) if config.shared_dir else None) \
            or self.package_root / ".mad_slurm"
        return Path(base).resolve() / self.session_id / object_name(request.run_id)

    def _prepare(self, request: RunRequest, config: JobConfig, context: dict[str, Any],
                 run_dir: Path, timeout: int | None) -> Path:
        context = multi_node_context(context, config.nnodes)  # madengine's multi-node profiling rule
        spec_path = run_dir / "spec.json"
        node_timeout = timeout + NODE_TIMEOUT_GRACE if timeout else None
        specfile.write_spec(spec_path, specfile.JobSpec(
            session_id=self.session_id, run_id=object_name(request.run_id), model=request.card.name,
            card=specfile.card_to_json(request.card), context=context, image=request.image.to_json(),
            container_options=dict(request.container_options),
            settings=specfile.settings_to_json(request.settings, node_timeout=node_timeout),
            package_root=str(self.package_root), run_dir=str(run_dir), image_cache_dir=str(run_dir.parent / "images"),
            launcher=config.launcher.name, nnodes=config.nnodes, nproc_per_node=config.nproc_per_node,
            gpus_per_node=config.gpus_per_node, master_port=config.master_port,
            image_distribution=config.image_distribution, barrier_timeout=config.barrier_timeout,
            job_env=dict(config.job_env), node_check=nodecheck_retry.node_settings(config, request.card, context)))
        inputs = ScriptInputs(
            model=request.card.name, job_name=f"mad-{object_name(request.card.name)}"[:120],
            spec_path=str(spec_path), rc_path=str(run_dir / "job.rc"),
            python=config.python or sys.executable, pythonpath=_package_parent(),
            in_allocation=bool(os.environ.get("SLURM_JOB_ID")))
        script = run_dir / "job.sh"
        script.write_text(render_job_script(config, inputs))
        return script

    def _start(self, script: Path, run_dir: Path, request: RunRequest) -> tuple[str, Any]:
        output = run_dir / "job.out"
        if os.environ.get("SLURM_JOB_ID"):  # inside an allocation: steps, not a nested job
            with open(output, "wb") as log:
                process = subprocess.Popen(["bash", str(script)], stdout=log, stderr=subprocess.STDOUT,
                                           cwd=run_dir, start_new_session=True)
            return f"{os.environ['SLURM_JOB_ID']}+{process.pid}", process
        comment = job_comment(self.session_id, socket.gethostname(), os.getpid())
        job_id = self.cli.sbatch([f"--output={output}", f"--chdir={run_dir}", f"--comment={comment}", str(script)])
        return job_id, None

    # --- following ---------------------------------------------------------------------
    def _follow(self, job: SubmittedJob) -> tuple[JobState | None, bool, str]:
        running_since: float | None = None
        recorded_since: float | None = None
        while True:
            state = self.poller.state(job.job_id)
            now = time.monotonic()
            silent = now - self.poller.unanswered_since if self.poller.unanswered_since else 0.0
            if silent > CONTROLLER_GRACE and self._completion_record(job) is None:
                return None, False, (f"slurmctld did not answer squeue for {silent:.0f} s while SLURM job "
                                     f"{job.job_id} ran; its state is unknown")
            if state is None and silent:
                self.poller.sleep()  # not known yet, the controller being away: ask again
                continue
            if state is None or state.finished:
                return self._final_state(job, state), False, ""
            recorded = self._completion_record(job)
            recorded_since = recorded_since or (now if recorded else None)
            if recorded is not None and recorded_since is not None and (
                    state.state != "RUNNING" or now - recorded_since > RECORD_GRACE):
                return recorded, False, ""  # stuck COMPLETING (a node's slurmd is gone): the job is over
            if state.state == "RUNNING" and running_since is None:
                running_since = now
                job.extra["nodes"] = state.nodes
            if state.state == "PENDING":
                error = self._pending_problem(job, state)
                if error:
                    self._cancel(job)
                    return self._final_state(job, None), False, error
            if job.timeout and running_since is not None and now - running_since > job.timeout:
                down = self.cli.down_nodes(state.nodes)
                self._cancel(job)
                if down:
                    return self._completion_record(job), False, self._node_failure(job, down)
                return self._final_state(job, None), True, ""
            self.poller.sleep()

    @staticmethod
    def _completion_record(job: SubmittedJob) -> JobState | None:
        """The job's own record of its end (``job.rc``, written by its batch script), if written."""
        try:
            text = (job.run_dir / "job.rc").read_text().strip()
        except OSError:
            return None
        code = int(text) if text.isdigit() else 1
        return JobState(job.job_id, "COMPLETED" if code == 0 else "FAILED", exit_code=code)

    @staticmethod
    def _node_failure(job: SubmittedJob, down: list[str]) -> str:
        return (f"SLURM node failure: node(s) {', '.join(down)} of job {job.job_id} stopped answering "
                f"(slurmd down) before the job ended; the job was cancelled after {job.timeout} s. This is "
                "a cluster fault, not a model failure. Fix: check the node (scontrol show node) and run again.")

    def _pending_problem(self, job: SubmittedJob, state: JobState) -> str:
        if any(state.reason.startswith(reason) for reason in HOPELESS):
            return (f"SLURM job {job.job_id} cannot start: {state.reason}. Fix: check the partition, "
                    "nodes, account and qos in the slurm settings (sinfo shows what exists).")
        waited = time.time() - job.submitted
        if waited > job.config.max_pending_seconds:
            return (f"SLURM job {job.job_id} pended {waited:.0f} s ({state.reason}), over "
                    f"slurm.max_pending_seconds={job.config.max_pending_seconds}; cancelled.")
        return ""

    def _final_state(self, job: SubmittedJob, last: JobState | None) -> JobState | None:
        """Wait until the job has left squeue; then its final state from scontrol."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = self.cli.squeue([job.job_id])
            state = None if states is None else states.get(job.job_id)
            if states is not None and (state is None or state.finished):
                break
            time.sleep(0.5)
        return self.cli.show_job(job.job_id) or self._completion_record(job) or last

    def _wait_steps(self, job: SubmittedJob) -> tuple[JobState | None, bool, str]:
        assert job.process is not None
        try:
            code = job.process.wait(timeout=job.timeout)
        except subprocess.TimeoutExpired:
            self._cancel(job)
            return JobState(job.job_id, "TIMEOUT"), True, ""
        return JobState(job.job_id, "COMPLETED" if code == 0 else "FAILED", exit_code=code), False, ""

    def _cancel(self, job: SubmittedJob) -> None:
        if job.process is not None:
            _stop_process_group(job.process)
        else:
            self.cli.scancel([job.job_id])


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _package_parent() -> str:
    """Where this pytest_madengine comes from, so the nodes import the same code."""
    import pytest_madengine

    return str(Path(pytest_madengine.__file__).resolve().parent.parent)
