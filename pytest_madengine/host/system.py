"""Host facts that are not about GPUs: OS, ROCm location, machine name."""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

OS_RELEASE = Path("/etc/os-release")
DEFAULT_ROCM = "/opt/rocm"


def parse_os_release(text: str) -> str:
    """The ``ID`` of an os-release file, upper-cased (``UBUNTU``, ``DEBIAN``, ``CENTOS``); "" if absent."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "ID":
            return value.strip().strip("\"'").upper()
    return ""


def host_os(os_release: Path = OS_RELEASE) -> str:
    try:
        return parse_os_release(os_release.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return ""


def rocm_path(env: Mapping[str, str] | None = None, default: str = DEFAULT_ROCM) -> str:
    """``ROCM_PATH`` when set, else ``/opt/rocm`` when it exists, else ""."""
    env = os.environ if env is None else env
    given = env.get("ROCM_PATH", "").strip()
    if given:
        return given
    return default if os.path.isdir(default) else ""


def machine_name() -> str:
    return socket.gethostname()
