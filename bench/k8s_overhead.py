"""Per-model overhead of the Kubernetes target over a bare Job on the same cluster.

N trivial models (``echo performance: 1 x``), one at a time, on the test cluster
(tests/infra/start-k8s.sh): (a) a bare busybox Job per model through the official client, created,
waited for with a watch, its log read, deleted (foreground); (b) ``K8sTarget.run`` per model
(ConfigMap payload, entry script, watch, log stream, collection, cleanup); (c) a whole
``pytest --mad-target k8s -n 0`` session over the same models (start-up, collection, image
build/reuse and load included). Usage: python bench/k8s_overhead.py [N]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "tests" / "infra"
IMAGE = "mad-test/busybox:latest"


def kubeconfig() -> str:
    out = subprocess.run(["bash", str(INFRA / "start-k8s.sh")], capture_output=True, text=True, check=True)
    subprocess.run(["bash", str(INFRA / "load-k8s-image.sh"), IMAGE], check=True)
    return out.stdout.strip().splitlines()[-1]


def bare_jobs(api, namespace: str, n: int) -> float:
    from kubernetes import client, watch

    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    started = time.monotonic()
    for i in range(n):
        name = f"bare-{i}-{uuid.uuid4().hex[:6]}"
        container = client.V1Container(name="main", image=IMAGE, image_pull_policy="IfNotPresent",
                                       command=["sh", "-c", "echo performance: 1 x"])
        batch.create_namespaced_job(namespace, client.V1Job(metadata=client.V1ObjectMeta(name=name), spec=client.V1JobSpec(
            backoff_limit=0, template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
                restart_policy="Never", containers=[container])))))
        stream = watch.Watch()
        for event in stream.stream(batch.list_namespaced_job, namespace, field_selector=f"metadata.name={name}"):
            if event["object"].status.succeeded:
                stream.stop()
        pod = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items[0]
        core.read_namespaced_pod_log(pod.metadata.name, namespace)
        batch.delete_namespaced_job(name, namespace, body=client.V1DeleteOptions(propagation_policy="Foreground"))
    return time.monotonic() - started


def write_package(root: Path, n: int) -> None:
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    (root / "scripts" / "m" / "ok.sh").write_text("echo performance: 1 x\n")
    cards = [{"name": f"m{i}", "dockerfile": "docker/bb", "scripts": "scripts/m/ok.sh", "n_gpus": "0",
              "tags": ["b"], "args": ""} for i in range(n)]
    (root / "models.json").write_text(json.dumps(cards))


def target_runs(config_path: str, namespace: str, n: int, package: Path) -> float:
    from pytest_madengine.cards import ModelCard
    from pytest_madengine.context import Context
    from pytest_madengine.host import HostFacts
    from pytest_madengine.records import ImageRef
    from pytest_madengine.settings import Settings
    from pytest_madengine.targets.k8s import K8sTarget
    from pytest_madengine.workload.run import RunRequest

    context = Context.from_json({"gpu_vendor": "NONE", "k8s": {"namespace": namespace}}, host=HostFacts())
    work = Path(tempfile.mkdtemp())
    target = K8sTarget(session_id=uuid.uuid4().hex[:10], session_dir=work, package_root=package, context=context,
                       kubeconfig_option=config_path)
    cards = json.loads((package / "models.json").read_text())
    started = time.monotonic()
    for i in range(n):
        card = ModelCard.from_dict(cards[i], source="models.json")
        outcome = target.run(RunRequest(card=card, context=context, image=ImageRef(name=IMAGE),
                                        gpus=(), settings=Settings(package=package), log_path=work / f"{i}.log",
                                        work_dir=work / f"w{i}", run_id=uuid.uuid4().hex[:8]))
        assert outcome.exit_code == 0, outcome
    return time.monotonic() - started


def pytest_session(config_path: str, namespace: str, package: Path) -> float:
    context = json.dumps({"gpu_vendor": "NONE", "k8s": {"namespace": namespace, "image_loader": [
        "bash", str(INFRA / "load-k8s-image.sh")]}})
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "--mad-tags", "b",
            "--mad-target", "k8s", f"--mad-k8s-kubeconfig={config_path}", "--mad-context", context]
    subprocess.run(args, cwd=package, capture_output=True, check=True)  # warm: images built and loaded
    started = time.monotonic()
    subprocess.run(args, cwd=package, capture_output=True, check=True)
    return time.monotonic() - started


def main(n: int) -> None:
    from kubernetes import client, config

    path = kubeconfig()
    api = config.new_client_from_config(config_file=path)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
        time.sleep(0.1)
    package = Path(tempfile.mkdtemp()) / "pkg"
    write_package(package, n)
    try:
        bare = bare_jobs(api, namespace, n)
        target = target_runs(path, namespace, n, package)
        session = pytest_session(path, namespace, package)
    finally:
        core.delete_namespace(namespace)
    print(f"{n} models, one at a time: bare Jobs {bare:.2f} s ({bare / n * 1000:.0f} ms each); "
          f"K8sTarget.run {target:.2f} s ({target / n * 1000:.0f} ms each, +{(target - bare) / n * 1000:.0f} ms); "
          f"pytest session {session:.2f} s (+{(session - bare) / n * 1000:.0f} ms per model incl. start-up)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
