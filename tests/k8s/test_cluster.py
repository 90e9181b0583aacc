"""The Kubernetes test cluster itself (tests/infra/start-k8s.sh), through the official client.

These are the cluster's smoke tests: a Job really runs its container on a real kubelet and its
output is the pod log; a two-completion Indexed Job behind a headless Service gets pods
`<job>-0` and `<job>-1` on the two nodes, each resolving the other's `<job>-<i>.<service>`.
"""
from __future__ import annotations

import time
import uuid

import pytest

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

JOB_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def api(k8s_cluster, busybox_image):
    k8s_cluster.load_images(busybox_image)
    client = k8s_cluster.api_client()
    yield client
    client.close()


def _wait_job(batch, name: str, namespace: str, completions: int = 1):
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job_status(name, namespace)
        if (job.status.succeeded or 0) >= completions:
            return job
        assert not job.status.failed, f"job {name} failed: {job.status}"
        time.sleep(0.5)
    raise AssertionError(f"job {name} did not complete in {JOB_TIMEOUT_S}s: {job.status}")


def _job_pods(core, name: str, namespace: str):
    return core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items


def test_cluster_version_and_ready_nodes(k8s_cluster, api):
    from kubernetes import client

    assert client.VersionApi(api).get_code().git_version == "v1.37.2"
    nodes = client.CoreV1Api(api).list_node().items
    ready = {n.metadata.name for n in nodes
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])}
    assert ready >= set(k8s_cluster.nodes)


def test_job_runs_and_its_output_is_the_pod_log(api, busybox_image, k8s_namespace):
    from kubernetes import client

    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    marker = f"hello-from-k8s-{uuid.uuid4().hex}"
    container = client.V1Container(
        name="main", image=busybox_image, image_pull_policy="IfNotPresent",
        command=["sh", "-c", f'echo "{marker}"; echo "node=$(hostname)"'])
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="smoke"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(restart_policy="Never", containers=[container]))))
    batch.create_namespaced_job(k8s_namespace, job)
    _wait_job(batch, "smoke", k8s_namespace)
    (pod,) = _job_pods(core, "smoke", k8s_namespace)
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name in {"node1", "node2"}
    log = core.read_namespaced_pod_log(pod.metadata.name, k8s_namespace, container="main")
    assert log.splitlines()[0] == marker
    assert log.splitlines()[1] == f"node={pod.metadata.name}"


RESOLVE_PEERS = r"""
me=$JOB_COMPLETION_INDEX
echo "index=$me host=$(hostname)"
for i in 0 1; do
    name="$JOB-$i.$SVC"
    n=0
    until addr=$(nslookup "$name.$NS.svc.cluster.local" 2>/dev/null | awk '/^Name:/ {n=1} n && /^Address/ {a=$NF} END {if (a) print a; else exit 1}'); do
        n=$((n + 1)); [ $n -ge 120 ] && { echo "unresolved $name"; exit 1; }
        sleep 0.5
    done
    echo "resolved $name $addr"
done
"""


def test_indexed_job_spreads_over_both_nodes_and_pods_resolve_each_other(api, busybox_image, k8s_namespace):
    from kubernetes import client

    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    job_name, svc = "idx", "idx-svc"
    core.create_namespaced_service(k8s_namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name=svc),
        spec=client.V1ServiceSpec(cluster_ip="None", selector={"job-name": job_name},
                                  publish_not_ready_addresses=True)))
    labels = {"job-name": job_name}
    anti = client.V1Affinity(pod_anti_affinity=client.V1PodAntiAffinity(
        required_during_scheduling_ignored_during_execution=[client.V1PodAffinityTerm(
            topology_key="kubernetes.io/hostname",
            label_selector=client.V1LabelSelector(match_labels=labels))]))
    env = [client.V1EnvVar(name="JOB", value=job_name), client.V1EnvVar(name="SVC", value=svc),
           client.V1EnvVar(name="NS", value=k8s_namespace)]
    container = client.V1Container(name="main", image=busybox_image, image_pull_policy="IfNotPresent",
                                   command=["sh", "-c", RESOLVE_PEERS], env=env)
    batch.create_namespaced_job(k8s_namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name=job_name),
        spec=client.V1JobSpec(
            completions=2, parallelism=2, completion_mode="Indexed", backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(restart_policy="Never", subdomain=svc, affinity=anti,
                                      containers=[container])))))
    _wait_job(batch, job_name, k8s_namespace, completions=2)
    pods = sorted(_job_pods(core, job_name, k8s_namespace), key=lambda p: p.spec.hostname)
    assert [p.spec.hostname for p in pods] == [f"{job_name}-0", f"{job_name}-1"]
    assert [p.metadata.name.rsplit("-", 1)[0] for p in pods] == [f"{job_name}-0", f"{job_name}-1"]
    assert {p.spec.node_name for p in pods} == {"node1", "node2"}
    ips = {f"{job_name}-{i}": p.status.pod_ip for i, p in enumerate(pods)}
    for i, pod in enumerate(pods):
        log = core.read_namespaced_pod_log(pod.metadata.name, k8s_namespace).splitlines()
        assert log[0] == f"index={i} host={job_name}-{i}"
        resolved = dict(line.split()[1:] for line in log[1:] if line.startswith("resolved "))
        assert resolved == {f"{job_name}-{j}.{svc}": ips[f"{job_name}-{j}"] for j in (0, 1)}


@pytest.mark.parametrize(("resource", "node"), [("amd.com/gpu", "node1"), ("nvidia.com/gpu", "node2")])
def test_gpu_requests_go_to_the_node_advertising_that_vendor(api, busybox_image, k8s_namespace, resource, node):
    from kubernetes import client

    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    container = client.V1Container(
        name="main", image=busybox_image, image_pull_policy="IfNotPresent", command=["echo", "gpu job"],
        resources=client.V1ResourceRequirements(limits={resource: "2"}))
    batch.create_namespaced_job(k8s_namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name="gpu"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[container])))))
    _wait_job(batch, "gpu", k8s_namespace)
    (pod,) = _job_pods(core, "gpu", k8s_namespace)
    assert pod.spec.node_name == node
    assert core.read_namespaced_pod_log(pod.metadata.name, k8s_namespace) == "gpu job\n"


def test_pod_writes_results_into_a_host_path(api, busybox_image, k8s_namespace, tmp_path):
    """The kubelets run on this host: a hostPath volume is how a test collects files from a pod."""
    from kubernetes import client

    batch = client.BatchV1Api(api)
    out = tmp_path / "results"
    out.mkdir()
    container = client.V1Container(
        name="main", image=busybox_image, image_pull_policy="IfNotPresent",
        command=["sh", "-c", 'echo "model,performance,metric" > /results/perf.csv; echo "m,42.5,tok/s" >> /results/perf.csv'],
        volume_mounts=[client.V1VolumeMount(name="results", mount_path="/results")])
    batch.create_namespaced_job(k8s_namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name="results"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[container], volumes=[
                client.V1Volume(name="results", host_path=client.V1HostPathVolumeSource(
                    path=str(out), type="Directory"))])))))
    _wait_job(batch, "results", k8s_namespace)
    assert (out / "perf.csv").read_text() == "model,performance,metric\nm,42.5,tok/s\n"
