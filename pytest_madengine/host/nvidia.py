"""Parsers of nvidia-smi output. Unreadable text gives an empty answer, never an exception."""
from __future__ import annotations

import csv
import re

from . import GpuInfo, GpuProcess, Runner, normalise_product

QUERY_FIELDS = ("index", "name", "uuid", "compute_cap", "pci.bus_id")
QUERY = ("nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader")
LIST = ("nvidia-smi", "-L")
NVCC_VERSION = ("nvcc", "--version")
SMI = ("nvidia-smi",)
COMPUTE_APPS_FIELDS = ("gpu_uuid", "pid", "process_name", "used_memory")
COMPUTE_APPS = ("nvidia-smi", f"--query-compute-apps={','.join(COMPUTE_APPS_FIELDS)}", "--format=csv,noheader")

# For drivers too old to report compute_cap (the -L fallback): documented capabilities.
_KNOWN_ARCH = {"B200": "sm_100", "GB200": "sm_100", "H200": "sm_90", "H100": "sm_90",
               "H800": "sm_90", "GH200": "sm_90", "L40S": "sm_89", "L40": "sm_89", "L4": "sm_89",
               "A100": "sm_80", "A800": "sm_80", "A30": "sm_80", "A10": "sm_86", "A40": "sm_86",
               "V100": "sm_70", "T4": "sm_75"}


def compute_cap_to_arch(value: str) -> str:
    """ "9.0" → "sm_90", "12.0" → "sm_120"; anything else → ""."""
    match = re.fullmatch(r"(\d+)\.(\d+)", str(value or "").strip())
    return f"sm_{match.group(1)}{match.group(2)}" if match else ""


def _header(row: list[str]) -> tuple[str, ...] | None:
    """The field names when ``row`` is a ``--format=csv`` header ("memory.total [MiB]" → "memory.total")."""
    names = tuple(re.sub(r"\s*\[.*\]$", "", cell.strip()).lower() for cell in row)
    is_header = any(cell.strip().isdigit() for cell in row) is False and (
        "name" in names or "index" in names)
    return names if is_header else None


def parse_nvidia_smi_csv(text: str | None, fields: tuple[str, ...] = QUERY_FIELDS) -> list[GpuInfo]:
    """``nvidia-smi --query-gpu=... --format=csv[,noheader]``; a header line overrides ``fields``."""
    rows = list(csv.reader([line for line in (text or "").splitlines() if line.strip()],
                           skipinitialspace=True))
    if rows and (named := _header(rows[0])):
        fields, rows = named, rows[1:]
    gpus: list[GpuInfo] = []
    for row in rows:
        if len(row) != len(fields):
            continue  # an error line such as 'Field "compute_cap" is not a valid field to query.'
        cells = dict(zip(fields, (cell.strip() for cell in row)))
        index = cells.get("index", str(len(gpus)))
        if not index.isdigit() or not cells.get("name"):
            continue
        gpus.append(GpuInfo(index=int(index), product=cells["name"],
                            arch=compute_cap_to_arch(cells.get("compute_cap", "")),
                            bus_id=cells.get("pci.bus_id", "").lower(), uuid=cells.get("uuid", "")))
    return sorted(gpus, key=lambda gpu: gpu.index)


_LIST_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$")


def parse_nvidia_smi_list(text: str | None) -> list[GpuInfo]:
    """``nvidia-smi -L``: one ``GPU i: name (UUID: ...)`` line per GPU; MIG lines are not GPUs."""
    gpus: list[GpuInfo] = []
    for line in (text or "").splitlines():
        match = _LIST_LINE.match(line)
        if match:
            name = match.group(2)
            gpus.append(GpuInfo(index=int(match.group(1)), product=name, uuid=match.group(3),
                                arch=_KNOWN_ARCH.get(normalise_product(name).upper(), "")))
    return gpus


def detect(run: Runner) -> list[GpuInfo]:
    """The NVIDIA GPUs of this machine, or [] when nvidia-smi is missing or fails."""
    return parse_nvidia_smi_csv(run(list(QUERY))) or parse_nvidia_smi_list(run(list(LIST)))


_NVCC_RELEASE = re.compile(r"release (\d+\.\d+)")
_SMI_CUDA = re.compile(r"CUDA Version\s*:\s*(\d+\.\d+)")


def parse_cuda_version(text: str | None) -> str:
    """CUDA X.Y from ``nvcc --version`` ("release 12.4, V12.4.131") or nvidia-smi's "CUDA Version: 12.4"."""
    match = _NVCC_RELEASE.search(text or "") or _SMI_CUDA.search(text or "")
    return match.group(1) if match else ""


def cuda_version(run: Runner) -> str:
    """madengine's ``MAD_SYSTEM_HIP_VERSION`` on NVIDIA: nvcc's release, else the driver's CUDA version."""
    return parse_cuda_version(run(list(NVCC_VERSION))) or parse_cuda_version(run(list(SMI)))


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(MiB)?$")


def parse_nvidia_smi_compute_apps(text: str | None, gpus: list[GpuInfo]) -> list[GpuProcess]:
    """``nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader``:
    one line per process ("GPU-…, 4242, python3, 1024 MiB"); the GPU is found by its UUID in ``gpus``.
    "[N/A]" memory (MIG, containers) counts as 0; other lines (no processes, errors) are skipped."""
    by_uuid = {gpu.uuid: gpu.index for gpu in gpus if gpu.uuid}
    found = []
    for row in csv.reader([line for line in (text or "").splitlines() if line.strip()], skipinitialspace=True):
        if len(row) != len(COMPUTE_APPS_FIELDS) or not row[1].strip().isdigit():
            continue
        memory = _MEMORY.match(row[3].strip())
        found.append(GpuProcess(gpu=by_uuid.get(row[0].strip()), pid=int(row[1]), name=row[2].strip(),
                                memory_bytes=int(float(memory.group(1)) * 2**20) if memory else 0))
    return found
