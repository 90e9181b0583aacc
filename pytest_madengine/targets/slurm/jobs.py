"""The SLURM command line (sbatch, squeue, scontrol, scancel) as argv calls, and one shared poller.

No sacct: accounting is often off. A job's live state comes from one ``squeue`` call for all the
session's jobs; once it leaves squeue, ``scontrol show job`` gives its final state while the
controller still remembers it (MinJobAge), and the job's own exit file after that.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...errors import MadError
from ...workload.secrets import without_secrets

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
            "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
# Pending reasons that will not clear by waiting: cancel at once and say why.
HOPELESS = ("PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidQOS",
            "InvalidAccount", "QOSMaxNodePerJobLimit", "AssocMaxNodesPerJob", "PartitionDown",
            "ReqNodeNotAvail", "NodeDown")


NODE_FAILURES = ("NODE_FAIL", "BOOT_FAIL")


def _unhealthy(state: str) -> bool:
    """``sinfo %T`` states of a node that does not answer: down, fail, or ``*`` (not responding)."""
    state = state.strip().lower()
    return state.endswith("*") or state.startswith(("down", "fail", "unk"))


# Every job of a session carries ``--comment="<JOB_TAG> session=<id> host=<host> pid=<pid>"``, so
# the jobs of a session whose pytest process died can be found and cancelled by the next one.
JOB_TAG = "pytest-madengine"


def job_comment(session_id: str, host: str, pid: int) -> str:
    return f"{JOB_TAG} session={session_id} host={host} pid={pid}"


def parse_job_comment(comment: str) -> dict[str, str]:
    """``job_comment``'s fields back (``session``, ``host``, ``pid``); {} for other comments."""
    words = comment.split()
    if not words or words[0] != JOB_TAG:
        return {}
    return dict(word.split("=", 1) for word in words[1:] if "=" in word)


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, ...
    reason: str = ""
    nodes: str = ""  # compact node list (node[1-2])
    exit_code: int | None = None  # from scontrol, once finished

    @property
    def finished(self) -> bool:
        return self.state.split()[0] in TERMINAL


