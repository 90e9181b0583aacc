"""The SLURM target against the real two-node cluster (node1, node2 on this host) and Docker."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import job_port, make_card, make_package, make_request, node_address

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

SHOW_ENV = ('echo "rank=$NODE_RANK master=$MASTER_ADDR port=$MASTER_PORT nnodes=$NNODES '
            'nproc=$NPROC_PER_NODE world=$WORLD_SIZE runner=$MAD_MULTI_NODE_RUNNER"\n'
            'echo "performance: 42.5 samples_per_second"\n')


@pytest.fixture
def package(tmp_path):
    return make_package(tmp_path / "pkg", {
        "env.sh": SHOW_ENV,
        "fail.sh": 'echo "starting"\necho "boom: the model broke" >&2\nexit 3\n',
        "sleep.sh": "echo sleeping\nsleep 300\n",
        "backend.sh": 'echo "backend=$DISTRIBUTED_BACKEND"\necho "performance: 1 ops"\n',
        "multi.sh": 'rows=$((NODE_RANK + 1)); echo "model,performance,metric" > out.csv\n'
                    'i=0; while [ $i -lt $rows ]; do echo "m$i,$i.5,tok/s" >> out.csv; i=$((i+1)); done\n',
    })


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=False).stdout
    return set(out.split())


def test_one_node_model_passes_with_its_performance(target, package, tmp_path):
    outcome = target.run(make_request(package, make_card("one", "env.sh"), tmp_path))
    assert outcome.exit_code == 0 and not outcome.error and not outcome.timed_out
    log = outcome.log_path.read_text()
    assert "performance: 42.5 samples_per_second" in log
    assert "rank=0 " in log and "nnodes=1" in log
    assert outcome.extra["job_state"] == "COMPLETED" and outcome.extra["nnodes"] == 1
    assert outcome.extra["job_id"] not in squeue_ids()


def test_two_node_ranks_see_their_rank_and_the_master(target, package, tmp_path):
    card = make_card("two", "env.sh", distributed={"launcher": "torchrun", "nnodes": 2, "nproc_per_node": 2})
    outcome = target.run(make_request(package, card, tmp_path))
    assert outcome.exit_code == 0, outcome.error
    assert sorted(outcome.extra["nodes"]) == ["node1", "node2"]
    assert len(outcome.node_logs) == 2
    for rank, log in enumerate(outcome.node_logs):
        text = log.read_text()
        master, port = node_address("node1"), job_port(outcome.extra["job_id"])
        assert f"rank={rank} master={master} port={port} nnodes=2 nproc=2 world=4" in text
        assert f"--node_rank={rank} --master_addr={master}" in text
        assert "performance: 42.5" in text
    # Image distribution by tar: rank 0 saved it, rank 1 loaded that very tar, both before any model ran.
    run_dir = Path(outcome.extra["run_dir"])
    images = [json.loads((run_dir / f"image-{rank}.json").read_text()) for rank in (0, 1)]
    assert [i["action"] for i in images] == ["saved", "loaded"]
    assert images[0]["tar"] == images[1]["tar"] and Path(images[0]["tar"]).is_file()
    assert images[1]["finished"] >= images[0]["finished"]
    nodes = [json.loads((run_dir / f"node-{rank}.json").read_text()) for rank in (0, 1)]
    assert min(n["model_started"] for n in nodes) >= max(i["finished"] for i in images)


def test_multi_node_results_take_the_fullest_node_file(target, package, tmp_path):
    card = make_card("multi", "multi.sh", multiple_results="out.csv", distributed={"nnodes": 2})
    outcome = target.run(make_request(package, card, tmp_path))
    assert outcome.exit_code == 0, outcome.error
    assert len(outcome.result_files) == 2
    assert outcome.result_files[0].read_text().count("tok/s") == 2  # rank 1 wrote two rows


def test_failing_model_fails_with_its_log_tail(target, package, tmp_path):
    outcome = target.run(make_request(package, make_card("bad", "fail.sh"), tmp_path))
    assert outcome.exit_code == 3 and not outcome.timed_out
    assert outcome.extra["job_state"] == "FAILED"
    assert "boom: the model broke" in outcome.log_path.read_text()


def test_timeout_cancels_the_job(target, package, tmp_path, docker_engine):
    started = time.monotonic()
    outcome = target.run(make_request(package, make_card("slow", "sleep.sh", timeout=3), tmp_path))
    assert outcome.timed_out and outcome.timeout == 3
    assert time.monotonic() - started < 60
    assert outcome.extra["job_id"] not in squeue_ids()
    assert outcome.extra["job_state"] == "CANCELLED"
    time.sleep(1)
    left = docker_engine.containers.list(all=True, filters={"label": f"pytest-madengine.session={target.session_id}"})
    assert left == []  # the node runner removed its container when SLURM stopped it


def test_jobs_of_one_session_wait_in_the_queue_together(target, package, tmp_path):
    jobs = [target.submit(make_request(package, make_card(f"c{i}", "env.sh"), tmp_path)) for i in range(2)]
    known = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(j.job_id for j in jobs), "-o", "%i"],
                           capture_output=True, text=True, check=False).stdout.split()
    assert sorted(known) == sorted(job.job_id for job in jobs)  # both submitted before either was awaited
    queued = target.poller.tracked
    assert sorted(queued) == sorted(job.job_id for job in jobs)  # one squeue call follows both
    outcomes = [target.wait(job) for job in jobs]
    assert [o.exit_code for o in outcomes] == [0, 0]
    assert target.poller.tracked == []


def test_slurm_multi_submits_the_cards_own_script(target, tmp_path):
    package = make_package(tmp_path / "pkg", {"run.slurm": (
        "#!/bin/bash\n#SBATCH --nodes=1\n"
        'echo "model=$MAD_MODEL_NAME nnodes=$NNODES"\n'
        'printf "model,performance,metric\\nbench,7.5,tok/s\\n" > "$MAD_OUTPUT_CSV"\n')})
    card = make_card("bare", "run.slurm", distributed={"launcher": "slurm_multi"})
    outcome = target.run(make_request(package, card, tmp_path))
    assert outcome.exit_code == 0, outcome.error
    assert "model=bare nnodes=1" in outcome.log_path.read_text()
    assert outcome.result_files and "bench,7.5" in outcome.result_files[0].read_text()


CTRL_C_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.slurm.helpers import make_card, make_request
from pytest_madengine.targets.slurm.target import SlurmTarget
package, shared, tmp = map(Path, sys.argv[1:4])
target = SlurmTarget(session_id="ctrlc", package_root=package, shared_dir=shared)
try:
    target.run(make_request(package, make_card("sleepy", "sleep.sh"), tmp))
finally:
    target.cancel_all()
"""


