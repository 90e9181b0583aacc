"""Finding and removing the local target's containers by label (this session's, or dead sessions')."""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from ...fileio import pid_alive

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

SESSION_LABEL = "pytest-madengine.session"
MODEL_LABEL = "pytest-madengine.model"
KEEP_LABEL = "pytest-madengine.keep-alive"
PID_LABEL = "pytest-madengine.pid"
HOST_LABEL = "pytest-madengine.host"


def remove_quietly(container: Container) -> None:
    from ...images.client import engine_failures

    try:
        container.remove(force=True)
    except engine_failures():
        pass  # gone already, or the engine is busy or restarting: the session's label sweep removes it


def remove_session_containers(session_id: str, client: DockerClient, *, include_kept: bool = False) -> int:
    """Remove every container labelled with this session; kept (--mad-keep-alive) ones stay unless asked."""
    return _remove(_listed(client, f"{SESSION_LABEL}={session_id}"), include_kept)


def remove_stale_containers(client: DockerClient) -> int:
    """Remove containers of sessions on this host whose pytest process is gone (crash, kill -9)."""
    host = socket.gethostname()
    stale = [c for c in _listed(client, SESSION_LABEL, f"{HOST_LABEL}={host}")
             if not pid_alive(_labels(c).get(PID_LABEL, ""))]
    return _remove(stale, include_kept=False)


def _listed(client: DockerClient, *labels: str) -> list[Container]:
    # sparse: the list call's own fields (labels included), no inspect per container, which fails
    # with 404 when another session removes one of them meanwhile.
    return client.containers.list(all=True, sparse=True, filters={"label": list(labels)})


def _labels(container: Container) -> dict[str, str]:
    """A sparse container's labels, as the list call returned them."""
    return dict(container.attrs.get("Labels") or {})


def _remove(containers: list[Container], include_kept: bool) -> int:
    from docker.errors import APIError

    removed = 0
    for container in containers:
        if _labels(container).get(KEEP_LABEL) and not include_kept:
            continue
        try:
            container.remove(force=True)
            removed += 1
        except APIError:
            pass  # removed concurrently
    return removed
