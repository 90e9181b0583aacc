"""Session fixtures that give tests the real parts: Docker engine, base images, registry, SLURM,
Kubernetes, PostgreSQL.

Each part is started by the shell scripts beside this file (the same ones `.ci/setup` uses), lazily,
the first time a test asks for it. A part whose software is not installed at all skips its tests
with the reason; under CI (`CI` set) that is a failure instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import docker

INFRA_DIR = Path(__file__).resolve().parent
BUSYBOX_IMAGE = "mad-test/busybox:latest"
PYTHON_IMAGE = "mad-test/python:bookworm"
TORCH_IMAGE = "mad-test/torch:bookworm"
SESSION_LABEL = "pytest-madengine.session"
REGISTRY_DEFAULT_PORT = 5000
SLURM_PARTITION = "debug"
SLURM_NODES = ("node1", "node2")

_EXIT_NOT_INSTALLED = 3
_EXIT_ADDRESS_TAKEN = 4


@dataclass(frozen=True)
class Registry:
    """A running private registry with htpasswd auth; `password` is a per-session canary."""

    host: str
    user: str
    password: str
    data_dir: Path

    @property
    def auth_config(self) -> dict[str, str]:
        """Credentials in the form the Docker SDK's push/pull `auth_config` takes."""
        return {"username": self.user, "password": self.password}


@dataclass(frozen=True)
class SlurmCluster:
    """The two-node SLURM cluster on this host; `shared_dir` is seen by every node."""

    partition: str
    nodes: tuple[str, ...]
    shared_dir: Path
    conf: Path = Path("/etc/slurm/slurm.conf")


class InfraScriptError(RuntimeError):
    """A tests/infra script failed for another reason than missing software."""


