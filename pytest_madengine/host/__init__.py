"""What this machine is: GPU vendor, count, architecture, render nodes, OS, ROCm path, name.

Detection asks the vendor tools (amd-smi, then rocm-smi, then nvidia-smi) through an injectable
command runner; a missing tool, a failing one or output we cannot read means "no GPU of that
vendor", never an error. Importing this module runs nothing.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MadError
from .system import OS_RELEASE, host_os, machine_name, rocm_path

_log = logging.getLogger(__name__)
VENDORS = ("AMD", "NVIDIA", "NONE")
TOOL_TIMEOUT_S = 10
VISIBILITY_VARS = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")

# A runner takes an argv list and returns the tool's stdout, or None when the tool is missing,
# timed out or printed nothing.
Runner = Callable[[Sequence[str]], "str | None"]


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as a vendor tool reports it (fields it does not report stay empty)."""

    index: int
    product: str = ""
    arch: str = ""
    bus_id: str = ""
    uuid: str = ""
    node_id: int | None = None  # AMD KFD topology node
    render: int | None = None  # AMD renderD minor


@dataclass(frozen=True)
class GpuProcess:
    """A process holding a GPU, as ``amd-smi process`` or ``nvidia-smi --query-compute-apps`` lists it."""

    gpu: int | None  # the GPU's index; None when the tool named a GPU we could not map to one
    pid: int
    name: str = ""
    memory_bytes: int = 0  # device memory it holds (0 when the tool does not say)

    def describe(self) -> str:
        memory = f", {self.memory_bytes / 2**30:.1f} GiB" if self.memory_bytes else ""
        return f"pid {self.pid} ({self.name or 'unnamed'}{memory})"


@dataclass(frozen=True)
class HostFacts:
    gpu_vendor: str = "NONE"
    gpu_count: int = 0
    gpu_architecture: str = ""
    gpu_product: str = ""
    render_devices: tuple[int, ...] = ()
    host_os: str = ""
    rocm_path: str = ""
    machine_name: str = ""
    hip_version: str = ""  # ROCm (HIP) or CUDA version as "X.Y"; "" without a GPU

    @property
    def product_short(self) -> str:
        return normalise_product(self.gpu_product)


_BRAND_WORDS = {"nvidia", "amd", "tesla", "instinct", "geforce", "quadro", "radeon"}
_JOIN_WITH_NEXT = {"rtx", "gtx", "rx"}


def normalise_product(name: str) -> str:
    """The short model name: "NVIDIA A100-SXM4-40GB" → "A100", "AMD Instinct MI300X" → "MI300X"."""
    words = [w for w in str(name or "").split() if w.lower() not in _BRAND_WORDS]
    if not words:
        return ""
    short = words[0].split("-")[0]
    if short.lower() in _JOIN_WITH_NEXT and len(words) > 1:
        short += words[1].split("-")[0]
    return short


def _find_tool(name: str, env: Mapping[str, str]) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    rocm = rocm_path(env)
    candidate = Path(rocm) / "bin" / name if rocm else None
    if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def default_runner(env: Mapping[str, str] | None = None) -> Runner:
    """Runs a tool found on PATH (or in $ROCM_PATH/bin) with a timeout; never raises."""
    environ = os.environ if env is None else env

    def run(argv: Sequence[str]) -> str | None:
        tool = _find_tool(argv[0], environ)
        if tool is None:
            return None
        try:
            done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True,
                                  timeout=TOOL_TIMEOUT_S, check=False, errors="replace")
        except (OSError, subprocess.SubprocessError):
            return None
        # amd-smi may exit non-zero after printing valid JSON: the parsers judge the text.
        return done.stdout if done.stdout.strip() else None

    return run


def _detect_gpus(run: Runner, sysfs_root: Path) -> tuple[str, list[GpuInfo], tuple[int, ...]]:
    from . import amd, nvidia

    try:
        gpus = amd.detect(run)
        if gpus:
            return "AMD", gpus, amd.render_minors(gpus, sysfs_root)
        gpus = nvidia.detect(run)
        if gpus:
            return "NVIDIA", gpus, ()
    except Exception:  # noqa: BLE001 - a vendor tool's odd output must never break a session
        _log.debug("GPU detection failed; treating this machine as having no GPU", exc_info=True)
    return "NONE", [], ()


