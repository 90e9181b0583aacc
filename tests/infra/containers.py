"""Run a short container and return its output without racing the engine's log writer.

`client.containers.run(...)` reads the logs after the container starts; on a loaded engine a
container that exits within milliseconds can come back with empty output. Attaching before the
start (what `docker run` does) sees every byte.
"""
from __future__ import annotations

from typing import Any


def run_output(client: Any, image: str, command: list[str], **kwargs: Any) -> bytes:
    """Output of `command` in a fresh container of `image`; ContainerError when it exits non-zero."""
    import docker

    container = client.containers.create(image, command, **kwargs)
    try:
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        container.start()
        output = b"".join(stream)
        status = container.wait(timeout=120)["StatusCode"]
    finally:
        container.remove(force=True)
    if status != 0:
        raise docker.errors.ContainerError(container, status, command, image, output)
    return output
