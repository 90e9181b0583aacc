"""A real rendezvous on the Kubernetes cluster: the torchrun ranks of `tests/packages/rendezvous`, as
2-pod Indexed Jobs (one pod on each node), meet at the MASTER_ADDR/MASTER_PORT the Job gives,
all_reduce, and fail as one gang with the failing rank's reason."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

PACKAGE = Path(__file__).parents[1] / "packages" / "rendezvous"
LOADER = str(Path(__file__).resolve().parents[1] / "infra" / "load-k8s-image.sh")
INDEX = "batch.kubernetes.io/job-completion-index"
# The package's Dockerfile adds nothing to it: one 1.4 GB image to load into the nodes, not one per model.
TORCH_IMAGE = "mad-test/torch:bookworm"
# The lost rank's connect or the master's wait for it times out first: either is torch's reason.
RENDEZVOUS_TIMEOUT = re.compile(r"rank \d \(node\d\) failed first: exit code 1: .*(The client socket has timed out "
                                r"after 20s while trying to connect|Timed out after 2\d seconds waiting for clients)")


def run_session(root: Path, namespace: str, kubeconfig: Path, tags: str) -> subprocess.CompletedProcess[str]:
    shutil.copytree(PACKAGE, root)
    context = {"gpu_vendor": "NONE", "k8s": {"namespace": namespace, "image_loader": ["bash", LOADER],
                                             "termination_grace_period_seconds": 2}}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mad-tags", tags, "--mad-target", "k8s",
            f"--mad-k8s-kubeconfig={kubeconfig}", "--mad-context", json.dumps(context), "-n", "2",
            "--junitxml=junit.xml", "--mad-use-image", TORCH_IMAGE]
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=1200, check=False)


def cases(root: Path) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in ET.parse(root / "junit.xml").getroot().iter("testcase")}


def node_properties(root: Path) -> dict[str, str]:
    """The properties of the per-Job suites (``<model> [rank r]::classname`` ...): testcase-free, so a
    model counts once in the file."""
    suites = [suite for suite in ET.parse(root / "junit.xml").getroot().iter("testsuite")
              if suite.get("name", "").startswith("k8s job")]
    return {prop.get("name", ""): prop.get("value", "") for suite in suites for prop in suite.iter("property")}


def failure(case: ET.Element) -> str:
    return " ".join(item.get("message", "") for item in case.iter("failure"))


def perf_rows(root: Path) -> dict[str, str]:
    return {row.split(",")[0]: row for row in (root / "perf.csv").read_text().splitlines()[1:]}


class PodEnds:
    """Watches a namespace's pods; records when each (model, rank) was first seen ended or gone."""

    def __init__(self, api, namespace: str) -> None:
        from kubernetes import client

        self.core, self.namespace = client.CoreV1Api(api), namespace
        self.seen: dict[str, tuple[str, int]] = {}  # pod -> (model label, rank)
        self.ended: dict[tuple[str, int], tuple[float, int | None]] = {}  # -> (when, exit code or None: gone)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stop.is_set():
            now, pods = time.time(), self.core.list_namespaced_pod(self.namespace).items
            names = {pod.metadata.name for pod in pods}
            for pod in pods:
                key = (pod.metadata.labels.get("pytest-madengine.model", ""),
                       int((pod.metadata.annotations or {}).get(INDEX, "0")))
                self.seen[pod.metadata.name] = key
                for status in pod.status.container_statuses or []:
                    if status.state.terminated is not None:
                        self.ended.setdefault(key, (now, status.state.terminated.exit_code))
            for name, key in self.seen.items():
                if name not in names:
                    self.ended.setdefault(key, (now, None))
            self.stop.wait(0.3)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def api(k8s_cluster):
    with k8s_cluster.api_client() as client:
        yield client


def test_two_models_at_once_each_meet_across_two_pods_on_two_nodes(tmp_path, k8s_cluster, k8s_namespace,
                                                                   torch_image):
    root = tmp_path / "pkg"
    proc = run_session(root, k8s_namespace, k8s_cluster.kubeconfig, "rendezvous")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    rows = perf_rows(root)
    assert set(rows) == {"allreduce", "allreduce_twin"} and all(",SUCCESS," in row for row in rows.values())
    nodes = node_properties(root)
    for model in rows:
        # each rank's own record, on the node its pod ran on: one pod per node
        assert {nodes[f"{model} [rank {rank}]::classname"] for rank in (0, 1)} == {"k8s.node1", "k8s.node2"}
    logs = "".join(path.read_text(errors="replace") for path in root.rglob("*.log"))
    assert logs.count("all_reduce sum 3 is right") >= 4, output  # 2 models x 2 ranks


def test_unreachable_master_and_failing_rank_fail_as_one_with_the_failing_ranks_reason(
        tmp_path, k8s_cluster, k8s_namespace, api, torch_image):
    watcher = PodEnds(api, k8s_namespace)
    try:
        root = tmp_path / "pkg"
        proc = run_session(root, k8s_namespace, k8s_cluster.kubeconfig, "unreachable,gang")
    finally:
        watcher.close()
    output = proc.stdout + proc.stderr
    found = cases(root)
    assert RENDEZVOUS_TIMEOUT.search(failure(found["allreduce_unreachable"])), output
    gang = failure(found["allreduce_rank_fails"])
    assert "rank 1 (node" in gang and "failed first: exit code 7" in gang and "143" not in gang.split(";")[0], output
    failed_at, code = watcher.ended[("allreduce_rank_fails", 1)]
    stopped_at, _ = watcher.ended[("allreduce_rank_fails", 0)]
    assert code == 7
    # without the gang stop, rank 0 would wait at the rendezvous for 300 s
    assert stopped_at - failed_at < 15, watcher.ended
