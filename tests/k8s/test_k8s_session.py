"""`pytest --mad-target k8s` end to end: real pytest sessions on a tiny package, the real cluster.

Each test runs in a namespace of its own (`k8s_namespace`), so "nothing left behind" means an
empty namespace. Images are built by Docker and loaded into the nodes by the target's
`k8s.image_loader` (tests/infra/load-k8s-image.sh), as a user of kind or minikube would.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.junit_records import assert_valid_junit

from .packages import write_busybox_package

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

LOADER = str(Path(__file__).resolve().parents[1] / "infra" / "load-k8s-image.sh")
CARDS = [
    {"name": "single", "scripts": "scripts/m/ok.sh", "tags": ["pyt"]},
    {"name": "broken", "scripts": "scripts/m/fail.sh", "tags": ["bad"]},
    {"name": "multi", "scripts": "scripts/m/multi.sh", "tags": ["pyt"], "multiple_results": "perf_multi.csv"},
    {"name": "pair", "scripts": "scripts/m/ranks.sh", "tags": ["pair"],
     "distributed": {"launcher": "torchrun", "nnodes": 2}},
    {"name": "sleepy", "scripts": "scripts/m/sleep.sh", "tags": ["sleepy"], "timeout": 4},
    {"name": "sleepy_pair", "scripts": "scripts/m/sleep.sh", "tags": ["sleepy_pair"],
     "distributed": {"launcher": "torchrun", "nnodes": 2}},
    *({"name": f"busy{i}", "scripts": "scripts/m/busy.sh", "tags": ["busy"]} for i in range(4)),
]
RANKS = """echo "rank=$NODE_RANK nnodes=$NNODES world=$WORLD_SIZE pet=$PET_NODE_RANK master=$MASTER_ADDR:$MASTER_PORT"
echo "runner=$MAD_MULTI_NODE_RUNNER"
i=0
until nslookup "$MASTER_ADDR" >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 60 ] && { echo "no $MASTER_ADDR"; exit 4; }; sleep 0.5; done
echo "resolved $MASTER_ADDR"
echo "performance: $((10 + NODE_RANK)) samples_per_second"
"""


def write_package(root: Path) -> Path:
    return write_busybox_package(root, CARDS, {
        "ok.sh": 'echo "hello from $(hostname)"\necho "performance: 42.5 samples_per_second"\n',
        "fail.sh": 'echo "boom: broken model"\nexit 5\n',
        "multi.sh": 'printf "model,performance,metric\\na,1.5,x\\nb,2.5,y\\n" > perf_multi.csv\n',
        "ranks.sh": RANKS, "sleep.sh": "echo sleeping; sleep 300\n", "busy.sh": 'sleep 25\necho "performance: 1 runs"\n'})


def session_args(namespace: str, kubeconfig: Path, tags: str, **k8s: object) -> list[str]:
    context = {"gpu_vendor": "NONE", "k8s": {"namespace": namespace, "image_loader": ["bash", LOADER],
                                             "termination_grace_period_seconds": 2, **k8s}}
    return ["--mad-tags", tags, "--mad-target", "k8s", f"--mad-k8s-kubeconfig={kubeconfig}",
            "--mad-context", json.dumps(context), "--junitxml=junit.xml", "-p", "no:cacheprovider"]


def perf_rows(path: Path) -> dict[str, str]:
    rows = (path / "perf.csv").read_text().splitlines()
    return {row.split(",")[0]: row for row in rows[1:]}


def leftovers(api, namespace: str) -> list[str]:
    from kubernetes import client

    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    found = [f"job/{j.metadata.name}" for j in batch.list_namespaced_job(namespace).items]
    found += [f"pod/{p.metadata.name}" for p in core.list_namespaced_pod(namespace).items]
    found += [f"configmap/{c.metadata.name}" for c in core.list_namespaced_config_map(namespace).items
              if c.metadata.name != "kube-root-ca.crt"]
    found += [f"secret/{s.metadata.name}" for s in core.list_namespaced_secret(namespace).items]
    found += [f"service/{s.metadata.name}" for s in core.list_namespaced_service(namespace).items]
    return found


def wait_empty(api, namespace: str, seconds: float = 60) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := leftovers(api, namespace)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture
def api(k8s_cluster):
    with k8s_cluster.api_client() as client:
        yield client


def test_models_pass_and_fail_with_rows_logs_and_nothing_left(pytester, k8s_cluster, k8s_namespace, api,
                                                             busybox_image):
    write_package(pytester.path)
    result = pytester.runpytest("-n", "0", *session_args(k8s_namespace, k8s_cluster.kubeconfig, "pyt,bad"))
    result.assert_outcomes(passed=2, failed=1)
    rows = perf_rows(pytester.path)
    assert ",kubernetes,native," in rows["single"] and ",42.5,samples_per_second," in rows["single"]
    assert rows["single"].endswith(rows["single"].split(",")[-1]) and ",SUCCESS," in rows["single"]
    assert ",1.5,x," in rows["multi_a"] and ",2.5,y," in rows["multi_b"]
    assert ",FAILURE," in rows["broken"]
    log = (pytester.path / "mad_logs" / "single.run.log").read_text().splitlines()
    assert log[0] == "==== pytest-madengine: system environment (lite) ===="  # the capture runs first
    assert any(line.startswith("hello from mad-single-") for line in log)  # the pod's own hostname: a real pod log
    assert (pytester.path / "mad_logs" / "single_env.csv").read_text().startswith("section,name,value")
    result.stdout.fnmatch_lines(["*broken failed (phase run)*exit code 5*", "*boom: broken model*"])
    assert "pytest-madengine results" not in (pytester.path / "mad_logs" / "multi.run.log").read_text()
    assert wait_empty(api, k8s_namespace) == []


def test_two_node_model_ranks_see_their_variables_and_both_report(pytester, k8s_cluster, k8s_namespace,
                                                                   busybox_image):
    write_package(pytester.path)
    result = pytester.runpytest("-n", "0", "--mad-live-output",
                                *session_args(k8s_namespace, k8s_cluster.kubeconfig, "pair"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["[[]rank 1[]] rank=1 nnodes=2*"])  # streamed live, rank-prefixed
    log = (pytester.path / "mad_logs" / "pair.run.log").read_text()
    for rank in (0, 1):
        assert f"rank={rank} nnodes=2 world=2 pet={rank} master=mad-pair-" in log
        assert f"--node_rank={rank} --master_addr=mad-pair-" in log
    assert log.count("resolved mad-pair-") == 2
    row = perf_rows(pytester.path)["pair"]
    assert ",kubernetes,torchrun," in row and row.split(",")[2] == "2"
    junit = pytester.path / "junit.xml"
    assert_valid_junit(junit)
    root = ET.parse(junit).getroot()
    assert [case.get("name") for case in root.iter("testcase")] == ["pair"]  # the model counts once
    jobs = [suite for suite in root.iter("testsuite") if suite.get("name", "").startswith("k8s job")]
    assert len(jobs) == 1 and jobs[0].get("tests") == "0"  # one suite per Kubernetes Job
    nodes = {prop.get("name"): prop.get("value") for prop in jobs[0].iter("property")}
    assert {nodes["pair [rank 0]::classname"], nodes["pair [rank 1]::classname"]} == {"k8s.node1", "k8s.node2"}


def test_model_past_its_timeout_is_deleted_and_fails(pytester, k8s_cluster, k8s_namespace, api, busybox_image):
    write_package(pytester.path)
    started = time.monotonic()
    result = pytester.runpytest("-n", "0", *session_args(k8s_namespace, k8s_cluster.kubeconfig, "sleepy"))
    result.assert_outcomes(failed=1)
    assert time.monotonic() - started < 120
    result.stdout.fnmatch_lines(["*sleepy failed (phase timeout)*"])
    assert wait_empty(api, k8s_namespace) == []


def test_unschedulable_model_fails_fast_with_the_schedulers_reason(pytester, k8s_cluster, k8s_namespace, api,
                                                                  busybox_image):
    write_package(pytester.path)
    started = time.monotonic()
    result = pytester.runpytest("-n", "0", *session_args(
        k8s_namespace, k8s_cluster.kubeconfig, "pyt", gpu_resource_name="amd.com/gpu", gpu_count=1000))
    result.assert_outcomes(failed=2)
    assert time.monotonic() - started < 90  # the default scheduling_timeout is 300 s
    result.stdout.fnmatch_lines(["*Unschedulable*Insufficient amd.com/gpu*no node can ever hold*amd.com/gpu 1000*"])
    assert wait_empty(api, k8s_namespace) == []


@pytest.fixture
def unloaded_image(docker_engine, busybox_image):
    """A local Docker image the cluster's nodes do not have (a fresh tag of busybox)."""
    tag = f"mad-test/k8s-unloaded:{uuid.uuid4().hex[:8]}"
    docker_engine.images.get(busybox_image).tag(tag)
    yield tag
    docker_engine.images.remove(tag)


