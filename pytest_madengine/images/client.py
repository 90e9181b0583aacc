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
    try:
        lines = (client or docker_client()).images.get(image).attrs.get("Config", {}).get("Env") or []
    except (*engine_failures(), MadError):
        return {}
    return dict(line.partition("=")[::2] for line in lines)
def engine_failures() -> tuple[type[BaseException], ...]:
    """The exception types of a Docker SDK call that mean the engine is not (or no longer) there, as
    opposed to an answer of the engine (``docker.errors.APIError``, which callers handle): the
    ``requests`` and ``urllib3`` errors of a socket closed mid-call or mid-stream (``ConnectionError``,
    ``ChunkedEncodingError``, ``ReadTimeout``, ``ProtocolError``), ``docker.errors.DockerException``
    for some failures to connect, and the OS's own connection errors."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError as Urllib3Error

    return RequestException, Urllib3Error, DockerException, ConnectionError


@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn a connection lost mid-call (the daemon stopped or restarted) into :func:`daemon_unreachable`
    (:func:`engine_failures`); the engine's own answers (``APIError``) pass unchanged."""
    from docker.errors import APIError

    try:
        yield
    except APIError:
        raise
    except engine_failures() as exc:
        raise daemon_unreachable(exc) from None


def daemon_alive(client: docker.DockerClient) -> bool:
    """Whether the engine answers a ping now."""
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure to answer means no
        return False
