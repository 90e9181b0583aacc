"""A real rendezvous on the two-node SLURM cluster: torchrun ranks of `tests/packages/rendezvous`
meet at the MASTER_ADDR/MASTER_PORT the job gives, all_reduce, and fail as one gang."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.docker]

PACKAGE = Path(__file__).parents[1] / "packages" / "rendezvous"
# The nodes share this host's Docker engine: the image pytest built is already on every node.
CONTEXT = '{"slurm": {"image_distribution": "local"}}'


# The rank that gives up first is the reason: the lost one (its connect timed out), or the master (its
# wait for the lost one timed out); either way the reason is torch's, after distributed.rendezvous_timeout.
RENDEZVOUS_TIMEOUT = re.compile(r"rank \d \(node\d\) failed first: exit code 1: .*(The client socket has timed out "
                                r"after 20s while trying to connect|Timed out after 2\d seconds waiting for clients)")


def run_session(root: Path, tags: str) -> subprocess.CompletedProcess[str]:
    shutil.copytree(PACKAGE, root)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mad-tags", tags, "--mad-target", "slurm",
            "--mad-gpus", "none", "--mad-context", CONTEXT, "-n", "2", "--junitxml=junit.xml"]
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=900, check=False)


def runs(root: Path) -> dict[str, list[dict]]:
    """Each model's node results (node-<rank>.json), by model name."""
    found: dict[str, list[dict]] = {}
    for spec in root.glob(".mad_slurm/*/*/spec.json"):
        nodes = [json.loads(path.read_text()) for path in sorted(spec.parent.glob("node-*.json"))]
        found[json.loads(spec.read_text())["model"]] = nodes
    return found


def failures(root: Path) -> dict[str, str]:
    """Each failed test's JUnit failure message, by model name."""
    cases = ET.parse(root / "junit.xml").getroot().iter("testcase")
    return {case.get("name", ""): " ".join(failure.get("message", "") for failure in case.iter("failure"))
            for case in cases}


def perf_rows(root: Path) -> dict[str, str]:
    return {row.split(",")[0]: row for row in (root / "perf.csv").read_text().splitlines()[1:]}


def test_two_models_at_once_each_meet_across_two_nodes(tmp_path, slurm_cluster, torch_image):
    root = tmp_path / "pkg"
    proc = run_session(root, "rendezvous")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    rows = perf_rows(root)
    assert set(rows) == {"allreduce", "allreduce_twin"} and all(",SUCCESS," in row for row in rows.values())
    ports = set()
    for model, nodes in runs(root).items():
        assert {node["node"] for node in nodes} == {"node1", "node2"}, model
        addresses = {node["env"]["MASTER_ADDR"] for node in nodes}
        assert len(addresses) == 1 and "node1" not in addresses  # the node's NodeAddr, which resolves
        ports |= {node["env"]["MASTER_PORT"] for node in nodes}
    # one port per job: two jobs sharing the nodes (when the cluster has room for both) never clash
    assert len(ports) == 2 and all(29500 <= int(port) < 30500 for port in ports)
    for log in root.glob(".mad_slurm/*/*/node-*.log"):
        assert "all_reduce sum 3 is right" in log.read_text(), log


@pytest.fixture(scope="module")
def failing_session(tmp_path_factory, slurm_cluster, torch_image):
    root = tmp_path_factory.mktemp("gang") / "pkg"
    proc = run_session(root, "unreachable,gang")
    return root, proc.stdout + proc.stderr


def test_a_rank_that_cannot_reach_its_master_fails_after_the_rendezvous_timeout(failing_session):
    root, output = failing_session
    assert ",FAILURE," in perf_rows(root)["allreduce_unreachable"], output
    assert RENDEZVOUS_TIMEOUT.search(failures(root)["allreduce_unreachable"]), output
    rank1 = next(node for node in runs(root)["allreduce_unreachable"] if node["rank"] == 1)
    # distributed.rendezvous_timeout 20 s bounds the wait, far below the model's 300 s timeout
    assert rank1["finished"] - rank1["model_started"] < 200


def test_a_failing_rank_stops_its_gang_within_seconds_and_is_the_reason(failing_session):
    root, output = failing_session
    assert ",FAILURE," in perf_rows(root)["allreduce_rank_fails"], output
    nodes = {node["rank"]: node for node in runs(root)["allreduce_rank_fails"]}
    assert nodes[1]["exit_code"] == 7 and nodes[0].get("stopped") is True
    # without the gang stop, rank 0 would wait at the rendezvous for 300 s
    assert nodes[0]["finished"] - nodes[1]["finished"] < 15
    assert "rank 1 (node2) failed first: exit code 7; rank(s) 0 were stopped with it" \
        in failures(root)["allreduce_rank_fails"], output
