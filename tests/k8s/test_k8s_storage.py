"""k8s.results_pvc / data_pvc on the real cluster: claims created (and deleted) by the session, existing
claims used and kept, and a claim nothing can bind failing the run at once with the controller's reason.

The test cluster has no dynamic provisioner: the happy path binds the created claim to a hostPath
PersistentVolume the test makes (its class exists only as a name, which static binding allows).
"""
from __future__ import annotations

import time
import uuid

import pytest

from pytest_madengine.targets.k8s import objects
from tests.slurm.helpers import make_card, make_package

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

WRITE = 'echo "rank $NODE_RANK" > /myworkspace/results/rank-$NODE_RANK.txt\necho "performance: 1 x"\n'


@pytest.fixture
def core(k8s_cluster):
    from kubernetes import client

    with k8s_cluster.api_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def host_volume(core, tmp_path):
    """(storage class name, host dir): a hostPath PersistentVolume of a class of its own, deleted after."""
    from kubernetes import client

    name = f"mad-test-pv-{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "volume"
    directory.mkdir()
    core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce", "ReadWriteMany"], storage_class_name=name,
            persistent_volume_reclaim_policy="Retain",
            host_path=client.V1HostPathVolumeSource(path=str(directory), type="Directory"))))
    yield name, directory
    core.delete_persistent_volume(name)


def claims(core, namespace: str) -> dict[str, dict[str, str]]:
    return {c.metadata.name: dict(c.metadata.labels or {}) for c in
            core.list_namespaced_persistent_volume_claim(namespace).items if c.metadata.deletion_timestamp is None}


def gone(core, namespace: str, name: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while name in claims(core, namespace) and time.monotonic() < deadline:
        time.sleep(0.5)
    return name not in claims(core, namespace)


def test_created_claim_binds_and_serves_both_pods_then_goes_with_the_session(k8s_run, core, k8s_namespace,
                                                                             host_volume, tmp_path):
    storage_class, directory = host_volume
    package = make_package(tmp_path / "pkg", {"write.sh": WRITE})
    card = make_card("store", "write.sh", distributed={"launcher": "torchrun", "nnodes": 2})
    k8s = {"results_pvc": "mad-results", "results_storage_size": "1Gi", "storage_class": storage_class}
    outcome = k8s_run(package, card, {"gpu_vendor": "NONE", "k8s": k8s})
    assert outcome.exit_code == 0, outcome.error
    assert sorted(path.read_text() for path in directory.iterdir()) == ["rank 0\n", "rank 1\n"]
    labels = claims(core, k8s_namespace)["mad-results"]
    assert labels[objects.SESSION_LABEL].startswith("contract")
    claim = core.read_namespaced_persistent_volume_claim("mad-results", k8s_namespace)
    assert (claim.spec.access_modes, claim.spec.storage_class_name) == (["ReadWriteMany"], storage_class)
    k8s_run.close_all()
    assert gone(core, k8s_namespace, "mad-results")


def test_existing_claim_is_used_and_kept(k8s_run, core, k8s_namespace, host_volume, tmp_path):
    from kubernetes import client

    storage_class, directory = host_volume
    core.create_namespaced_persistent_volume_claim(k8s_namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="team-results"),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"], storage_class_name=storage_class,
                                                resources=client.V1VolumeResourceRequirements(
                                                    requests={"storage": "1Gi"}))))
    package = make_package(tmp_path / "pkg", {"write.sh": WRITE})
    k8s = {"results_pvc": "team-results", "results_storage_size": "5Gi", "storage_class": "not-used"}
    outcome = k8s_run(package, make_card("keep", "write.sh"), {"gpu_vendor": "NONE", "k8s": k8s})
    assert outcome.exit_code == 0, outcome.error
    assert (directory / "rank-0.txt").read_text() == "rank 0\n"
    k8s_run.close_all()
    assert claims(core, k8s_namespace) == {"team-results": {}}  # not ours: untouched


def test_claim_of_a_class_nobody_provisions_fails_at_once_with_the_reason(k8s_run, core, k8s_namespace, tmp_path):
    package = make_package(tmp_path / "pkg", {"write.sh": WRITE})
    k8s = {"data_pvc": "mad-data", "data_storage_size": "1Gi", "data_storage_class": "mad-nobody-provisions"}
    started = time.monotonic()
    outcome = k8s_run(package, make_card("pending", "write.sh"), {"gpu_vendor": "NONE", "k8s": k8s})
    assert time.monotonic() - started < 60  # not k8s.scheduling_timeout (300 s)
    assert outcome.exit_code is None
    assert outcome.error.startswith("k8s.data_pvc 'mad-data': PersistentVolumeClaim mad-data is Pending: "
                                    "ProvisioningFailed: ")
    assert "mad-nobody-provisions" in outcome.error and "Fix: use a storage class the cluster provisions" in outcome.error
    k8s_run.close_all()
    assert gone(core, k8s_namespace, "mad-data")


def test_missing_claim_without_a_size_names_the_setting(k8s_run, k8s_namespace, tmp_path):
    package = make_package(tmp_path / "pkg", {"write.sh": WRITE})
    outcome = k8s_run(package, make_card("nosize", "write.sh"), {"gpu_vendor": "NONE", "k8s": {"results_pvc": "nope"}})
    assert outcome.exit_code is None
    assert outcome.error == (
        f"k8s.results_pvc: PersistentVolumeClaim 'nope' does not exist in namespace {k8s_namespace}. Fix: create "
        'it, or give k8s.results_storage_size (e.g. "10Gi") so that pytest-madengine creates it for the session.')


def test_claim_waiting_for_a_provisioner_that_never_comes_fails_after_the_scheduling_timeout(
        k8s_run, core, k8s_cluster, k8s_namespace, tmp_path):
    from kubernetes import client

    name = f"mad-test-sc-{uuid.uuid4().hex[:8]}"
    with k8s_cluster.api_client() as api:
        storage = client.StorageV1Api(api)
        storage.create_storage_class(client.V1StorageClass(metadata=client.V1ObjectMeta(name=name),
                                                           provisioner="example.com/nobody-runs-this"))
        try:
            package = make_package(tmp_path / "pkg", {"write.sh": WRITE})
            k8s = {"results_pvc": "mad-wait", "results_storage_size": "1Gi", "storage_class": name,
                   "scheduling_timeout": 4}
            started = time.monotonic()
            outcome = k8s_run(package, make_card("wait", "write.sh"), {"gpu_vendor": "NONE", "k8s": k8s})
            assert 4 <= time.monotonic() - started < 30
            assert outcome.error.startswith("k8s.results_pvc 'mad-wait': PersistentVolumeClaim mad-wait is Pending "
                                            "after 4 s: ExternalProvisioning: ")
            assert "example.com/nobody-runs-this" in outcome.error
        finally:
            storage.delete_storage_class(name)
