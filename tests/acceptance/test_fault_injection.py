"""Fault injection: the Docker daemon dies mid-run (and is restarted); nothing is lost.

Disruptive for everyone on the machine's engine for a few seconds: the kill and restart hold
``/tmp/mad-docker-fault.lock`` so that two such tests never overlap, and the daemon is started
again at once with ``tests/infra/start-docker.sh``. The SLURM node fault lives in
``tests/slurm/test_slurm_faults.py``.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..infra.fixtures import run_infra_script
from .conftest import AMD_CPU, card, write_card_package
from .test_run_local import read_perf

pytestmark = pytest.mark.docker

FAULT_LOCK = Path("/tmp/mad-docker-fault.lock")
UNREACHABLE = "cannot reach the Docker daemon"


def _dockerd_pid() -> int:
    done = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def _kill_and_restart_dockerd() -> None:
    with FAULT_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            os.kill(_dockerd_pid(), signal.SIGKILL)
            time.sleep(3)
        finally:
            run_infra_script("start-docker.sh", timeout=60)


def test_daemon_killed_mid_run_loses_no_result(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [
        card("before_fault", "scripts/ok.sh", tags=["f"]),
        card("during_fault", "scripts/slow.sh", tags=["f"]),
        card("after_fault", "scripts/ok.sh", tags=["f"])],
        {"scripts/ok.sh": "echo performance: 1 ops\n", "scripts/slow.sh": "echo started\nsleep 60\n"})
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--mad-package", str(pkg), "--mad-tags", "f", AMD_CPU,
                             "--mad-gpus", "none", "-p", "no:cacheprovider", "--junitxml", "junit.xml"],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import docker

    client = docker.from_env()
    label = {"label": "pytest-madengine.model=during_fault"}
    deadline = time.monotonic() + 90
    while not client.containers.list(filters=label) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.containers.list(filters=label), "the slow model never started"
    session = client.containers.list(filters=label)[0].labels["pytest-madengine.session"]
    _kill_and_restart_dockerd()
    out, _ = proc.communicate(timeout=240)
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    rows = {row["model"]: row for row in read_perf(pytester.path / "perf.csv")}
    assert set(rows) == {"before_fault", "during_fault", "after_fault"}, out
    assert rows["before_fault"]["status"] == "SUCCESS"
    assert rows["during_fault"]["status"] == "FAILURE"
    assert UNREACHABLE in out
    assert rows["after_fault"]["status"] in ("SUCCESS", "FAILURE")  # daemon back in time, or said clearly
    client = docker.from_env()
    deadline = time.monotonic() + 30
    while client.containers.list(all=True, filters={"label": f"pytest-madengine.session={session}"}) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    leftovers = client.containers.list(all=True, filters={"label": f"pytest-madengine.session={session}"})
    if leftovers:  # the engine restored them after the session ended: the next session's sweep takes them
        second = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "before_fault", AMD_CPU,
                                               "--mad-gpus", "none", "-p", "no:cacheprovider")
        assert second.ret == 0
        leftovers = client.containers.list(all=True, filters={"label": f"pytest-madengine.session={session}"})
    assert leftovers == []
