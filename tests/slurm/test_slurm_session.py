"""`pytest --mad-target slurm` end to end: real pytest sessions on a tiny package, real cluster."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.junit_records import assert_valid_junit, model_properties

from .test_slurm_cluster import _wait_for_running, squeue_ids

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

CARDS = [
    {"name": "single", "scripts": "scripts/m/ok.sh", "tags": ["pyt"]},
    {"name": "pair", "scripts": "scripts/m/ok.sh", "tags": ["pyt"],
     "distributed": {"launcher": "torchrun", "nnodes": 2}},
    {"name": "broken", "scripts": "scripts/m/fail.sh", "tags": ["bad"]},
    {"name": "sleepy_session", "scripts": "scripts/m/sleep.sh", "tags": ["sleepy"]},
    {"name": "meet_a", "scripts": "scripts/m/meet.sh", "tags": ["meet"], "args": "a b"},
    {"name": "meet_b", "scripts": "scripts/m/meet.sh", "tags": ["meet"], "args": "b a"},
]
# Each model waits for the other to have started: they pass only when both jobs run at once.
MEET = """mkdir -p /myworkspace/rendezvous && touch "/myworkspace/rendezvous/$1"
i=0
while [ ! -e "/myworkspace/rendezvous/$2" ] && [ "$i" -lt 90 ]; do sleep 1; i=$((i+1)); done
[ -e "/myworkspace/rendezvous/$2" ] || { echo "never met $2: the jobs ran one at a time"; exit 3; }
echo "performance: 1 meetings"
"""


def write_package(root: Path) -> Path:
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    cards = [{"dockerfile": "docker/bb", "n_gpus": "1", "args": "", "owner": "t",
              "training_precision": "", **card} for card in CARDS]
    (root / "models.json").write_text(json.dumps(cards))
    scripts = root / "scripts" / "m"
    (scripts / "ok.sh").write_text('echo "rank=$NODE_RANK of $NNODES"\necho "performance: 42.5 samples_per_second"\n')
    (scripts / "fail.sh").write_text('echo "boom: broken model"\nexit 5\n')
    (scripts / "sleep.sh").write_text("sleep 300\n")
    (scripts / "meet.sh").write_text(MEET)
    return root


def run_session(pytester: pytest.Pytester, tags: str, *extra: str) -> pytest.RunResult:
    write_package(pytester.path)
    return pytester.runpytest("--mad-tags", tags, "--mad-target", "slurm", "--mad-gpus", "none",
                              "--mad-slurm-jobs", "2", "--junitxml=junit.xml", "-p", "no:cacheprovider", *extra)


def perf_rows(pytester: pytest.Pytester) -> dict[str, str]:
    rows = (pytester.path / "perf.csv").read_text().splitlines()
    return {row.split(",")[0]: row for row in rows[1:]}


def test_session_runs_models_as_slurm_jobs(pytester: pytest.Pytester, slurm_cluster, busybox_image):
    result = run_session(pytester, "pyt")
    result.assert_outcomes(passed=2)
    by_model = perf_rows(pytester)
    assert set(by_model) == {"single", "pair"}
    assert ",slurm,torchrun," in by_model["pair"] and by_model["pair"].split(",")[2] == "2"  # nnodes
    assert ",42.5,samples_per_second," in by_model["single"] and "SUCCESS" in by_model["single"]
    junit = pytester.path / "junit.xml"
    assert_valid_junit(junit)
    pair = model_properties(junit, "pair")
    # both nodes print 42.5 samples_per_second: a throughput, summed over the nodes as madengine does
    assert pair["performance"] == "85"
    assert (pair["aggregation.method"], pair["aggregation.per_node"]) == ("sum", "42.5,42.5")
    # each node's record, merged from the nodes' JUnit files into a testcase-free suite per SLURM job
    root = ET.parse(junit).getroot()
    assert sorted(case.get("name") for case in root.iter("testcase")) == ["pair", "single"]
    nodes = {prop.get("name"): prop.get("value") for prop in root.iter("property") if " [rank " in prop.get("name")}
    assert {nodes["pair [rank 0]::classname"], nodes["pair [rank 1]::classname"]} == {"slurm.node1", "slurm.node2"}
    assert nodes["single [rank 0]::status"] == "passed"
    assert len([suite for suite in root.iter("testsuite") if suite.get("name", "").startswith("slurm job")]) == 2


def test_models_of_a_session_without_n_run_as_concurrent_jobs(pytester: pytest.Pytester, slurm_cluster,
                                                              busybox_image):
    result = run_session(pytester, "meet")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*2 workers*"])  # pytest-xdist started for the jobs
    assert all(",SUCCESS," in row for row in perf_rows(pytester).values())


def test_one_job_at_a_time_when_asked(pytester: pytest.Pytester, slurm_cluster, busybox_image):
    result = run_session(pytester, "bad", "-n", "0")
    result.assert_outcomes(failed=1)
    assert "workers" not in result.stdout.str()


def test_session_fails_a_failing_model_with_its_log(pytester: pytest.Pytester, slurm_cluster, busybox_image):
    result = run_session(pytester, "bad")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*boom: broken model*"])
    assert "FAILURE" in perf_rows(pytester)["broken"]
    junit = pytester.path / "junit.xml"
    assert_valid_junit(junit)  # the job's node record included
    suites = list(ET.parse(junit).getroot().iter("testsuite"))
    assert sum(int(suite.get("tests", "0")) for suite in suites) == 1  # the failed model counts once
    assert sum(int(suite.get("failures", "0")) + int(suite.get("errors", "0")) for suite in suites) == 1
    assert any(suite.get("name", "").startswith("slurm job") for suite in suites)


def test_ctrl_c_of_pytest_cancels_its_job(tmp_path: Path, slurm_cluster, busybox_image):
    package = write_package(tmp_path / "pkg")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mad-tags", "sleepy",
                             "--mad-target", "slurm", "--mad-gpus", "none", "--mad-slurm-jobs", "2"], cwd=package,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    job_id = _wait_for_running("mad-sleepy_session", timeout=90)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=90)[0].decode()
    deadline = time.monotonic() + 30
    while job_id in squeue_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_id not in squeue_ids(), output
    assert proc.returncode == 2, output  # pytest: interrupted
