"""GPU/OS detection against captured outputs of the real vendor tools (tests/data/smi)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.host import (
    HostFacts,
    amd,
    clear_detection_cache,
    default_runner,
    detect_host,
    normalise_product,
    nvidia,
    parse_gpu_list,
    visible_gpu_ids,
)
from pytest_madengine.host.system import parse_os_release, rocm_path

SMI = Path(__file__).resolve().parents[1] / "data" / "smi"


def smi(name: str) -> str:
    return (SMI / name).read_text()


def fake_runner(outputs: dict[tuple[str, ...], str]):
    """A runner answering from captured files; unknown commands behave like a missing tool."""
    calls: list[tuple[str, ...]] = []

    def run(argv):
        calls.append(tuple(argv))
        return outputs.get(tuple(argv))

    run.calls = calls
    return run


def no_os_release(tmp_path: Path) -> Path:
    path = tmp_path / "os-release"
    path.write_text('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    return path


# --- parsers -----------------------------------------------------------------------------------

def test_amd_smi_list_old_list_shape_mi210():
    [gpu] = amd.parse_amd_smi_list_json(smi("amd_smi_list_mi210.json"))
    assert (gpu.index, gpu.bus_id, gpu.node_id) == (0, "0000:23:00.0", 2)
    assert gpu.uuid == "67ff740f-0000-1000-80e6-b5bb3c3ce0db"


def test_amd_smi_list_gpu_data_envelope_mi300x_x8():
    gpus = amd.parse_amd_smi_list_json(smi("amd_smi_list_mi300x_x8.json"))
    assert [gpu.index for gpu in gpus] == list(range(8))
    assert [gpu.node_id for gpu in gpus] == list(range(2, 10))
    assert gpus[7].bus_id == "0000:e5:00.0"


def test_amd_smi_list_reads_render_node_when_printed():
    text = '[{"gpu": 1, "bdf": "0000:26:00.0", "render": "renderD136"}, {"gpu": 0, "render": 128}]'
    assert [(g.index, g.render) for g in amd.parse_amd_smi_list_json(text)] == [(0, 128), (1, 136)]


@pytest.mark.parametrize("name, expected", [
    ("amd_smi_static_asic_mi300x_x8.json", {i: ("AMD Instinct MI300X", "gfx942") for i in range(8)}),
    ("amd_smi_static_asic_mi210.json", {0: ("AMD Instinct MI210", "gfx90a")}),
    ("amd_smi_static_asic_mi350x.json", {0: ("AMD Instinct MI350X", "gfx950")}),
])
def test_amd_smi_static_asic(name, expected):
    assert amd.parse_amd_smi_static_json(smi(name)) == expected


def test_rocm_smi_mi250x_decimal_stepping_becomes_gfx90a():
    [gpu] = amd.parse_rocm_smi_json(smi("rocm_smi_productname_mi250x.json"))
    assert gpu.arch == "gfx90a"
    assert gpu.node_id == 7
    assert normalise_product(gpu.product) == "MI200"


def test_rocm_smi_mi300x_x4_with_bus():
    gpus = amd.parse_rocm_smi_json(smi("rocm_smi_productname_bus_mi300x_x4.json"))
    assert [g.bus_id for g in gpus] == ["0000:26:00.0", "0000:46:00.0", "0000:65:00.0", "0000:85:00.0"]
    assert {g.arch for g in gpus} == {"gfx942"}
    assert {g.product for g in gpus} == {"AMD Instinct MI300X"}


def test_rocminfo_mi300x_x4_skips_cpu_agents_and_decodes_bdfid():
    gpus = amd.parse_rocminfo(smi("rocminfo_mi300x_x4.txt"))
    assert len(gpus) == 4
    assert {g.arch for g in gpus} == {"gfx942"}  # not the ISA line's "amdgcn-...:sramecc+"
    assert [g.node_id for g in gpus] == [2, 3, 4, 5]
    # the same machine's rocm-smi printed these PCI buses
    assert [g.bus_id for g in gpus] == [g.bus_id for g in
                                        amd.parse_rocm_smi_json(smi("rocm_smi_productname_bus_mi300x_x4.json"))]


@pytest.mark.parametrize("raw, expected", [
    ("gfx942", "gfx942"), ("gfx9010", "gfx90a"), ("gfx1100", "gfx1100"), ("gfx1010", "gfx1010"),
    ("amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-", "gfx942"), ("GFX90A", "gfx90a"), ("N/A", ""), (None, ""),
])
def test_normalise_gfx(raw, expected):
    assert amd.normalise_gfx(raw) == expected


def test_nvidia_csv_h100():
    gpus = nvidia.parse_nvidia_smi_csv(smi("nvidia_smi_query_h100.csv"))
    assert len(gpus) == 4
    assert {g.arch for g in gpus} == {"sm_90"}
    assert gpus[1].bus_id == "00000000:2a:00.0"
    assert gpus[3].uuid == "GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14"
    assert normalise_product(gpus[0].product) == "H100"


def test_nvidia_csv_with_header_uses_the_header_order():
    gpus = nvidia.parse_nvidia_smi_csv(smi("nvidia_smi_query_with_header_mixed.csv"))
    assert [(g.index, g.product, g.arch) for g in gpus] == [
        (0, "NVIDIA TITAN V", "sm_70"), (1, "NVIDIA RTX 5880 Ada Generation", "sm_89")]


def test_nvidia_csv_error_text_is_no_gpu():
    text = 'Field "compute_cap" is not a valid field to query.\n'
    assert nvidia.parse_nvidia_smi_csv(text) == []
    assert nvidia.parse_nvidia_smi_csv("No devices were found") == []


def test_nvidia_list_ignores_mig_lines():
    gpus = nvidia.parse_nvidia_smi_list(smi("nvidia_smi_L_a100_mig.txt"))
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert {g.arch for g in gpus} == {"sm_80"}
    assert normalise_product(gpus[0].product) == "A100"


@pytest.mark.parametrize("garbage", ["", "{", "[1, 2]", '{"gpu_data": 5}', "null", "[" * 5000, "\x00\xff"])
def test_garbled_output_gives_no_gpu(garbage):
    assert amd.parse_amd_smi_list_json(garbage) == []
    assert amd.parse_amd_smi_static_json(garbage) == {}
    assert amd.parse_rocm_smi_json(garbage) == []
    assert amd.parse_rocminfo(garbage) == []
    assert nvidia.parse_nvidia_smi_csv(garbage) == []
    assert nvidia.parse_nvidia_smi_list(garbage) == []


@pytest.mark.parametrize("name, short", [
    ("NVIDIA A100-SXM4-40GB", "A100"), ("NVIDIA A100-SXM4", "A100"), ("NVIDIA H100 80GB HBM3", "H100"),
    ("Tesla V100-SXM2-16GB", "V100"), ("AMD Instinct MI300X", "MI300X"), ("A100", "A100"),
    ("NVIDIA GeForce RTX 4090", "RTX4090"), ("", ""),
])
def test_normalise_product(name, short):
    assert normalise_product(name) == short


# --- detect_host -------------------------------------------------------------------------------

def test_no_tools_means_vendor_none(tmp_path):
    run = fake_runner({})
    facts = detect_host(run, env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert (facts.gpu_vendor, facts.gpu_count, facts.gpu_architecture) == ("NONE", 0, "")
    assert facts.render_devices == ()
    assert facts.host_os == "UBUNTU"
    assert ("nvidia-smi", *nvidia.QUERY[1:]) in run.calls  # every vendor was asked


def make_kfd(root: Path, minors: dict[int, int]) -> None:
    for node, minor in minors.items():
        props = root / "sys/class/kfd/kfd/topology/nodes" / str(node) / "properties"
        props.parent.mkdir(parents=True)
        props.write_text(f"cpu_cores_count 0\nsimd_count 1216\ndrm_render_minor {minor}\nlocation_id 9728\n")


def test_amd_smi_host_mi300x_x8_with_render_nodes(tmp_path):
    make_kfd(tmp_path, {node: 128 + 8 * (node - 2) for node in range(2, 10)})
    run = fake_runner({amd.AMD_SMI_LIST: smi("amd_smi_list_mi300x_x8.json"),
                       amd.AMD_SMI_ASIC: smi("amd_smi_static_asic_mi300x_x8.json")})
    facts = detect_host(run, env={"ROCM_PATH": "/opt/rocm-6.4.0"}, sysfs_root=tmp_path,
                        os_release=no_os_release(tmp_path))
    assert facts.gpu_vendor == "AMD" and facts.gpu_count == 8
    assert facts.gpu_architecture == "gfx942" and facts.product_short == "MI300X"
    assert facts.render_devices == (128, 136, 144, 152, 160, 168, 176, 184)
    assert facts.rocm_path == "/opt/rocm-6.4.0"
    assert nvidia.QUERY not in run.calls  # stops at the first vendor that answers


def test_rocm_smi_fallback_fills_arch_from_rocminfo_and_render_from_pci(tmp_path):
    cards = smi("rocm_smi_productname_bus_mi300x_x4.json").replace('"GFX Version": "gfx942",', "")
    for i, bus in enumerate(["0000:26:00.0", "0000:46:00.0", "0000:65:00.0", "0000:85:00.0"]):
        (tmp_path / "sys/bus/pci/devices" / bus / "drm" / f"renderD{128 + 8 * i}").mkdir(parents=True)
    run = fake_runner({amd.ROCM_SMI: cards, amd.ROCMINFO: smi("rocminfo_mi300x_x4.txt")})
    facts = detect_host(run, env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert (facts.gpu_vendor, facts.gpu_count, facts.gpu_architecture) == ("AMD", 4, "gfx942")
    assert facts.render_devices == (128, 136, 144, 152)


def test_render_map_is_all_or_nothing(tmp_path):
    make_kfd(tmp_path, {2: 128})  # node 3 has no topology entry
    gpus = amd.parse_amd_smi_list_json('[{"gpu": 0, "node_id": 2}, {"gpu": 1, "node_id": 3}]')
    assert amd.render_minors(gpus, tmp_path) == ()


def test_nvidia_host_with_old_driver_falls_back_to_list(tmp_path):
    run = fake_runner({nvidia.QUERY: 'Field "compute_cap" is not a valid field to query.\n',
                       nvidia.LIST: smi("nvidia_smi_L_a100_mig.txt")})
    facts = detect_host(run, env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert (facts.gpu_vendor, facts.gpu_count, facts.gpu_architecture) == ("NVIDIA", 4, "sm_80")
    assert facts.gpu_product == "NVIDIA A100-SXM4-80GB"


def test_garbled_amd_output_falls_through_to_nvidia(tmp_path):
    run = fake_runner({amd.AMD_SMI_LIST: "Traceback (most recent call last):\n  boom",
                       amd.ROCM_SMI: "WARNING: No JSON data to report",
                       nvidia.QUERY: smi("nvidia_smi_query_h100.csv")})
    facts = detect_host(run, env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert (facts.gpu_vendor, facts.gpu_count, facts.gpu_architecture) == ("NVIDIA", 4, "sm_90")


def test_a_runner_that_raises_is_not_an_error(tmp_path):
    def run(argv):
        raise RuntimeError("tool crashed")
    facts = detect_host(run, env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert facts.gpu_vendor == "NONE"


def test_default_runner_missing_tool_and_failing_tool(tmp_path):
    run = default_runner({"PATH": str(tmp_path), "ROCM_PATH": str(tmp_path / "rocm")})
    assert run(["definitely-not-a-gpu-tool"]) is None
    tool = tmp_path / "rocm" / "bin" / "amd-smi"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho '[{\"gpu\": 0}]'\nexit 3\n")
    tool.chmod(0o755)
    # found in $ROCM_PATH/bin although not on PATH; output kept despite the exit code
    assert run(["amd-smi", "list", "--json"]).strip() == '[{"gpu": 0}]'


def test_default_detection_is_cached():
    clear_detection_cache()
    first = detect_host()
    assert isinstance(first, HostFacts)
    assert detect_host() is first


def test_importing_the_modules_runs_no_detection():
    code = ("import subprocess, shutil\n"
            "def boom(*a, **k): raise SystemExit('detection ran at import')\n"
            "subprocess.run = boom; shutil.which = boom\n"
            "import pytest_madengine.host, pytest_madengine.host.amd, pytest_madengine.host.nvidia\n"
            "import pytest_madengine.context\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- system facts, visibility ------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('ID=ubuntu\nVERSION_ID="22.04"', "UBUNTU"), ('ID="centos"', "CENTOS"), ("ID=debian", "DEBIAN"),
    ("NAME=x", ""), ("", ""),
])
def test_os_release(text, expected):
    assert parse_os_release(text) == expected


def test_rocm_path_prefers_the_environment(tmp_path):
    assert rocm_path({"ROCM_PATH": "/opt/rocm-7.0"}) == "/opt/rocm-7.0"
    assert rocm_path({}, default=str(tmp_path)) == str(tmp_path)
    assert rocm_path({}, default=str(tmp_path / "missing")) == ""


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"ROCR_VISIBLE_DEVICES": "2,3"}, (2, 3)),
    ({"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "5"}, (1,)),
    ({"ROCR_VISIBLE_DEVICES": "4", "HIP_VISIBLE_DEVICES": "0"}, (4,)),
    ({"CUDA_VISIBLE_DEVICES": ""}, ()),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, ()),
    ({"CUDA_VISIBLE_DEVICES": "3, 1,1"}, (1, 3)),
])
def test_visible_gpu_ids(env, expected):
    assert visible_gpu_ids(env) == expected


def test_visible_gpu_ids_refuses_uuids_with_a_fix():
    with pytest.raises(MadError) as info:
        visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1"})
    assert "CUDA_VISIBLE_DEVICES" in str(info.value) and "--mad-gpus" in str(info.value)


def test_parse_gpu_list():
    assert parse_gpu_list("0-3,6") == (0, 1, 2, 3, 6)
    with pytest.raises(MadError, match="runs backwards"):
        parse_gpu_list("3-1")
    with pytest.raises(MadError, match="is not a GPU list"):
        parse_gpu_list("0,x")


# --- toolkit version (MAD_SYSTEM_HIP_VERSION) --------------------------------------------------

def test_hip_version_from_hipconfig_is_major_minor(tmp_path):
    run = fake_runner({amd.HIPCONFIG_VERSION: smi("hipconfig_version_rocm62.txt")})
    assert amd.hip_version(run, str(tmp_path)) == "6.2"


def test_hip_version_falls_back_to_the_rocm_version_file(tmp_path):
    (tmp_path / ".info").mkdir()
    (tmp_path / ".info" / "version").write_text("6.4.1-120\n")
    assert amd.hip_version(fake_runner({}), str(tmp_path)) == "6.4"
    assert amd.hip_version(fake_runner({}), str(tmp_path / "missing")) == ""


def test_cuda_version_from_nvcc_else_from_nvidia_smi():
    assert nvidia.cuda_version(fake_runner({nvidia.NVCC_VERSION: smi("nvcc_version_cuda124.txt")})) == "12.4"
    assert nvidia.cuda_version(fake_runner({nvidia.SMI: smi("nvidia_smi_h100_summary.txt")})) == "12.4"
    assert nvidia.cuda_version(fake_runner({})) == ""


def test_detected_host_carries_the_toolkit_version(tmp_path):
    run = fake_runner({amd.AMD_SMI_LIST: smi("amd_smi_list_mi210.json"),
                       amd.AMD_SMI_ASIC: smi("amd_smi_static_asic_mi210.json"),
                       amd.HIPCONFIG_VERSION: smi("hipconfig_version_rocm62.txt")})
    facts = detect_host(run, env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert (facts.gpu_product, facts.hip_version) == ("AMD Instinct MI210", "6.2")
    cpu = detect_host(fake_runner({}), env={}, sysfs_root=tmp_path, os_release=no_os_release(tmp_path))
    assert cpu.hip_version == ""
