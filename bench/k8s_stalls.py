"""Stalls of one-model Kubernetes sessions: N sessions one after another, the slowest reported.

Each session is ``pytest --mad-target k8s -n 0`` over one trivial model (``echo performance: 1 x``)
on the test cluster (tests/infra/start-k8s.sh), in a namespace of the benchmark's own. An observer
watches the namespace's pods and stamps, per session: the session's start, its pod first seen,
the pod's container ended (terminated), and the session's end. Phases: ``to_pod`` (start → pod,
start-up, build reuse, image load, submit), ``pod_run`` (pod → container ended), ``after``
(container ended → session ended: settling, log, collection, cleanup, reports). A stall shows as
an outlier of one phase; the report gives median, 90th percentile and max per phase, and the
slowest sessions. Usage: python bench/k8s_stalls.py [N=50]
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "tests" / "infra"
IMAGE = "mad-test/busybox:latest"


@dataclass
class Stamps:
    """Monotonic seconds of one session's moments (0 = not seen)."""

    start: float = 0.0
    pod: float = 0.0
    ended: float = 0.0
    end: float = 0.0
    rc: int = -1
    phases: dict[str, float] = field(default_factory=dict)

    def measure(self) -> None:
        if self.pod and self.ended:
            self.phases = {"to_pod": self.pod - self.start, "pod_run": self.ended - self.pod,
                           "after": self.end - self.ended, "total": self.end - self.start}
        else:
            self.phases = {"total": self.end - self.start}


class Observer(threading.Thread):
    """Watches the namespace's pods; stamps the current session's first pod and its container's end."""

    def __init__(self, api, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.current: Stamps | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api)
        while not self.stopping.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(core.list_namespaced_pod, self.namespace, timeout_seconds=5):
                    self._stamp(event["object"], time.monotonic())
            except Exception:  # noqa: BLE001 -- the API restarted (another user's fault test): watch again
                time.sleep(0.5)

    def _stamp(self, pod, now: float) -> None:
        stamps = self.current
        if stamps is None or pod.metadata.deletion_timestamp is not None:
            return
        stamps.pod = stamps.pod or now
        for status in pod.status.container_statuses or []:
            if status.state.terminated is not None:
                stamps.ended = stamps.ended or now


def kubeconfig() -> str:
    out = subprocess.run(["bash", str(INFRA / "start-k8s.sh")], capture_output=True, text=True, check=True)
    subprocess.run(["bash", str(INFRA / "load-k8s-image.sh"), IMAGE], check=True, capture_output=True)
    return out.stdout.strip().splitlines()[-1]


def write_package(root: Path) -> None:
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    (root / "scripts" / "m" / "ok.sh").write_text("echo performance: 1 x\n")
    card = {"name": "one", "dockerfile": "docker/bb", "scripts": "scripts/m/ok.sh", "n_gpus": "0", "tags": ["b"],
            "args": ""}
    (root / "models.json").write_text(json.dumps([card]))


def session(package: Path, config: str, namespace: str, observer: Observer) -> Stamps:
    context = {"gpu_vendor": "NONE", "k8s": {"namespace": namespace, "termination_grace_period_seconds": 2,
                                             "image_loader": ["bash", str(INFRA / "load-k8s-image.sh")]}}
    argv = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--mad-tags", "b",
            "--mad-target", "k8s", f"--mad-k8s-kubeconfig={config}", "--mad-context", json.dumps(context)]
    stamps = Stamps(start=time.monotonic())
    observer.current = stamps
    done = subprocess.run(argv, cwd=package, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    stamps.end, stamps.rc = time.monotonic(), done.returncode
    observer.current = None
    stamps.measure()
    return stamps


def report(runs: list[Stamps]) -> None:
    print(f"{len(runs)} one-model sessions, {sum(r.rc != 0 for r in runs)} failed")
    for phase in ("to_pod", "pod_run", "after", "total"):
        values = sorted(r.phases[phase] for r in runs if phase in r.phases)
        if values:
            p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
            print(f"  {phase:8s} median {statistics.median(values):6.2f} s  p90 {p90:6.2f} s  max {values[-1]:6.2f} s")
    print("slowest sessions:")
    for index, run in sorted(enumerate(runs), key=lambda item: -item[1].phases["total"])[:3]:
        phases = "  ".join(f"{k} {v:.2f} s" for k, v in run.phases.items())
        print(f"  #{index}: rc {run.rc}  {phases}")


def main(n: int) -> None:
    from kubernetes import client, config as kconfig

    path = kubeconfig()
    api = kconfig.new_client_from_config(config_file=path)
    core = client.CoreV1Api(api)
    namespace = f"mad-bench-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    observer = Observer(api, namespace)
    observer.start()
    try:
        while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
            time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            package = Path(tmp)
            write_package(package)
            session(package, path, namespace, observer)  # warm-up: builds the image and loads it into the nodes
            runs = [session(package, path, namespace, observer) for _ in range(n)]
    finally:
        observer.stopping.set()
        core.delete_namespace(namespace)
    report(runs)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