def test_image_the_nodes_lack_fails_with_the_kubelets_reason(pytester, k8s_cluster, k8s_namespace, api,
                                                            unloaded_image):
    write_package(pytester.path)
    args = session_args(k8s_namespace, k8s_cluster.kubeconfig, "bad", image_loader=[], image_pull_policy="Never")
    result = pytester.runpytest("-n", "0", "--mad-use-image", unloaded_image, *args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*broken failed (phase run): pod mad-broken-*cannot start: ErrImageNeverPull*"])
    assert wait_empty(api, k8s_namespace) == []


def test_no_kubeconfig_is_a_usage_error(pytester, monkeypatch, tmp_path):
    write_package(pytester.path)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = pytester.runpytest_subprocess("--mad-tags", "pyt", "--mad-target", "k8s", "-n", "0",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --mad-target k8s: no Kubernetes credentials*Fix: pass --mad-k8s-kubeconfig*"])
    assert "Traceback" not in result.stderr.str()


def test_four_workers_keep_four_jobs_in_flight(pytester, k8s_cluster, k8s_namespace, api, busybox_image):
    from kubernetes import client

    write_package(pytester.path)
    batch, most, done = client.BatchV1Api(api), [0], threading.Event()

    def count() -> None:  # the test's own observer; the target itself watches
        while not done.is_set():
            jobs = batch.list_namespaced_job(k8s_namespace).items
            most[0] = max(most[0], sum(1 for j in jobs if (j.status.active or 0) > 0))
            time.sleep(0.3)

    observer = threading.Thread(target=count, daemon=True)
    observer.start()
    try:
        result = pytester.runpytest_subprocess(
            "-n", "4", *session_args(k8s_namespace, k8s_cluster.kubeconfig, "busy"), timeout=300)
    finally:
        done.set()
        observer.join()
    result.assert_outcomes(passed=4)
    assert most[0] == 4


def test_ctrl_c_leaves_no_job_pod_configmap_secret_or_service(tmp_path, k8s_cluster, k8s_namespace, api,
                                                              busybox_image):
    from kubernetes import client

    package = write_package(tmp_path / "pkg")
    args = session_args(k8s_namespace, k8s_cluster.kubeconfig, "sleepy_pair")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-n", "0", *args], cwd=package,
                            env={**__import__("os").environ, "MAD_SECRETS_TOKEN": "t0ken"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(k8s_namespace).items
        if len(pods) == 2 and all(p.status.phase == "Running" for p in pods):
            break
        time.sleep(0.5)
    kinds = {item.split("/")[0] for item in leftovers(api, k8s_namespace)}
    assert kinds == {"job", "pod", "configmap", "secret", "service"}
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 2, output  # pytest: interrupted
    assert wait_empty(api, k8s_namespace) == [], output
    assert "t0ken" not in output


CONFTEST = '''
import pytest


@pytest.fixture
def mad_result(mad_result, mad_k8s):
    job = mad_k8s.job()
    pods = mad_k8s.pods()
    with open("seen.txt", "a") as seen:
        seen.write(f"{mad_k8s.namespace} {mad_k8s.job_name} {job.status.succeeded} {len(pods)}\\n")
    return mad_result
'''


def test_mad_k8s_fixture_and_keep_alive(pytester, k8s_cluster, k8s_namespace, api, busybox_image):
    """conftest code reads the model's Job through mad_k8s; --mad-keep-alive keeps it and says how to delete it."""
    write_package(pytester.path)
    (pytester.path / "conftest.py").write_text(CONFTEST)
    result = pytester.runpytest_subprocess("-n", "0", "--mad-keep-alive",
                                           *session_args(k8s_namespace, k8s_cluster.kubeconfig, "pair"))
    result.assert_outcomes(passed=1)
    namespace, job, succeeded, pods = (pytester.path / "seen.txt").read_text().split()
    assert (namespace, succeeded, pods) == (k8s_namespace, "2", "2") and job.startswith("mad-pair-")
    result.stderr.fnmatch_lines([(f"*kept * Kubernetes objects*kubectl delete jobs,configmaps,secrets,services,"
                                  f"persistentvolumeclaims -n {k8s_namespace} -l pytest-madengine.session=*")])
    assert {item.split("/")[0] for item in leftovers(api, k8s_namespace)} == {"job", "pod", "configmap", "service"}


def token_kubeconfig(api, admin_kubeconfig: Path, namespace: str, path: Path) -> Path:
    """A kubeconfig for a fresh service account that RBAC grants nothing."""
    import yaml
    from kubernetes import client

    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="nobody")))
    token = core.create_namespaced_service_account_token("nobody", namespace, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [{"name": "nobody", "context": {"cluster": admin["clusters"][0]["name"], "user": "nobody"}}],
        "current-context": "nobody"}))
    return path


