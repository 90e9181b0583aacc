"""Parsers of the AMD tools (amd-smi, rocm-smi, rocminfo) and renderD discovery.

Every parser takes the tool's text and returns what it could read; unreadable text gives an
empty answer, never an exception.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import GpuInfo, GpuProcess, Runner

AMD_SMI_LIST = ("amd-smi", "list", "--json")
AMD_SMI_ASIC = ("amd-smi", "static", "--asic", "--json")
AMD_SMI_PROCESS = ("amd-smi", "process", "--json")
ROCM_SMI = ("rocm-smi", "--showproductname", "--showbus", "--json")
ROCMINFO = ("rocminfo",)
HIPCONFIG_VERSION = ("hipconfig", "--version")

_GFX = re.compile(r"(?:amdgcn-amd-amdhsa--)?(gfx[0-9a-f]+)(?::\S*)?")


def normalise_gfx(value: Any) -> str:
    """ "gfx942", "amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-" → "gfx942"; rocm-smi's "gfx9010" → "gfx90a"."""
    match = _GFX.fullmatch(str(value or "").strip().lower())
    if not match:
        return ""
    name = match.group(1)
    digits = name[3:]
    # rocm-smi prints major, minor and a *decimal* stepping, so gfx90a shows up as gfx9010.
    if digits.isdigit() and len(digits) == 4 and digits[0] == "9":
        return f"gfx{digits[0]}{digits[1]}{int(digits[2:]):x}"
    return name


