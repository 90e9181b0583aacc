"""The `k8s_run` fixture: one model run through the Kubernetes target on the real cluster, in the test's namespace."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.targets.k8s.target import K8sTarget
from pytest_madengine.workload.run import RunOutcome
from tests.slurm.helpers import BUSYBOX, make_request

LOADER = str(Path(__file__).resolve().parents[1] / "infra" / "load-k8s-image.sh")


class K8sRuns:
    """``runs(package, card, context=None, image=BUSYBOX, keep_alive=False)`` -> RunOutcome; each run is a
    session of its own (``close_all`` ends them: what they created goes)."""

    def __init__(self, tmp_path: Path, kubeconfig: Path, namespace: str) -> None:
        self.tmp_path, self.kubeconfig, self.namespace = tmp_path, kubeconfig, namespace
        self.targets: list[K8sTarget] = []

    def __call__(self, package: Path, card: ModelCard, context: dict[str, Any] | None = None,
                 image: str = BUSYBOX, keep_alive: bool = False) -> RunOutcome:
        context = dict(context or {"gpu_vendor": "NONE"})
        context["k8s"] = {"namespace": self.namespace, "image_loader": ["bash", LOADER],
                          "termination_grace_period_seconds": 2, **(context.get("k8s") or {})}
        request = make_request(package, card, self.tmp_path, context=context, image=image)
        target = K8sTarget(session_id=f"contract{uuid.uuid4().hex[:8]}", session_dir=self.tmp_path / "session",
                           package_root=package, context=request.context,
                           kubeconfig_option=str(self.kubeconfig), keep_alive=keep_alive)
        self.targets.append(target)
        return target.run(request)

    def close_all(self) -> None:
        while self.targets:
            self.targets.pop().close()


@pytest.fixture
def k8s_run(tmp_path, k8s_cluster, k8s_namespace, busybox_image):
    runs = K8sRuns(tmp_path, k8s_cluster.kubeconfig, k8s_namespace)
    yield runs
    runs.close_all()