def test_ctrl_c_cancels_the_running_job(slurm_cluster, busybox_image, package, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(CTRL_C_DRIVER.format(root=str(Path(__file__).resolve().parents[2])))
    proc = subprocess.Popen([sys.executable, str(driver), str(package), str(slurm_cluster.shared_dir),
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    job_id = _wait_for_running("mad-sleepy", timeout=60)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while job_id in squeue_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_id not in squeue_ids()
    assert proc.returncode != 0


def _wait_for_running(job_name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-n", job_name, "-t", "RUNNING", "-o", "%i"],
                             capture_output=True, text=True, check=False).stdout.split()
        if out:
            return out[0]
        time.sleep(0.3)
    raise AssertionError(f"{job_name} never ran")


ALLOCATION_DRIVER = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.slurm.helpers import make_card, make_request
from pytest_madengine.targets.slurm.target import SlurmTarget
package, shared, tmp = map(Path, sys.argv[1:4])
target = SlurmTarget(session_id="alloc", package_root=package, shared_dir=shared)
card = make_card("inside", "env.sh", distributed={{"launcher": "torchrun", "nnodes": 2}})
outcome = target.run(make_request(package, card, tmp))
print(json.dumps({{"exit": outcome.exit_code, "job": outcome.extra["job_id"], "nodes": outcome.extra["nodes"],
                  "allocation": os.environ["SLURM_JOB_ID"], "log": outcome.log_path.read_text()}}))
"""


def test_inside_an_allocation_steps_run_with_srun(slurm_cluster, busybox_image, package, tmp_path):
    driver = tmp_path / "alloc.py"
    driver.write_text(ALLOCATION_DRIVER.format(root=str(Path(__file__).resolve().parents[2])))
    done = subprocess.run(["salloc", "-N", "2", "--job-name=mad-alloc-test", sys.executable, str(driver),
                           str(package), str(slurm_cluster.shared_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0
    assert report["job"].startswith(report["allocation"] + "+")  # steps of the allocation, no new job
    assert sorted(report["nodes"]) == ["node1", "node2"]
    master = node_address("node1")
    assert f"rank=1 master={master}" in report["log"] and f"rank=0 master={master}" in report["log"]


def test_distributed_backend_and_madengines_launcher_column(target, package, tmp_path):
    from pytest_madengine.results.judge import judge

    card = make_card("bk", "backend.sh", distributed={"backend": "gloo"})
    request = make_request(package, card, tmp_path)
    outcome = target.run(request)
    assert outcome.exit_code == 0, outcome.error
    assert "backend=gloo" in outcome.log_path.read_text()  # madengine: export DISTRIBUTED_BACKEND=<backend>
    result = judge(card, outcome, image=request.image, context={}, gpus=(), deployment_type="slurm",
                   launcher=str(outcome.extra.get("launcher", "")))
    assert result.rows[0]["launcher"] == "torchrun"  # no distributed.launcher: madengine's SLURM default
