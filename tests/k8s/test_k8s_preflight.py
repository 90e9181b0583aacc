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


def test_core_calls_create_list_read_and_delete_without_core_v1_api(k8s_cluster, k8s_namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from pytest_madengine.targets.k8s.corecalls import CoreCalls

    with k8s_cluster.api_client() as api:
        calls = CoreCalls(api)
        assert calls.read_namespace(k8s_namespace).metadata.name == k8s_namespace
        labels = {"corecalls": uuid.uuid4().hex[:8]}
        calls.create(k8s_namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cc-payload", "labels": labels}, "data": {"a": "1"}})
        calls.create(k8s_namespace, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                     "metadata": {"name": "cc-secret", "labels": labels}, "stringData": {"k": "v"}})
        selector = f"corecalls={labels['corecalls']}"
        found = calls.list("configmaps", k8s_namespace, label_selector=selector)
        assert [(item.metadata.name, item.data) for item in found] == [("cc-payload", {"a": "1"})]
        assert [item.metadata.name for item in calls.list("secrets", k8s_namespace, label_selector=selector)] == \
            ["cc-secret"]
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        calls.delete("configmaps", k8s_namespace, "cc-payload", body=body)
        calls.delete("secrets", k8s_namespace, "cc-secret", body=body)
        assert calls.list("configmaps", k8s_namespace, label_selector=selector) == []
        with pytest.raises(ApiException) as missing:
            calls.read_namespace(f"mad-absent-{uuid.uuid4().hex[:8]}")
        assert missing.value.status == 404
        with pytest.raises(ApiException) as twice:
            calls.delete("secrets", k8s_namespace, "cc-secret", body=body)
        assert twice.value.status == 404


CORE_CONFTEST = '''
import sys
from pathlib import Path


def pytest_madengine_container_options(card, context, options):
    with (Path(__file__).parent / "loaded.txt").open("a") as out:
        out.write(f"{card.name} {'kubernetes.client.api.core_v1_api' in sys.modules}\\n")
'''


def test_core_v1_api_is_not_loaded_before_the_first_job(pytester: pytest.Pytester, k8s_cluster,
                                                        k8s_namespace: str) -> None:
    """Preflight and the stale-object sweep go without ``CoreV1Api`` (0.6 s to import): start-up."""
    from tests.k8s.test_k8s_session import session_args

    write_package(pytester.path)
    pytester.makeconftest(CORE_CONFTEST)
    result = pytester.runpytest_subprocess(*session_args(k8s_namespace, k8s_cluster.kubeconfig, "pyt"), "-p",
                                           "no:xdist")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert (pytester.path / "loaded.txt").read_text().split()[1] == "False"