def _load_json(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except (ValueError, RecursionError):
        return None


def _rows(data: Any) -> list[dict[str, Any]]:
    """amd-smi prints a list of per-GPU objects; since ROCm 7 wrapped as {"gpu_data": [...]}."""
    if isinstance(data, dict):
        data = data.get("gpu_data")
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _render_minor(value: Any) -> int | None:
    match = re.search(r"(\d+)$", str(value or "").strip())
    return int(match.group(1)) if match else None


def parse_amd_smi_list_json(text: str | None) -> list[GpuInfo]:
    """``amd-smi list --json``: index, BDF, UUID, KFD node (and render node where printed)."""
    gpus = []
    for row in _rows(_load_json(text)):
        index = _int(row.get("gpu"))
        if index is None:
            continue
        gpus.append(GpuInfo(index=index, bus_id=str(row.get("bdf") or "").lower(),
                            uuid=str(row.get("uuid") or ""), node_id=_int(row.get("node_id")),
                            render=_render_minor(row.get("render"))))
    return sorted(gpus, key=lambda gpu: gpu.index)


def parse_amd_smi_static_json(text: str | None) -> dict[int, tuple[str, str]]:
    """``amd-smi static --asic --json``: GPU index → (market name, gfx architecture)."""
    found = {}
    for row in _rows(_load_json(text)):
        index, asic = _int(row.get("gpu")), row.get("asic")
        if index is None or not isinstance(asic, dict):
            continue
        found[index] = (str(asic.get("market_name") or "").strip(),
                        normalise_gfx(asic.get("target_graphics_version")))
    return found


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _bytes(value: Any) -> int:
    """amd-smi's ``{"value": 1024, "unit": "B"}`` (or a bare number of bytes) → bytes; 0 if unreadable."""
    number, unit = (value.get("value"), value.get("unit")) if isinstance(value, dict) else (value, "B")
    try:
        return int(float(str(number)) * _UNITS.get(str(unit or "B").strip().lower(), 1))
    except (TypeError, ValueError):
        return 0


def _process(gpu: int | None, entry: Any) -> GpuProcess | None:
    """One ``process_list`` item: ``{"process_info": {...}}``, or the text "No running processes detected"."""
    info = entry.get("process_info", entry) if isinstance(entry, dict) else None
    pid = _int(info.get("pid")) if isinstance(info, dict) else None
    if not isinstance(info, dict) or pid is None:
        return None
    vram = (info.get("memory_usage") or {}).get("vram_mem") if isinstance(info.get("memory_usage"), dict) else None
    return GpuProcess(gpu=gpu, pid=pid, name=str(info.get("name") or ""),
                      memory_bytes=_bytes(vram) or _bytes(info.get("mem_usage")))


def parse_amd_smi_process_json(text: str | None) -> list[GpuProcess]:
    """``amd-smi process --json``: per GPU a ``process_list``; a GPU without processes holds the text
    "No running processes detected" instead of a ``process_info`` object (amdsmi_cli, ROCm 6-7)."""
    found = []
    for row in _rows(_load_json(text)):
        entries = row.get("process_list")
        for entry in entries if isinstance(entries, list) else []:
            process = _process(_int(row.get("gpu")), entry)
            if process is not None:
                found.append(process)
    return found


def _field(card: dict[str, Any], name: str) -> str:
    """rocm-smi changed key case across releases ("Card series" / "Card Series")."""
    for key, value in card.items():
        if key.strip().lower() == name:
            return str(value).strip()
    return ""


def parse_rocm_smi_json(text: str | None) -> list[GpuInfo]:
    """``rocm-smi --showproductname --showbus --json``: one ``cardN`` object per GPU."""
    data = _load_json(text)
    if not isinstance(data, dict):
        return []
    cards = sorted((int(key[4:]), value) for key, value in data.items()
                   if re.fullmatch(r"card\d+", str(key)) and isinstance(value, dict))
    gpus = []
    for index, (_, card) in enumerate(cards):
        series = _field(card, "card series")
        gpus.append(GpuInfo(index=index,
                            product="" if series.lower().startswith("0x") else series,
                            arch=normalise_gfx(_field(card, "gfx version")),
                            bus_id=_field(card, "pci bus").lower(),
                            node_id=_int(_field(card, "node id"))))
    return gpus


_AGENT_SPLIT = re.compile(r"^\*+\s*\nAgent \d+\s*\n\*+\s*$", re.MULTILINE)
_TOP_FIELD = re.compile(r"^  (\S[^:]*?):\s*(.*?)\s*$", re.MULTILINE)


def _bdfid_to_bus(bdfid: int) -> str:
    return f"{bdfid >> 16:04x}:{(bdfid >> 8) & 0xFF:02x}:{(bdfid >> 3) & 0x1F:02x}.{bdfid & 0x7}"


def parse_rocminfo(text: str | None) -> list[GpuInfo]:
    """``rocminfo``: the GPU agents in order, with gfx name, marketing name, node and bus."""
    gpus: list[GpuInfo] = []
    for chunk in _AGENT_SPLIT.split(text or "")[1:]:
        fields: dict[str, str] = {}
        for key, value in _TOP_FIELD.findall(chunk):
            fields.setdefault(key, value)  # first wins: ISA "Name:" lines come later
        if fields.get("Device Type", "").upper() != "GPU":
            continue
        bdfid = _int(fields.get("BDFID"))
        gpus.append(GpuInfo(index=len(gpus), product=fields.get("Marketing Name", ""),
                            arch=normalise_gfx(fields.get("Name")),
                            bus_id=_bdfid_to_bus(bdfid) if bdfid else "",
                            node_id=_int(fields.get("Node"))))
    return gpus


def _fill_from(gpus: list[GpuInfo], others: list[GpuInfo]) -> list[GpuInfo]:
    """Complete missing product/arch from another tool, matching by bus id, else by position."""
    by_bus = {other.bus_id: other for other in others if other.bus_id}
    filled = []
    for position, gpu in enumerate(gpus):
        other = by_bus.get(gpu.bus_id) or (others[position] if position < len(others) else None)
        if other is not None:
            gpu = replace(gpu, product=gpu.product or other.product, arch=gpu.arch or other.arch)
        filled.append(gpu)
    return filled


def detect(run: Runner) -> list[GpuInfo]:
    """The AMD GPUs of this machine, or [] when no AMD tool answers."""
    gpus = parse_amd_smi_list_json(run(list(AMD_SMI_LIST)))
    if gpus:
        asic = parse_amd_smi_static_json(run(list(AMD_SMI_ASIC)))
        gpus = [replace(gpu, product=asic.get(gpu.index, ("", ""))[0],
                        arch=asic.get(gpu.index, ("", ""))[1]) for gpu in gpus]
    else:
        gpus = parse_rocm_smi_json(run(list(ROCM_SMI)))
    if gpus and not all(gpu.arch and gpu.product for gpu in gpus):
        gpus = _fill_from(gpus, parse_rocminfo(run(list(ROCMINFO))))
    return gpus


def _kfd_render_minor(sysfs_root: Path, node_id: int) -> int | None:
    properties = sysfs_root / "sys/class/kfd/kfd/topology/nodes" / str(node_id) / "properties"
    try:
        text = properties.read_text()
    except OSError:
        return None
    match = re.search(r"^drm_render_minor\s+(\d+)\s*$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _pci_render_minor(sysfs_root: Path, bus_id: str) -> int | None:
    nodes = sorted((sysfs_root / "sys/bus/pci/devices" / bus_id / "drm").glob("renderD*"))
    return _render_minor(nodes[0].name) if nodes else None


def render_minors(gpus: list[GpuInfo], sysfs_root: Path = Path("/")) -> tuple[int, ...]:
    """renderD minor per GPU index, from the tool, the KFD topology or the PCI device.

    All or nothing: a partial map would hand a container the wrong GPU.
    """
    minors = []
    for gpu in gpus:
        minor = gpu.render
        if minor is None and gpu.node_id is not None:
            minor = _kfd_render_minor(sysfs_root, gpu.node_id)
        if minor is None and gpu.bus_id:
            minor = _pci_render_minor(sysfs_root, gpu.bus_id)
        if minor is None:
            return ()
        minors.append(minor)
    return tuple(minors)


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")


def major_minor(text: str | None) -> str:
    """The first ``X.Y[.Z]`` of a version text as ``X.Y`` ("6.2.41133-dd7f95766" → "6.2"); "" if none."""
    match = _VERSION.search(text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else ""


def hip_version(run: Runner, rocm_root: str) -> str:
    """madengine's ``MAD_SYSTEM_HIP_VERSION``: ``hipconfig --version``, else ``<rocm>/.info/version``, as X.Y."""
    version = major_minor(run(list(HIPCONFIG_VERSION)))
    if version or not rocm_root:
        return version
    try:
        return major_minor((Path(rocm_root) / ".info" / "version").read_text(errors="replace"))
    except OSError:
        return ""
