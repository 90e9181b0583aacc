"""Faults of the cluster while a model runs, on the real cluster: a result is never falsified.

kube-apiserver, or the kubelet serving the pod's log, is killed (SIGKILL, as a crash) mid-model
and started again with the project's script (tests/infra/start-k8s.sh, idempotent) within the
test: the model's row is SUCCESS with its value and its log holds every line once. A Job deleted,
a pod evicted or the namespace deleted by someone else ends the run within seconds with that
reason; requests no node can ever hold fail at once, not after ``k8s.scheduling_timeout``.

Disruptive for other users of the cluster for a few seconds (like the Docker daemon fault tests).
"""
from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .packages import write_busybox_package

from tests.infra.fixtures import run_infra_script
from tests.k8s.test_k8s_session import session_args

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
PIDS = Path("/run/mad-test-k8s")  # tests/infra/k8s-common.sh: RUN
LINES = 40
COUNT = f'i=1; while [ $i -le {LINES} ]; do echo "line $i"; i=$((i+1)); sleep 0.5; done\n' \
        'echo "performance: 42.5 samples_per_second"\n'
CARDS = [{"name": "count", "scripts": "scripts/m/count.sh", "tags": ["count"]},
         {"name": "sleeper", "scripts": "scripts/m/sleep.sh", "tags": ["sleeper"], "timeout": 600},
         {"name": "later", "scripts": "scripts/m/count.sh", "tags": ["later"]}]


def write_package(root: Path) -> Path:
    return write_busybox_package(root, CARDS, {"count.sh": COUNT, "sleep.sh": "echo sleeping; sleep 300\n"})


def start_session(package: Path, args: list[str]) -> subprocess.Popen[str]:
    """A session of this checkout's plugin in a process of its own (so the test can break things meanwhile)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", *args], cwd=package,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def running_pod(api, namespace: str, seconds: float = 120):
    from kubernetes import client

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pods = [p for p in core.list_namespaced_pod(namespace).items if p.status.phase == "Running"]
        if pods:
            return pods[0]
        time.sleep(0.3)
    raise AssertionError(f"no pod ran in {namespace} within {seconds} s")


def kill_daemon(name: str) -> None:
    """SIGKILL one daemon of the cluster by its pid file (a crash, no clean shutdown)."""
    os.kill(int((PIDS / f"{name}.pid").read_text().strip()), signal.SIGKILL)


def restart_cluster() -> None:
    """The project's own start script: it starts whatever daemon is not running (idempotent)."""
    proc = run_infra_script("start-k8s.sh", timeout=300)
    assert proc.returncode == 0, proc.stderr


def row(package: Path, model: str) -> dict[str, str]:
    with open(package / "perf.csv", newline="") as handle:
        return next(r for r in csv.DictReader(handle) if r["model"] == model)


@pytest.fixture
def api(k8s_cluster):
    with k8s_cluster.api_client() as client:
        yield client


@pytest.mark.parametrize("daemon", ["kube-apiserver", "kubelet"])
def test_control_plane_killed_mid_model_keeps_the_success_row(tmp_path, k8s_cluster, k8s_namespace, api,
                                                             busybox_image, daemon):
    package = write_package(tmp_path / "pkg")
    proc = start_session(package, session_args(k8s_namespace, k8s_cluster.kubeconfig, "count"))
    try:
        pod = running_pod(api, k8s_namespace)
        time.sleep(4)  # some lines streamed
        name = daemon if daemon == "kube-apiserver" else f"kubelet-{pod.spec.node_name}"
        kill_daemon(name)
        time.sleep(2)
    finally:
        restart_cluster()
    output = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, output
    result = row(package, "count")
    assert (result["status"], result["performance"]) == ("SUCCESS", "42.5"), output
    log = (package / "mad_logs" / "count.run.log").read_text().splitlines()
    counted = [line for line in log if line.startswith("line ")]
    assert counted == [f"line {i}" for i in range(1, LINES + 1)]  # every line, once, in order


