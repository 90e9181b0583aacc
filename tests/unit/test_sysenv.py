"""System environment capture: the on/off/mode rules and the CSV parsed from recorded tool outputs."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.known_keys import context_unknown
from pytest_madengine.workload.sysenv import SYS_ENV_DIR, env_rows, sys_env_mode, write_env_csv

SMI = Path(__file__).resolve().parents[1] / "data" / "smi"


@pytest.mark.parametrize("context, disabled, mode", [
    ({}, False, "lite"),
    ({}, True, None),
    ({"gen_sys_env_details": False}, False, None),
    ({"gen_sys_env_details": True}, True, "lite"),  # the context wins over the option, as in madengine
    ({"rocenv_mode": "full"}, False, "full"),
    ({"gen_sys_env_details": "false", "rocenv_mode": "full"}, False, None),
])
def test_when_the_capture_runs_and_in_which_mode(context, disabled, mode):
    assert sys_env_mode(context, disabled_by_option=disabled) == mode


def test_an_unknown_mode_is_refused_with_the_fix():
    with pytest.raises(MadError, match="rocenv_mode 'everything' is neither lite nor full"):
        sys_env_mode({"rocenv_mode": "everything"}, disabled_by_option=False)


def test_capture_keys_are_known_context_keys():
    assert context_unknown({"gen_sys_env_details": False, "rocenv_mode": "full"}, "ctx") == []


def capture(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "model" / SYS_ENV_DIR
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_amd_capture_from_recorded_amd_smi_outputs(tmp_path):
    directory = capture(tmp_path, {
        "os-release": 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\n', "uname": "Linux 5.15.0-94-generic x86_64",
        "rocm-version": "6.2.0-66", "hipconfig-version": (SMI / "hipconfig_version_rocm62.txt").read_text(),
        "amdgpu-version": "6.8.5", "amd-smi-list.json": (SMI / "amd_smi_list_mi300x_x8.json").read_text(),
        "amd-smi-asic.json": (SMI / "amd_smi_static_asic_mi300x_x8.json").read_text(),
        "torch-version": "2.4.0+rocm6.2", "env": "MAD_MODEL_NAME=m\nHIP_VISIBLE_DEVICES=0\nMAD_HF_USER=s3cr3t-v\n"})
    rows = env_rows(directory, secrets=["s3cr3t-v"])
    assert rows[:5] == [("os", "name", "Ubuntu 22.04.4 LTS"), ("os", "kernel", "Linux 5.15.0-94-generic x86_64"),
                        ("rocm", "version", "6.2.0-66"), ("rocm", "hip_version", "6.2.41133-dd7f95766"),
                        ("rocm", "amdgpu_driver", "6.8.5")]
    gpus = [row for row in rows if row[0] == "gpu"]
    assert len(gpus) == 8 and gpus[0][2].startswith("AMD Instinct MI300X gfx942 ")
    assert ("library", "torch", "2.4.0+rocm6.2") in rows
    assert [row for row in rows if row[0] == "env"] == [("env", "HIP_VISIBLE_DEVICES", "0"),
                                                       ("env", "MAD_MODEL_NAME", "m")]


def test_nvidia_capture_from_recorded_nvidia_smi_and_nvcc(tmp_path):
    directory = capture(tmp_path, {"nvidia-smi.csv": (SMI / "nvidia_smi_query_h100.csv").read_text(),
                                   "nvidia-smi-driver": "550.54.15\n550.54.15\n",
                                   "nvcc-version": (SMI / "nvcc_version_cuda124.txt").read_text()})
    rows = env_rows(directory)
    assert ("cuda", "version", "12.4") in rows and ("cuda", "driver", "550.54.15") in rows
    gpus = [row for row in rows if row[0] == "gpu"]
    assert len(gpus) == 4 and gpus[0][2].startswith("NVIDIA H100 80GB HBM3 sm_90")


def test_rocm_smi_capture_and_the_csv_file(tmp_path):
    capture(tmp_path, {"rocm-smi.json": (SMI / "rocm_smi_productname_mi250x.json").read_text()})
    log = tmp_path / "logs" / "m.run.log"
    log.parent.mkdir()
    path = write_env_csv(tmp_path / "model", log)
    assert path == tmp_path / "logs" / "m_env.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["section", "name", "value"] and rows[1][:2] == ["gpu", "0"] and "gfx90a" in rows[1][2]
    assert not (tmp_path / "model" / SYS_ENV_DIR).exists()
    shutil.rmtree(tmp_path / "model")
    assert write_env_csv(tmp_path / "model", log) is None