def run_infra_script(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run tests/infra/<name>; skip (or fail under CI) when its software is not installed."""
    proc = subprocess.run(
        ["bash", str(INFRA_DIR / name), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode == _EXIT_NOT_INSTALLED:
        reason = f"tests/infra/{name}: {proc.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must install it (.ci/setup)", pytrace=False)
        pytest.skip(reason)
    return proc


def _check(proc: subprocess.CompletedProcess[str], name: str) -> None:
    if proc.returncode != 0:
        raise InfraScriptError(f"tests/infra/{name} exited {proc.returncode}:\n{proc.stderr.strip()}")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """A Docker SDK client to the running engine (started if it was not)."""
    _check(run_infra_script("start-docker.sh", timeout=60), "start-docker.sh")
    import docker

    client = docker.from_env(timeout=300)
    client.ping()
    yield client
    client.close()


def _base_image(which: str, name: str, timeout: float) -> str:
    _check(run_infra_script("base-images.sh", which, timeout=timeout), "base-images.sh")
    return name


@pytest.fixture(scope="session")
def busybox_image(docker_engine: docker.DockerClient) -> str:
    """`mad-test/busybox:latest`: static busybox; `bash script.sh` runs the script with its sh."""
    return _base_image("busybox", BUSYBOX_IMAGE, timeout=120)


@pytest.fixture(scope="session")
def python_image(docker_engine: docker.DockerClient) -> str:
    """`mad-test/python:bookworm`: Debian bookworm minbase with python3 (built once, ~40 s)."""
    return _base_image("python", PYTHON_IMAGE, timeout=600)


@pytest.fixture(scope="session")
def torch_image(docker_engine: docker.DockerClient) -> str:
    """`mad-test/torch:bookworm`: the python image with Debian's PyTorch (CPU, gloo) and a working
    `torchrun` on PATH (built once, ~3 min, 1.4 GB)."""
    return _base_image("torch", TORCH_IMAGE, timeout=900)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def registry(
    docker_engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A private registry on localhost (port 5000 unless taken) for this session only."""
    data_dir = tmp_path_factory.mktemp("registry")
    user, password = "mad-test", f"canary-{uuid.uuid4().hex}"
    for port in (REGISTRY_DEFAULT_PORT, _free_port(), _free_port()):
        proc = run_infra_script("start-registry.sh", str(data_dir), user, password, f"127.0.0.1:{port}")
        if proc.returncode != _EXIT_ADDRESS_TAKEN:
            break
    _check(proc, "start-registry.sh")
    try:
        yield Registry(host=f"localhost:{port}", user=user, password=password, data_dir=data_dir)
    finally:
        run_infra_script("stop-registry.sh", str(data_dir))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> SlurmCluster:
    """The two-node cluster (left running after the session: other sessions may share it)."""
    _check(run_infra_script("start-slurm.sh", timeout=120), "start-slurm.sh")
    shared_dir = tmp_path_factory.mktemp("slurm-shared")
    shared_dir.chmod(0o1777)
    return SlurmCluster(partition=SLURM_PARTITION, nodes=SLURM_NODES, shared_dir=shared_dir)


@dataclass
class ContainerLeakCheck:
    """What `clean_containers` checks: containers with `label` (narrowed to `label=value` if set)."""

    label: str = SESSION_LABEL
    value: str | None = None

    @property
    def filter(self) -> str:
        return self.label if self.value is None else f"{self.label}={self.value}"


def _labelled_containers(client: docker.DockerClient, label_filter: str) -> dict[str, str]:
    # sparse: no per-container inspect, which races with containers removed meanwhile.
    found = client.containers.list(all=True, sparse=True, filters={"label": label_filter})
    return {c.id: (c.attrs.get("Names") or [c.id])[0].lstrip("/") for c in found}


@pytest.fixture
def clean_containers(docker_engine: docker.DockerClient) -> Iterator[ContainerLeakCheck]:
    """Fail the test if it leaves a container labelled `pytest-madengine.session` behind.

    Only containers that appeared during the test count, so one leak does not fail later tests,
    and nothing is removed. On a shared machine another session's containers may appear
    meanwhile: a test that knows its session id sets `.value` to look at its own only.
    """
    check = ContainerLeakCheck()
    before = _labelled_containers(docker_engine, check.label)
    yield check
    after = _labelled_containers(docker_engine, check.filter)
    leftovers = sorted(name for cid, name in after.items() if cid not in before)
    assert not leftovers, f"containers labelled {check.filter} survived the test: {leftovers}"


# --- Kubernetes ---------------------------------------------------------------------------------
K8S_NODES = ("node1", "node2")
# Extended resources start-k8s.sh advertises (no GPU here): node -> (resource name, count).
K8S_GPUS = {"node1": ("amd.com/gpu", 8), "node2": ("nvidia.com/gpu", 8)}


@dataclass(frozen=True)
class K8sCluster:
    """The real Kubernetes cluster on this host (tests/infra/start-k8s.sh, KUBERNETES.md).

    `kubeconfig` holds an admin client certificate (group system:masters). `nodes` are real
    kubelets on containerd instances of their own: images must be loaded with `load_images`
    and used with imagePullPolicy IfNotPresent or Never, since nothing can be pulled here.
    """

    kubeconfig: Path
    nodes: tuple[str, ...]
    gpus: dict[str, tuple[str, int]] = field(default_factory=lambda: dict(K8S_GPUS))

    def api_client(self):
        """A fresh `kubernetes.client.ApiClient` for this cluster (close it when done)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def load_images(self, *images: str) -> None:
        """Copy Docker images into every node's containerd (skipped when already there)."""
        _check(run_infra_script("load-k8s-image.sh", *images, timeout=600), "load-k8s-image.sh")


@pytest.fixture(scope="session")
def k8s_cluster(docker_engine: docker.DockerClient) -> K8sCluster:
    """The cluster, started if it is not running (left running after the session).

    The binaries are built by `.ci/setup` (tests/infra/build-k8s.sh), never here: without them
    the tests skip with the reason (fail under CI).
    """
    proc = run_infra_script("start-k8s.sh", timeout=300)
    _check(proc, "start-k8s.sh")
    kubeconfig = Path(proc.stdout.strip().splitlines()[-1])
    return K8sCluster(kubeconfig=kubeconfig, nodes=K8S_NODES)


@pytest.fixture
def k8s_namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    """A namespace of this test's own, deleted (with everything in it) afterwards."""
    from kubernetes import client

    name = f"mad-test-{uuid.uuid4().hex[:10]}"
    with k8s_cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        # The service-account controller adds "default" shortly after; pods need it.
        for _ in range(100):
            if core.list_namespaced_service_account(name, field_selector="metadata.name=default").items:
                break
            time.sleep(0.1)
        try:
            yield name
        finally:
            core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL server on 127.0.0.1 for this session; `password` is a per-session canary."""

    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path

    def url(self, *, password: bool = True, database: str | None = None) -> str:
        """``postgresql://user[:password]@127.0.0.1:port/db``."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{database or self.database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database on the server (for a test of its own); returns its URL."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(database=name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Debian's PostgreSQL, its own data dir and port on 127.0.0.1 (tests/infra/start-postgres.sh),
    stopped at the end of the session."""
    import shutil
    import tempfile

    # Outside pytest's 0700 temp root: run as root, the server runs as the postgres user.
    data_dir = Path(tempfile.mkdtemp(prefix="mad-postgres-"))
    user, password = "mad", f"canary-{uuid.uuid4().hex}"
    for port in (_free_port(), _free_port(), _free_port()):
        proc = run_infra_script("start-postgres.sh", str(data_dir), str(port), user, password, "mad")
        if proc.returncode != _EXIT_ADDRESS_TAKEN:
            break
    _check(proc, "start-postgres.sh")
    try:
        yield Postgres(host="127.0.0.1", port=port, user=user, password=password, database="mad", data_dir=data_dir)
    finally:
        run_infra_script("stop-postgres.sh", str(data_dir))
        shutil.rmtree(data_dir, ignore_errors=True)