class SlurmCli:
    """Runs the SLURM commands; every argument is an argv item, never a shell string."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def _run(self, argv: Sequence[str], *, check: bool = True,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        if shutil.which(argv[0]) is None:
            raise MadError(f"'{argv[0]}' is not on PATH", where="--mad-target slurm",
                           fix="run pytest on a SLURM login node, or install the SLURM client tools")
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=self.timeout, check=False,
                                  env=None if env is None else dict(env))
        except subprocess.TimeoutExpired:
            raise MadError(f"{argv[0]} did not answer within {self.timeout} s (slurmctld down or overloaded)",
                           where=" ".join(argv[:2]), fix="check `scontrol ping` and the controller's log") from None
        except OSError as exc:  # found on PATH but not runnable (permissions, a broken install)
            raise MadError(f"{argv[0]} could not be run: {exc}", where=" ".join(argv[:2]),
                           fix="check the SLURM client tools' installation (`sinfo --version`)") from None
        if check and done.returncode != 0:
            raise MadError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()}",
                           where=" ".join(argv[:2]), fix="check the slurm/distributed settings and sinfo")
        return done

    def sbatch(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        """Submit; the job gets our environment (sbatch's ``--export=ALL``) without secret-looking
        variables, which would stay in the controller's spool: those reach the job by file. ``env``
        adds the job's own variables (any value: sbatch copies its environment, nothing is parsed)."""
        done = self._run(["sbatch", "--parsable", *argv], env={**without_secrets(os.environ), **(env or {})})
        return done.stdout.strip().split(";")[0]

    def squeue(self, job_ids: Sequence[str]) -> dict[str, JobState] | None:
        """The jobs still known to the controller; None when it did not answer (slurmctld restarting):
        not knowing is not "gone"."""
        if not job_ids:
            return {}
        try:
            done = self._run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids),
                              "-o", "%i|%T|%r|%N"], check=False)
        except MadError:
            return None
        if done.returncode != 0:  # "Invalid job id" once every job has left the controller
            return {} if "invalid job id" in (done.stderr + done.stdout).lower() else None
        states: dict[str, JobState] = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 4:
                reason = "" if parts[2] in ("None", "(null)") else parts[2]
                states[parts[0]] = JobState(parts[0], parts[1], reason, parts[3])
        return states

    def show_job(self, job_id: str) -> JobState | None:
        done = self._run(["scontrol", "-o", "show", "job", job_id], check=False)
        if done.returncode != 0 or "JobState=" not in done.stdout:
            return None
        fields = dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)
        code, _, signal = fields.get("ExitCode", "").partition(":")
        exit_code = int(code) if code.isdigit() else None
        if exit_code == 0 and signal.isdigit() and int(signal):
            exit_code = 128 + int(signal)
        return JobState(job_id, fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""),
                        fields.get("NodeList", ""), exit_code)

    def hostnames(self, nodelist: str) -> list[str]:
        return self._run(["scontrol", "show", "hostnames", nodelist]).stdout.split()

    def partition_nodes(self, partition: str) -> list[str] | None:
        """The nodes of ``partition`` (every partition's when ""), or None when sinfo does not answer."""
        done = self._run(["sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else [])], check=False)
        return sorted(set(done.stdout.split())) if done.returncode == 0 else None

    def tagged_jobs(self) -> dict[str, str]:
        """Job id → comment of the queued and running jobs whose comment starts with ``JOB_TAG``."""
        done = self._run(["squeue", "-h", "-o", "%i|%k"], check=False)
        if done.returncode != 0:
            return {}
        jobs = (line.strip().split("|", 1) for line in done.stdout.splitlines() if "|" in line)
        return {job_id: comment for job_id, comment in jobs if comment.startswith(JOB_TAG)}

    def work_dirs(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Job id → working directory (``--chdir``) of those of ``job_ids`` still queued or running."""
        if not job_ids:
            return {}
        done = self._run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%Z"], check=False)
        pairs = (line.strip().split("|", 1) for line in done.stdout.splitlines() if "|" in line)
        return {job_id: work_dir for job_id, work_dir in pairs}

    def down_nodes(self, nodes: str) -> list[str]:
        """Which of ``nodes`` (a SLURM node list, e.g. ``node[1-2]``) are down or not responding."""
        if not nodes:
            return []
        done = self._run(["sinfo", "-h", "-N", "-n", nodes, "-o", "%N|%T"], check=False)
        return sorted({line.split("|")[0] for line in done.stdout.splitlines()
                       if "|" in line and _unhealthy(line.split("|", 1)[1])})

    def ping(self) -> None:
        """The session's preflight: ``sbatch`` and ``squeue`` are on PATH and the controller answers
        ``scontrol ping``. Raises one MadError naming the controller and the fix."""
        for command in ("sbatch", "squeue", "scontrol"):
            if shutil.which(command) is None:
                raise MadError(f"SLURM: '{command}' is not on PATH", where="--mad-target slurm",
                               fix="run pytest on a SLURM login node, or install the SLURM client tools "
                               "(slurm-client) and their slurm.conf")
        done = self._run(["scontrol", "ping"], check=False)
        lines = (done.stdout or done.stderr).splitlines()  # less the "** RESTORE SLURMCTLD ... **" banner
        answer = " ".join(line.strip() for line in lines if line.strip(" *") and "RESTORE SLURMCTLD" not in line)
        if done.returncode != 0 or " is UP" not in answer:
            raise MadError(f"SLURM: the controller does not answer ({answer or 'no output'})",
                           where="--mad-target slurm (scontrol ping)",
                           fix="start slurmctld or check SlurmctldHost in slurm.conf (SLURM_CONF) and that "
                           "munge runs on this host")

    def scancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self._run(["scancel", *job_ids], check=False)


class JobPoller:
    """All of a session's jobs in one squeue call per interval; backs off while nothing changes."""

    def __init__(self, cli: SlurmCli, *, first: float = 0.5, longest: float = 5.0) -> None:
        self.cli = cli
        self.first, self.longest = first, longest
        self.interval = first
        self._tracked: set[str] = set()
        self._states: dict[str, JobState] = {}
        self._refreshed = 0.0
        self.unanswered_since = 0.0  # monotonic time squeue stopped answering (0: it answers)
        self._lock = threading.Lock()

    def track(self, job_id: str) -> None:
        with self._lock:
            self._tracked.add(job_id)
            self.interval = self.first
            self._refreshed = 0.0

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._tracked.discard(job_id)
            self._states.pop(job_id, None)

    @property
    def tracked(self) -> list[str]:
        return sorted(self._tracked)

    def state(self, job_id: str) -> JobState | None:
        """The job's last seen state (None: not in squeue), refreshed when the interval is due."""
        with self._lock:
            if time.monotonic() - self._refreshed >= self.interval:
                self._refresh()
            return self._states.get(job_id)

    def _refresh(self) -> None:
        states = self.cli.squeue(sorted(self._tracked))
        if states is None:  # the controller did not answer: keep the last states, ask again soon
            self.unanswered_since = self.unanswered_since or time.monotonic()
            self._refreshed, self.interval = time.monotonic(), self.first
            return
        self.unanswered_since = 0.0
        changed = {k: (v.state, v.reason) for k, v in states.items()} != \
                  {k: (v.state, v.reason) for k, v in self._states.items()}
        self._states = states
        self._refreshed = time.monotonic()
        self.interval = self.first if changed else min(self.longest, self.interval * 1.6)

    def sleep(self) -> None:
        """Wait until the next refresh is due (with a little jitter so sessions spread out)."""
        due = self._refreshed + self.interval - time.monotonic()
        time.sleep(max(0.05, due) * random.uniform(0.9, 1.1))
