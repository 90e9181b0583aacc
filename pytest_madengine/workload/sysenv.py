"""System environment capture per run: madengine's ``<model>_env.csv`` (its rocEnvTool pre-script).

On by default as in madengine; off with ``--mad-no-sys-env`` or the context's ``gen_sys_env_details: false``
(the context wins, as in madengine); ``rocenv_mode`` is ``lite`` (default) or ``full``. The first step
in the container runs the shipped ``sys_env.sh``: it prints the vendor tool's GPU table at the top of the
run log and saves the raw outputs of the system and vendor tools into ``SYS_ENV_DIR`` of the model dir.
After the run ``write_env_csv`` parses them here, on the host, with the same parsers GPU detection uses
(``host.amd``, ``host.nvidia``), into ``<log name>_env.csv`` next to the run log: ``section,name,value``
rows: ``os`` (name, kernel), ``rocm`` (version, hip_version, amdgpu_driver), ``cuda`` (version, driver),
``gpu`` (one row per GPU: product, architecture, bus id), ``python``/``library`` (torch; full: every pip
package), ``env`` (lite: the MAD/HIP/ROCR/CUDA/HSA/NCCL/RCCL/MIOPEN/PYTORCH/OMP variables; full: all).
Secret variables never reach it (names in ``MAD_ENV_HIDE`` and secret-looking names are dropped in the
container; values equal to a secret are dropped here too).
"""
from __future__ import annotations

import csv
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import MadError
from ..host import GpuInfo, amd, nvidia
from ..host.system import parse_os_release

SYS_ENV_DIR = ".mad_sys_env"
MODES = ("lite", "full")
_FALSE = {"false", "0", "no", "off"}


def sys_env_mode(context: Mapping[str, Any], *, disabled_by_option: bool) -> str | None:
    """``lite``/``full`` when the capture runs, None when it is off (context ``gen_sys_env_details`` wins)."""
    flag = context.get("gen_sys_env_details")
    enabled = (str(flag).strip().lower() not in _FALSE) if flag is not None else not disabled_by_option
    if not enabled:
        return None
    mode = str(context.get("rocenv_mode") or "lite").strip().lower()
    if mode not in MODES:
        raise MadError(f"rocenv_mode {context.get('rocenv_mode')!r} is neither lite nor full", where="context",
                       fix="write 'rocenv_mode': 'lite' (the default) or 'full'")
    return mode


def capture_step(mode: str, hidden: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The container step (argv run in the model dir) and the env it needs."""
    return ["sh", ".mad_tools/sys_env.sh", SYS_ENV_DIR, mode], {"MAD_ENV_HIDE": " ".join(sorted(set(hidden)))}


def _read(directory: Path, name: str) -> str:
    try:
        return (directory / name).read_text(errors="replace").strip()
    except OSError:
        return ""


def _os_rows(directory: Path) -> list[tuple[str, str, str]]:
    release = _read(directory, "os-release")
    pretty = next((line.partition("=")[2].strip('"') for line in release.splitlines()
                   if line.startswith("PRETTY_NAME=")), "") or parse_os_release(release)
    return [("os", "name", pretty), ("os", "kernel", _read(directory, "uname"))]


def _gpus(directory: Path) -> list[GpuInfo]:
    gpus = amd.parse_amd_smi_list_json(_read(directory, "amd-smi-list.json"))
    if gpus:
        asic = amd.parse_amd_smi_static_json(_read(directory, "amd-smi-asic.json"))
        return [GpuInfo(index=g.index, product=asic.get(g.index, ("", ""))[0], arch=asic.get(g.index, ("", ""))[1],
                        bus_id=g.bus_id) for g in gpus]
    return (amd.parse_rocm_smi_json(_read(directory, "rocm-smi.json"))
            or nvidia.parse_nvidia_smi_csv(_read(directory, "nvidia-smi.csv")))


def _toolkit_rows(directory: Path) -> list[tuple[str, str, str]]:
    cuda = nvidia.parse_cuda_version(_read(directory, "nvcc-version"))
    driver = _read(directory, "nvidia-smi-driver").splitlines()
    return [("rocm", "version", _read(directory, "rocm-version")),
            ("rocm", "hip_version", _read(directory, "hipconfig-version").splitlines()[0]
             if _read(directory, "hipconfig-version") else ""),
            ("rocm", "amdgpu_driver", _read(directory, "amdgpu-version")),
            ("cuda", "version", cuda), ("cuda", "driver", driver[0].strip() if driver else "")]


def _library_rows(directory: Path) -> list[tuple[str, str, str]]:
    rows = [("python", "version", _read(directory, "python-version").removeprefix("Python ")),
            ("library", "torch", _read(directory, "torch-version"))]
    for line in _read(directory, "pip-freeze").splitlines():
        name, sep, version = line.partition("==")
        if sep:
            rows.append(("library", name.strip(), version.strip()))
    return rows


def _env_rows(directory: Path, secrets: set[str]) -> list[tuple[str, str, str]]:
    rows = []
    for line in _read(directory, "env").splitlines():
        name, sep, value = line.partition("=")
        if sep and value not in secrets:
            rows.append(("env", name, value))
    return sorted(rows)


def env_rows(directory: Path, secrets: Iterable[str] = ()) -> list[tuple[str, str, str]]:
    """(section, name, value) rows from a capture dir; empty values are left out."""
    gpu_rows = [("gpu", str(g.index), " ".join(part for part in (g.product, g.arch, g.bus_id) if part))
                for g in _gpus(directory)]
    rows = [*_os_rows(directory), *_toolkit_rows(directory), *gpu_rows, *_library_rows(directory),
            *_env_rows(directory, {value for value in secrets if value})]
    return [row for row in rows if row[2]]


def env_csv_for(log_path: Path) -> Path:
    """madengine's ``<model>_env.csv``, beside the run log ``<model>.run.log``."""
    stem = log_path.name.removesuffix(".log").removesuffix(".run")
    return log_path.with_name(f"{stem}_env.csv")


def write_env_csv(model_dir: Path, log_path: Path, secrets: Iterable[str] = ()) -> Path | None:
    """``<log name>_env.csv`` beside the run log from the model dir's capture (None when there is none);
    the raw capture dir is removed."""
    directory = model_dir / SYS_ENV_DIR
    if not directory.is_dir():
        return None
    path = env_csv_for(log_path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "name", "value"])
        writer.writerows(env_rows(directory, secrets))
    shutil.rmtree(directory, ignore_errors=True)
    return path
