"""The Kubernetes target's session preflight against the real API server: a missing namespace and
a user who may not create Jobs are one usage error each, before any build, whatever the number
of models (unreachable servers and garbage kubeconfigs: tests/acceptance/test_first_hour.py)."""
from __future__ import annotations

import json
import uuid

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.targets.k8s.api import KubeAccess
from pytest_madengine.targets.k8s.preflight import check_cluster
from tests.k8s.test_k8s_session import token_kubeconfig, write_package

pytestmark = [pytest.mark.k8s]


def test_missing_namespace_is_one_usage_error_before_any_build(pytester: pytest.Pytester, k8s_cluster) -> None:
    package = write_package(pytester.path)
    namespace = f"mad-absent-{uuid.uuid4().hex[:8]}"
    context = {"gpu_vendor": "NONE", "k8s": {"namespace": namespace}}
    result = pytester.runpytest_subprocess("--mad-tags", "pyt,bad,busy", "--mad-target", "k8s",
                                           f"--mad-k8s-kubeconfig={k8s_cluster.kubeconfig}",
                                           "--mad-context", json.dumps(context), "-p", "no:xdist")
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert text.count(f"the namespace {namespace} does not exist") == 1, text
    assert "kubectl create namespace" in text and "Traceback" not in text
    assert not (package / "mad_logs").exists()  # nothing was built


def test_existing_namespace_passes(k8s_cluster, k8s_namespace: str) -> None:
    check_cluster(KubeAccess(str(k8s_cluster.kubeconfig)), k8s_namespace)  # admin: may create Jobs


def test_user_without_job_rights_is_refused(k8s_cluster, k8s_namespace: str, tmp_path) -> None:
    """A service account with no role binding: the SelfSubjectAccessReview says no (and the
    namespace, which it may not read, is not held against it)."""
    with k8s_cluster.api_client() as api:
        kubeconfig = token_kubeconfig(api, k8s_cluster.kubeconfig, k8s_namespace, tmp_path / "nobody.kubeconfig")
    with pytest.raises(MadError, match=f"may not create Jobs in namespace {k8s_namespace}") as caught:
        check_cluster(KubeAccess(str(kubeconfig)), k8s_namespace)
    assert "kubectl auth can-i create jobs" in caught.value.message
