"""The one Docker client of a process: one connection pool, one timeout policy, one clear error.

Every part that talks to the engine (builds, pushes and pulls, the local target, SLURM nodes)
takes its client from :func:`docker_client`, so per-model overhead stays low and a missing
daemon always gives the same message.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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
    address = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return MadError(f"cannot reach the Docker daemon at {address} ({exc.__class__.__name__}: {exc})",
                    where="Docker engine",
                    fix="start dockerd (or point DOCKER_HOST at a running engine) and check `docker info` works")


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
@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn a connection lost mid-call (the daemon stopped or restarted) into :func:`daemon_unreachable`.

    The SDK raises ``requests.ConnectionError`` for a closed socket and ``docker.errors.DockerException``
    (not an API answer) for some failures to connect; both mean the engine is not there.
    """
    from docker.errors import APIError, DockerException
    from requests.exceptions import ConnectionError as RequestsConnectionError

    try:
        yield
    except APIError:
        raise
    except (RequestsConnectionError, DockerException) as exc:
        raise daemon_unreachable(exc) from None


def daemon_alive(client: docker.DockerClient) -> bool:
    """Whether the engine answers a ping now."""
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure to answer means no
        return False
