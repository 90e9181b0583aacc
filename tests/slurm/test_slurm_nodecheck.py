"""slurm.enable_node_check on the real two-node cluster: a node that fails its check is excluded and the job
resubmitted; with no healthy set of nodes left the model fails clearly, naming the nodes and the check output."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine.context import build_context
from pytest_madengine.results.judge import judge

from .helpers import make_card, make_package, make_request

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

# A stand-in for a GPU check: the first node it runs on reports a busy GPU, every other node passes.
# (Which node SLURM picks first depends on the other jobs on the shared cluster, so the marker decides.)
FIRST_NODE_BAD = """marker="$1"
[ -f "$marker" ] || echo "$SLURMD_NODENAME" > "$marker"
if [ "$(cat "$marker")" = "$SLURMD_NODENAME" ]; then
    echo "amd-smi process: GPU 0 held by pid 4242 (stale vllm)"
    echo "GPU 0 is busy: pid 4242 (vllm, 61.0 GiB)"
    exit 1
fi
echo "GPUs idle on $SLURMD_NODENAME"
"""
ALWAYS_BAD = ["sh", "-c", 'echo "GPU 0 is busy: pid 7 (stale ray::RayWorkerWrapper)"; exit 1']


def _judged(request, outcome):
    return judge(request.card, outcome, image=None, context=request.context, gpus=(), deployment_type="slurm")


def test_a_node_failing_its_check_is_excluded_and_the_model_passes_on_the_other(target, tmp_path, slurm_cluster):
    package = make_package(tmp_path / "pkg", {"run.sh": 'echo "performance: 5 samples_per_second"\n',
                                              "check.sh": FIRST_NODE_BAD})
    marker = tmp_path / "first-node"
    card = make_card("checked", "run.sh")
    context = {"gpu_vendor": "NONE", "slurm": {"enable_node_check": True, "node_check_command": [
        "sh", str(package / "scripts" / "m" / "check.sh"), str(marker)]}}
    request = make_request(package, card, tmp_path, context=context)
    outcome = target.run(request)
    assert outcome.exit_code == 0, outcome.error
    bad = marker.read_text().strip()
    [good] = [node for node in slurm_cluster.nodes if node != bad]
    assert outcome.extra["nodes"] == [good]
    properties = outcome.extra["report_properties"]
    jobs = properties.pop("node_check.jobs").split(",")
    check_log = Path(properties.pop("node_check.log"))
    assert len(jobs) == 2
    assert properties == {"node_check.healthy": good, "node_check.excluded": bad,
                          f"node_check.failed.{bad}": "node_check_command exited with 1: GPU 0 is busy: pid 4242 "
                                                      "(vllm, 61.0 GiB)"}
    assert f"healthy: {good}; excluded: {bad}; each node's check output: {check_log}" in outcome.log_path.read_text()
    details = check_log.read_text()
    assert f"SLURM job {jobs[0]}: {bad} (rank 0) FAILED: node_check_command exited with 1" in details
    assert "amd-smi process: GPU 0 held by pid 4242" in details and f"{jobs[1]}: {good} (rank 0) healthy" in details
    result = _judged(request, outcome)
    assert (result.status, result.performance) == ("SUCCESS", "5"), result.reason
    assert result.properties["node_check.excluded"] == bad


def test_no_healthy_set_of_nodes_fails_the_model_clearly(target, tmp_path):
    package = make_package(tmp_path / "pkg", {"run.sh": 'echo "performance: 5 samples_per_second"\n'})
    card = make_card("allbad", "run.sh", distributed={"launcher": "torchrun", "nnodes": 2})
    context = {"gpu_vendor": "NONE", "slurm": {"enable_node_check": True, "node_check_command": ALWAYS_BAD}}
    request = make_request(package, card, tmp_path, context=context)
    outcome = target.run(request)
    result = _judged(request, outcome)
    assert (result.status, result.phase) == ("FAILURE", "run")
    reason = "node_check_command exited with 1: GPU 0 is busy: pid 7 (stale ray::RayWorkerWrapper)"
    assert f"node1 ({reason}), node2 ({reason})" in result.reason
    assert "no healthy set of 2 node(s) remains" in result.reason and "Fix:" in result.reason
    assert "," not in result.properties["node_check.jobs"]  # nothing left to resubmit to
    assert "performance: 5" not in outcome.log_path.read_text()  # no model started


def test_the_built_in_check_finds_no_gpu_on_any_node(target, tmp_path):
    from tests.docker.test_container_env import MI300X

    package = make_package(tmp_path / "pkg", {"run.sh": 'echo "performance: 5 samples_per_second"\n'})
    card = make_card("nogpu", "run.sh")
    context = build_context(context_text="{'gpu_vendor': 'AMD', 'slurm': {'enable_node_check': True}}",
                            host=MI300X).to_json()
    outcome = target.run(make_request(package, card, tmp_path, context=context))
    assert "0 GPU(s) found, 1 needed (no answer from amd-smi, rocm-smi or nvidia-smi)" in outcome.error
    assert "no healthy set of 1 node(s) remains" in outcome.error
    properties = outcome.extra["report_properties"]
    assert len(properties["node_check.jobs"].split(",")) == 2  # the first node excluded, then the second
    assert properties["node_check.excluded"] == "node1,node2"


@pytest.mark.parametrize("slurm, expected", [
    ({"nodelist": "node1"}, "node1 is pinned by slurm.nodelist=node1 and cannot be excluded"),
    ({"node_check_retries": 0}, "node_check_retries=0 resubmission(s) used"),
    ({"exclude": "node2"}, "no healthy set of 1 node(s) remains in the cluster (excluded: node1, node2; left: none)"),
])
def test_when_the_job_cannot_move_the_reason_says_why(target, tmp_path, slurm, expected):
    package = make_package(tmp_path / "pkg", {"run.sh": 'echo "performance: 5 samples_per_second"\n'})
    context = {"gpu_vendor": "NONE", "slurm": {"enable_node_check": True, "node_check_command": ALWAYS_BAD, **slurm}}
    outcome = target.run(make_request(package, make_card("stuck", "run.sh"), tmp_path, context=context))
    assert expected in outcome.error and "GPU 0 is busy: pid 7" in outcome.error