def _session_ending_after(proc: subprocess.Popen[str], action) -> tuple[str, float]:
    action()
    started = time.monotonic()
    output = proc.communicate(timeout=300)[0]
    return output, time.monotonic() - started


def test_job_deleted_by_someone_else_fails_at_once_with_that_reason(tmp_path, k8s_cluster, k8s_namespace, api,
                                                                   busybox_image):
    from kubernetes import client

    package = write_package(tmp_path / "pkg")
    proc = start_session(package, session_args(k8s_namespace, k8s_cluster.kubeconfig, "sleeper"))
    pod = running_pod(api, k8s_namespace)
    job = pod.metadata.labels["batch.kubernetes.io/job-name"]
    output, waited = _session_ending_after(proc, lambda: client.BatchV1Api(api).delete_namespaced_job(
        job, k8s_namespace, propagation_policy="Background"))
    assert waited < 30, output  # the model's timeout is 600 s
    assert proc.returncode == 1, output
    assert f"Job {job} was deleted by someone outside this session" in output
    assert row(package, "sleeper")["status"] == "FAILURE"


def test_pod_evicted_fails_at_once_with_that_reason(tmp_path, k8s_cluster, k8s_namespace, api, busybox_image):
    from kubernetes import client

    package = write_package(tmp_path / "pkg")
    proc = start_session(package, session_args(k8s_namespace, k8s_cluster.kubeconfig, "sleeper"))
    pod = running_pod(api, k8s_namespace)
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=k8s_namespace))
    output, waited = _session_ending_after(proc, lambda: client.CoreV1Api(api).create_namespaced_pod_eviction(
        pod.metadata.name, k8s_namespace, eviction))
    assert waited < 30, output
    assert proc.returncode == 1, output
    assert f"pod {pod.metadata.name}" in output and "deleted by someone outside this session" in output
    assert "Eviction" in output  # the DisruptionTarget reason the eviction API sets
    assert row(package, "sleeper")["status"] == "FAILURE"


def test_namespace_deleted_mid_run_is_named_as_such(tmp_path, k8s_cluster, api, busybox_image):
    from kubernetes import client

    core = client.CoreV1Api(api)
    namespace = f"mad-test-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        for _ in range(100):  # the service-account controller adds "default"; pods need it
            if core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
                break
            time.sleep(0.1)
        package = write_package(tmp_path / "pkg")
        proc = start_session(package, session_args(namespace, k8s_cluster.kubeconfig, "sleeper,later"))
        running_pod(api, namespace)
        output, waited = _session_ending_after(proc, lambda: core.delete_namespace(namespace))
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(namespace)
    assert waited < 60, output
    assert f"namespace {namespace}" in output and ("is being deleted" in output or "was deleted" in output), output
    assert "Forbidden (RBAC)" not in output and "grant" not in output
    assert row(package, "sleeper")["status"] == "FAILURE"
    # the next model's objects cannot be created: the namespace is named, not RBAC
    assert row(package, "later")["status"] == "FAILURE"
    assert f"namespace {namespace} is being deleted (someone deleted it during the run)" in output \
        or f"namespace {namespace} does not exist (deleted, or never created)" in output, output


@pytest.mark.parametrize("request_", [{"cpu": "64"}, {"memory": "64Ti"}], ids=["cpu", "memory"])
def test_requests_no_node_can_hold_fail_fast(pytester, k8s_cluster, k8s_namespace, busybox_image, request_):
    write_package(pytester.path)
    started = time.monotonic()
    result = pytester.runpytest("-n", "0", *session_args(k8s_namespace, k8s_cluster.kubeconfig, "count", **request_))
    result.assert_outcomes(failed=1)
    assert time.monotonic() - started < 90  # the default k8s.scheduling_timeout is 300 s
    (name, value), = request_.items()
    result.stdout.fnmatch_lines([f"*Unschedulable*Insufficient {name}*no node can ever hold the pod's requests "
                                 f"({name} {value})*node1 lacks {name} (allocatable*"])
