"""slurmctld, or the slurmd of the job's node, killed (SIGKILL, as a crash) while a model's job runs, and
started again with the project's script (``tests/infra/start-slurm.sh``, idempotent): squeue failing
meanwhile is not "the job is gone"; the model's row is SUCCESS with its value and its log is whole.

Disruptive for other users of the SLURM cluster for a few seconds.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..infra.fixtures import run_infra_script
from .test_slurm_faults import write_package

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path("/var/spool/slurmctld")  # StateSaveLocation of tests/infra/start-slurm.sh
LINES = 30
COUNT = ("touch /myworkspace/model-started\n"
         f'i=1; while [ $i -le {LINES} ]; do echo "line $i"; i=$((i+1)); sleep 0.5; done\n'
         "echo performance: 42.5 ops\n")


def _wait_launchable(node: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = subprocess.run(["srun", "-N1", "-w", node, "--immediate=20", "true"], capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError(f"SLURM node {node} does not launch steps: {done.stderr.strip()}")


def _wait_state_saved(since: float, seconds: float = 30) -> None:
    """Until slurmctld has written its job state after ``since`` (the job running). Killed before
    that, the restarted controller hands the lost jobs' ids out again, and a new job given the id of
    one still running on a node drains the node ("Duplicate jobid"): the next test's job never starts."""
    state = STATE_DIR / "job_state"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if state.exists() and state.stat().st_mtime > since:
            return
        time.sleep(0.2)
    raise AssertionError(f"slurmctld did not save {state} within {seconds} s")


@pytest.mark.parametrize("pidfile", ["/run/slurmctld.pid", "/run/slurmd-node2.pid"], ids=["slurmctld", "slurmd"])
def test_daemon_restarted_mid_job_keeps_the_success_row(pytester: pytest.Pytester, slurm_cluster,
                                                        busybox_image, pidfile: str) -> None:
    _wait_launchable("node2")  # an earlier restart's node may refuse its first launch ("launch failed requeued held")
    marker = pytester.path / "model-started"
    write_package(pytester.path, [{"name": "steady", "scripts": "scripts/count.sh", "timeout": 300,
                                   "slurm": {"nodelist": "node2"}}], {"count.sh": COUNT})
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--mad-tags", "f", "--mad-target", "slurm",
                             "--mad-gpus", "none", "-p", "no:cacheprovider", "-n", "0"], cwd=pytester.path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the model never ran"
        time.sleep(2)
        _wait_state_saved(since=marker.stat().st_mtime)
        os.kill(int(Path(pidfile).read_text().strip()), signal.SIGKILL)
        time.sleep(25)  # the session polls a controller that is not there (squeue retries ~10 s itself)
    finally:
        restarted = run_infra_script("start-slurm.sh", timeout=120)
    out, _ = proc.communicate(timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    assert proc.returncode == 0, out
    with open(pytester.path / "perf.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["model"], row["status"], row["performance"]) == ("steady", "SUCCESS", "42.5"), out
    log = (pytester.path / "mad_logs" / "steady.run.log").read_text().splitlines()
    assert [line for line in log if line.startswith("line ")] == [f"line {i}" for i in range(1, LINES + 1)]
