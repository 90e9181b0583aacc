"""The profiling catalogue shipped with the plugin, on a package without scripts/common/tools.json.

Stand-in profilers in the image record how they were called: ``rocprofv3`` writes its argv and a
kernel-trace CSV into its ``-d`` dir, ``nvidia-smi`` answers the power query with fixed readings.
Expected command lines are the catalogue's (``pytest_madengine/presets/tools/tools.json``).
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.acceptance.conftest import card

pytestmark = pytest.mark.docker

ROCPROFV3 = r"""#!/bin/sh
out=.
prev=
for arg in "$@"; do [ "$prev" = "-d" ] && out=$arg; prev=$arg; done
mkdir -p "$out/node0"
printf '%s\n' "$@" > "$out/rocprofv3.argv"
echo 'Kernel_Name,Start_Timestamp,End_Timestamp' > "$out/node0/4242_kernel_trace.csv"
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"""
NVIDIA_SMI = "#!/bin/sh\necho '0, 301.5, 1024, 81559'\necho '1, 120.25, 0, 81559'\n"
MODEL = """echo "./rocblas-bench -f gemm -r f32_r --transposeA N --transposeB N -m 128 -n 128 -k 128"
echo "./rocblas-bench -f gemm -r f32_r --transposeA N --transposeB N -m 128 -n 128 -k 128"
echo "MIOpen(HIP): Command [LogCmdConvolution] ./bin/MIOpenDriver conv -n 32 -c 3 -H 224 -W 224"
sleep 0.5
echo "performance: 42 samples_per_second"
"""


def tool_package(root: Path, python_image: str) -> Path:
    (root / "docker").mkdir(parents=True)
    (root / "docker" / "prof.ubuntu.amd.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\n"
        f"FROM {python_image}\nCOPY rocprofv3 nvidia-smi /usr/local/bin/\n"
        "RUN chmod 755 /usr/local/bin/rocprofv3 /usr/local/bin/nvidia-smi\n")
    (root / "docker" / "rocprofv3").write_text(ROCPROFV3)
    (root / "docker" / "nvidia-smi").write_text(NVIDIA_SMI)
    (root / "scripts").mkdir()
    (root / "scripts" / "run.sh").write_text(MODEL)
    import json

    (root / "models.json").write_text(json.dumps([card("prof", "scripts/run.sh", dockerfile="docker/prof",
                                                       args="--steps 2")]))
    assert not (root / "scripts" / "common" / "tools.json").exists()
    return root


def run_with_tools(pytester: pytest.Pytester, pkg: Path, tools: str) -> pytest.RunResult:
    context = f"--mad-context={{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU', 'tools': {tools}}}"
    return pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "all", context, "--mad-gpus", "none",
                              "--junitxml", str(pytester.path / "junit.xml"), "-p", "no:cacheprovider")


def junit_properties(path: Path) -> dict[str, str]:
    from tests.junit_records import model_properties

    return model_properties(path)


def test_rocprofv3_compute_wraps_the_model_and_its_output_lands_in_the_log_dir(pytester, python_image):
    pkg = tool_package(pytester.path / "pkg", python_image)
    result = run_with_tools(pytester, pkg, "[{'name': 'rocprofv3_compute'}]")
    result.assert_outcomes(passed=1)
    kept = pytester.path / "mad_logs" / "prof.run.tools" / "rocprof_output"
    argv = (kept / "rocprofv3.argv").read_text().splitlines()
    assert argv == ["--hip-trace", "--kernel-trace", "-i", ".mad_tools/counters/compute_bound.txt",
                    "--output-format", "pftrace", "-d", "./rocprof_output", "--", "bash", "run.sh", "--steps", "2"]
    assert (kept / "node0" / "4242_kernel_trace.csv").is_file()
    assert junit_properties(pytester.path / "junit.xml")["tool_output.rocprof_output"] == str(kept)
    assert not list((pytester.path / "pkg").rglob("rocprofv3.argv"))  # the model dir is gone, the output kept


def test_library_tracers_and_the_power_sampler_write_their_csvs(pytester, python_image):
    pkg = tool_package(pytester.path / "pkg", python_image)
    tools = "[{'name': 'rocblas_trace'}, {'name': 'miopen_trace'}, {'name': 'gpu_info_power_profiler'}]"
    result = run_with_tools(pytester, pkg, tools)
    result.assert_outcomes(passed=1)
    kept = pytester.path / "mad_logs" / "prof.run.tools"
    with (kept / "library_trace.csv").open(newline="") as handle:
        rows = {(row["library"], row["config"]): row for row in csv.DictReader(handle)}
    gemm = "./rocblas-bench -f gemm -r f32_r --transposeA N --transposeB N -m 128 -n 128 -k 128"
    assert rows[("rocblas", gemm)]["calls"] == "2" and rows[("rocblas", gemm)]["model"] == "prof"
    assert rows[("miopen", "./bin/MIOpenDriver conv -n 32 -c 3 -H 224 -W 224")]["calls"] == "1"
    with (kept / "gpu_info_power_profiler_output.csv").open(newline="") as handle:
        samples = list(csv.DictReader(handle))
    assert samples and {(s["device"], s["power_w"]) for s in samples} == {("0", "301.5"), ("1", "120.25")}
    properties = junit_properties(pytester.path / "junit.xml")
    assert properties["tool_output.library_trace.csv"].endswith("prof.run.tools/library_trace.csv")
    assert properties["performance"] == "42"


def test_madengines_agent_tools_and_therock_check(pytester, python_image):
    pkg = tool_package(pytester.path / "pkg", python_image)
    result = run_with_tools(pytester, pkg, "[{'name': 'therock_check'}, {'name': 'rocprofv3_agent_counter'}]")
    result.assert_outcomes(passed=1)
    argv = (pytester.path / "mad_logs" / "prof.run.tools" / "rocprof_output" / "rocprofv3.argv").read_text().split()
    assert argv[:argv.index("--")] == ["--runtime-trace", "--stats", "--kernel-trace", "--output-format", "csv", "-d",
                                       "./rocprof_output", "-o", "rocprofv3_output", "-i",
                                       ".mad_tools/counters/instruction_mix.txt"]
    log = (pytester.path / "mad_logs" / "prof.run.log").read_text()
    assert "therock_check: no TheRock installation detected" in log  # the pre script ran in the container
