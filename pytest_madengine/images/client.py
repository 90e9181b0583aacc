"""The one Docker client of a process: one connection pool, one timeout policy, one clear error.

Every part that talks to the engine (builds, pushes and pulls, the local target, SLURM nodes)
takes its client from :func:`docker_client`, so per-model overhead stays low and a missing
daemon always gives the same message.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from ..errors import MadError

if TYPE_CHECKING:
    import docker

# Seconds one engine API call may take. Long enough for a large image load or push chunk;
# waiting for a container uses its own timeout (the model's).
API_TIMEOUT = 600


def daemon_unreachable(exc: BaseException) -> MadError:
    """The error for an engine that is not there (never started, stopped mid-session)."""
    return MadError(f"cannot reach the Docker daemon ({exc.__class__.__name__}: {exc})",
                    where="Docker engine",
                    fix="start dockerd (or set DOCKER_HOST) and check `docker info` works")


@cache
def docker_client() -> docker.DockerClient:
    """The process's Docker client, checked with a ping. Raises MadError when unreachable."""
    import docker

    try:
        client = docker.from_env(timeout=API_TIMEOUT)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - docker raises several types for a dead daemon
        raise daemon_unreachable(exc) from None
    return client


def image_env(image: str, client: docker.DockerClient | None = None) -> dict[str, str]:
    """The image's own ``ENV`` (its config) as {name: value}; {} when the engine is not reachable or
    does not have the image (a Kubernetes run of an image only the registry has, say)."""
    from docker.errors import DockerException

    try:
        lines = (client or docker_client()).images.get(image).attrs.get("Config", {}).get("Env") or []
    except (DockerException, MadError):
        return {}
    return dict(line.partition("=")[::2] for line in lines)
