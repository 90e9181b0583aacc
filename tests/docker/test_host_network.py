"""The test servers leave the host's networking as they found it.

After the clusters and fault probes had run, Docker's default bridge ``docker0`` was once gone:
every container on the default bridge network failed with "could not find bridge docker0", while
ours (host network) carried on. Here a container on the bridge network must start and reach its
gateway before and after each test server's stop and start script, and ``start-docker.sh`` must
put a lost ``docker0`` back without restarting the engine.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable

import docker
import pytest

from tests.infra.fixtures import K8sCluster, SlurmCluster, _check, run_infra_script

pytestmark = pytest.mark.docker

# The default route's gateway, pinged once: the container got an address on docker0 and reaches it.
PING_GATEWAY = "gw=$(ip -4 route | awk '/^default/ {print $3}') && ping -c 1 -W 2 \"$gw\" >/dev/null && echo ok $gw"


def bridge_container(client: docker.DockerClient, image: str) -> str:
    """Run a container on the default bridge network; its output (``ok <gateway>``)."""
    output = client.containers.run(image, ["sh", "-c", PING_GATEWAY], network_mode="bridge", remove=True)
    return output.decode().strip()


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def cycle(stop: str, start: str) -> Callable[[], None]:
    def run() -> None:
        _check(run_infra_script(stop, timeout=300), stop)
        _check(run_infra_script(start, timeout=300), start)
    return run


def assert_bridge_intact(client: docker.DockerClient, image: str, when: str) -> None:
    assert "docker0" in host_links(), f"docker0 is gone {when}"
    assert bridge_container(client, image).startswith("ok "), when


def test_slurm_stop_and_start_leave_the_bridge_network(docker_engine: docker.DockerClient, busybox_image: str,
                                                       slurm_cluster: SlurmCluster) -> None:
    assert_bridge_intact(docker_engine, busybox_image, "with the SLURM cluster running")
    cycle("stop-slurm.sh", "start-slurm.sh")()
    assert_bridge_intact(docker_engine, busybox_image, "after stop-slurm.sh + start-slurm.sh")


def test_k8s_stop_and_start_leave_the_bridge_network(docker_engine: docker.DockerClient, busybox_image: str,
                                                     k8s_cluster: K8sCluster) -> None:
    """The Kubernetes nodes bring their own containerd, CNI bridges (mad-cni1/2), a host bridge for
    the node IPs (mad-k8s0), iptables FORWARD rules and pod network namespaces."""
    assert_bridge_intact(docker_engine, busybox_image, "with the Kubernetes cluster running")
    cycle("stop-k8s.sh", "start-k8s.sh")()
    assert_bridge_intact(docker_engine, busybox_image, "after stop-k8s.sh + start-k8s.sh")


def test_start_docker_puts_a_lost_docker0_back(docker_engine: docker.DockerClient, busybox_image: str) -> None:
    assert_bridge_intact(docker_engine, busybox_image, "at the start")
    subprocess.run(["ip", "link", "del", "docker0"], check=True)
    try:
        with pytest.raises(docker.errors.APIError, match="docker0"):
            bridge_container(docker_engine, busybox_image)
    finally:
        restored = run_infra_script("start-docker.sh", timeout=60)
    _check(restored, "start-docker.sh")
    assert "recreating it" in restored.stderr
    assert_bridge_intact(docker_engine, busybox_image, "after start-docker.sh")
    again = run_infra_script("start-docker.sh", timeout=60)
    assert again.returncode == 0 and "recreating" not in again.stderr  # nothing to do the second time