def _toolkit_version(vendor: str, run: Runner, rocm: str) -> str:
    from . import amd, nvidia

    try:
        if vendor == "AMD":
            return amd.hip_version(run, rocm)
        return nvidia.cuda_version(run) if vendor == "NVIDIA" else ""
    except Exception:  # noqa: BLE001 - as for detection: an odd tool never breaks a session
        return ""


def _detect(run: Runner, env: Mapping[str, str], sysfs_root: Path, os_release: Path) -> HostFacts:
    vendor, gpus, render = _detect_gpus(run, sysfs_root)
    first = gpus[0] if gpus else GpuInfo(index=0)
    rocm = rocm_path(env)
    return HostFacts(
        gpu_vendor=vendor,
        gpu_count=len(gpus),
        gpu_architecture=first.arch,
        gpu_product=first.product,
        render_devices=render,
        host_os=host_os(os_release),
        rocm_path=rocm,
        machine_name=machine_name(),
        hip_version=_toolkit_version(vendor, run, rocm),
    )


@functools.cache
def _detect_cached() -> HostFacts:
    return _detect(default_runner(), os.environ, Path("/"), OS_RELEASE)


def detect_host(run: Runner | None = None, *, env: Mapping[str, str] | None = None,
                sysfs_root: Path = Path("/"), os_release: Path = OS_RELEASE) -> HostFacts:
    """Facts about this machine. Without arguments the answer is cached for the process."""
    if run is None and env is None and sysfs_root == Path("/") and os_release == OS_RELEASE:
        return _detect_cached()
    environ = os.environ if env is None else env
    return _detect(run or default_runner(environ), environ, sysfs_root, os_release)


def clear_detection_cache() -> None:
    _detect_cached.cache_clear()


_RANGE = re.compile(r"^([0-9]+)\s*-\s*([0-9]+)$")
MAX_GPU_INDEX = 1023  # far above any node (16 GPUs today), far below what exhausts memory


def parse_gpu_list(text: str, where: str = "--mad-gpus") -> tuple[int, ...]:
    """ "0-3,6" → (0, 1, 2, 3, 6): sorted, de-duplicated GPU indices."""
    ids: set[int] = set()
    fix = 'give indices and ranges separated by commas, e.g. "0-3,6", or "all" or "none"'
    for part in str(text).split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match:
            low, high = _index(match.group(1), where, fix), _index(match.group(2), where, fix)
            if low > high:
                raise MadError(f"GPU range {part!r} runs backwards", where=where,
                               fix=f"write it low-high ({high}-{low}); {fix}")
            ids.update(range(low, high + 1))
        elif part.isascii() and part.isdigit():
            ids.add(_index(part, where, fix))
        else:
            raise MadError(f"{text!r} is not a GPU list ({part!r} is not an index or a range a-b)",
                           where=where, fix=fix)
    return tuple(sorted(ids))


def _index(text: str, where: str, fix: str) -> int:
    """One GPU index, bounded before any range is expanded (a typo must not allocate gigabytes)."""
    if len(text) > 6 or int(text) > MAX_GPU_INDEX:
        shown = text if len(text) <= 12 else text[:12] + "..."
        raise MadError(f"GPU index {shown} is larger than {MAX_GPU_INDEX}", where=where, fix=fix)
    return int(text)


def visible_gpu_ids(env: Mapping[str, str] | None = None) -> tuple[int, ...] | None:
    """The GPU indices the caller already narrowed us to, or None when no variable is set.

    The first of ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES that is set
    wins. Empty or "-1" means no GPU at all. UUID entries cannot be mapped to indices here.
    """
    env = os.environ if env is None else env
    for name in VISIBILITY_VARS:
        if name not in env:
            continue
        value = env[name].strip()
        if value in ("", "-1"):
            return ()
        try:
            return parse_gpu_list(value, where=name)
        except MadError:
            raise MadError(f"{name}={value!r} is not a list of GPU indices (UUIDs are not "
                           "supported here)", where="environment",
                           fix=f"set {name} to indices such as 0,1 or choose the GPUs with "
                               "--mad-gpus 0,1") from None
    return None


__all__ = [
    "VENDORS",
    "GpuInfo",
    "GpuProcess",
    "HostFacts",
    "Runner",
    "clear_detection_cache",
    "default_runner",
    "detect_host",
    "normalise_product",
    "parse_gpu_list",
    "visible_gpu_ids",
]