def grant_job_creation(api, namespace: str) -> None:
    """Let the "nobody" account create Jobs (the session preflight's check) and nothing else."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "jobs-only"}, "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "jobs-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jobs-only"},
        "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}]})


def test_rbac_forbidden_and_an_unreachable_api_are_clear_failures(pytester, k8s_cluster, k8s_namespace, api,
                                                                  busybox_image, tmp_path):
    write_package(pytester.path)
    kubeconfig = token_kubeconfig(api, k8s_cluster.kubeconfig, k8s_namespace, tmp_path / "nobody.kubeconfig")
    grant_job_creation(api, k8s_namespace)  # past the preflight; the run's other objects are refused
    result = pytester.runpytest("-n", "0", *session_args(k8s_namespace, kubeconfig, "bad"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([(f"*broken failed (phase run): creating the objects of mad-broken-* in namespace "
                                  f"{k8s_namespace}: Forbidden (RBAC): configmaps is forbidden*Fix: grant*")])
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(kubeconfig.read_text().replace("https://127.0.0.1:16443", "https://127.0.0.1:9"))
    result = pytester.runpytest_subprocess("-n", "0", *session_args(k8s_namespace, unreachable, "bad"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the session's preflight, before any build
    text = result.stdout.str() + result.stderr.str()
    assert text.count("the Kubernetes API server https://127.0.0.1:9 does not answer") == 1, text
    assert "Traceback" not in text


def test_oom_killed_model_fails_with_the_reason(pytester, k8s_cluster, k8s_namespace, busybox_image):
    write_package(pytester.path)
    (pytester.path / "scripts" / "m" / "fail.sh").write_text("echo eating\ndd if=/dev/zero of=/dev/null bs=256M count=1\n")
    result = pytester.runpytest("-n", "0", *session_args(k8s_namespace, k8s_cluster.kubeconfig, "bad",
                                                         memory="32Mi", memory_limit="32Mi"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([("*broken failed (phase run): Job mad-broken-* failed: BackoffLimitExceeded: pod "
                                  "mad-broken-*: OOMKilled*")])


def test_objects_of_a_dead_session_are_swept_at_start(pytester, k8s_cluster, k8s_namespace, api, busybox_image):
    import socket

    from kubernetes import client

    from pytest_madengine.targets.k8s import objects

    labels = {objects.SESSION_LABEL: "deadbeef00", objects.HOST_LABEL: objects.label_value(socket.gethostname()),
              objects.PID_LABEL: "999999999", objects.MODEL_LABEL: "gone"}
    core = client.CoreV1Api(api)
    for name in ("stale", "other-host"):
        meta = client.V1ObjectMeta(name=name, labels=labels if name == "stale" else {
            **labels, objects.HOST_LABEL: "another-host"})
        core.create_namespaced_config_map(k8s_namespace, client.V1ConfigMap(metadata=meta, data={"a": "b"}))
    write_package(pytester.path)
    result = pytester.runpytest("-n", "0", *session_args(k8s_namespace, k8s_cluster.kubeconfig, "bad"))
    result.assert_outcomes(failed=1)
    assert wait_empty(api, k8s_namespace, 30) == ["configmap/other-host"]  # another host's session: not ours
