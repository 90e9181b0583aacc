"""madengine's own Kubernetes example config (tests/data/madengine-examples), fed to a real pytest
session on the real cluster with only what this site lacks changed; ``--mad-skip-run`` on Kubernetes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.logs import rank_sections

from .test_k8s_session import LOADER, perf_rows, session_args, wait_empty, write_package

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "madengine-examples" / "k8s-configs"
SHOW_ENV = 'env | sort\necho "performance: 4.5 samples_per_second"\n'


def site_adapted(name: str, namespace: str) -> dict:
    """The example as madengine ships it, with this test's namespace, requests the test nodes can give
    (one of node1's 8 fake GPUs per pod, the cluster's two nodes), the image loaded into the nodes
    (nothing can be pulled here) and a short grace period."""
    config = json.loads((EXAMPLES / name).read_text())
    config["k8s"].update(namespace=namespace, gpu_count=1, cpu="100m", cpu_limit="1", memory="64Mi",
                         memory_limit="256Mi", image_pull_policy="IfNotPresent", image_loader=["bash", LOADER],
                         termination_grace_period_seconds=2)
    config["distributed"]["nnodes"] = 2
    return config


def test_multi_node_basic_env_vars_reach_both_pods(pytester, k8s_cluster, k8s_namespace, busybox_image):
    config = site_adapted("basic/megatron-lm-multi-node-basic.json", k8s_namespace)
    assert config["env_vars"] == {"OMP_NUM_THREADS": "16", "NCCL_DEBUG": "INFO"}  # as madengine ships it
    (pytester.path / "config.json").write_text(json.dumps(config))
    write_package(pytester.path)
    (pytester.path / "scripts" / "m" / "ok.sh").write_text(SHOW_ENV)
    (pytester.path / "docker" / "bb.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'AMD'}\nFROM mad-test/busybox:latest\n")
    result = pytester.runpytest("-n", "0", "--mad-tags", "single", "--mad-context-file", "config.json",
                                f"--mad-k8s-kubeconfig={k8s_cluster.kubeconfig}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "'env_vars' is not acted on" not in result.stdout.str()
    sections = rank_sections((pytester.path / "mad_logs" / "single.run.log").read_text())
    assert sorted(sections) == [0, 1]
    for rank, text in sections.items():
        for name, value in config["env_vars"].items():
            assert f"\n{name}={value}\n" in text, (rank, name)  # OMP_NUM_THREADS=16, not the launcher's 1
    assert ",kubernetes,megatron," in perf_rows(pytester.path)["single"]


def test_skip_run_records_skipped_as_local_and_slurm_do(pytester, k8s_cluster, k8s_namespace, busybox_image):
    write_package(pytester.path)
    result = pytester.runpytest("-n", "0", "--mad-skip-run", *session_args(k8s_namespace, k8s_cluster.kubeconfig,
                                                                            "bad"))
    result.assert_outcomes(skipped=1)
    assert ",SKIPPED," in perf_rows(pytester.path)["broken"]  # its script (exit 5) never ran
    with k8s_cluster.api_client() as api:
        assert wait_empty(api, k8s_namespace) == []
