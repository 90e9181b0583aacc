"""Facts madengine records about a build: GPU vendor, GPU architecture, the base image's digest."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_ARCH_DEFAULT = re.compile(r"^\s*(?:ARG|ENV)\s+MAD_SYSTEM_GPU_ARCHITECTURE[= ]\s*[\"']?([^\s\"']+)",
                           re.IGNORECASE | re.MULTILINE)


def arch_default(text: str) -> str:
    """The ``MAD_SYSTEM_GPU_ARCHITECTURE`` default an ``ARG``/``ENV`` line of the Dockerfile sets ('' = none)."""
    match = _ARCH_DEFAULT.search(text)
    return match.group(1) if match else ""


def gpu_vendor_of(dockerfile: Path, text: str) -> str:
    """AMD / NVIDIA / '' as madengine infers it: the file name's ``.amd.`` / ``.nvidia.``, else the
    words rocm/amd or nvidia/cuda anywhere in a Dockerfile with a FROM."""
    name = dockerfile.name.lower()
    if ".amd." in name or name.endswith(".amd"):
        return "AMD"
    if ".nvidia." in name or name.endswith(".nvidia"):
        return "NVIDIA"
    lowered = text.lower()
    if "from" in lowered and ("rocm" in lowered or "amd" in lowered):
        return "AMD"
    if "from" in lowered and ("nvidia" in lowered or "cuda" in lowered):
        return "NVIDIA"
    return ""


def base_digest(client: Any, base_docker: str) -> str:
    """madengine's ``docker_sha``: the base image's digest. madengine takes the first ``digest`` of
    ``docker manifest inspect <base>``, which for a single-platform image (the ROCm images) is its
    config digest, i.e. the image id; here it is the local base image's id, read without a registry
    ('' for ``scratch`` or a base not present locally)."""
    from docker.errors import DockerException

    if not base_docker or base_docker == "scratch":
        return ""
    try:
        return str(client.images.get(base_docker).id)
    except DockerException:
        return ""
