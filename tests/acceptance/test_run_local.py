"""Models built and run for real in Docker through full pytest sessions."""
from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.junit_records import model_properties

from .conftest import AMD_CPU, card, write_card_package

pytestmark = pytest.mark.docker

PERF_COLUMNS = [
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags",
    "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name",
    "deployment_type", "launcher", "gpu_architecture", "performance", "metric", "relative_change",
    "status", "build_duration", "test_duration", "dataname", "data_provider_type", "data_size",
    "data_download_duration", "build_number", "additional_docker_run_options",
]


def read_perf(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == PERF_COLUMNS
        return list(reader)


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {case.get("name"): case for case in root.iter("testcase")}


def test_example_package_end_to_end(pytester: pytest.Pytester, example_package: Path,
                                    busybox_image: str) -> None:
    result = pytester.runpytest("--mad-package", str(example_package), "--mad-tags", "dummies",
                                "--mad-context-file", str(example_package / "context.cpu.json"),
                                "--mad-gpus", "none", "--junitxml", "junit.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*MAD results*", "*dummy2/model1*SUCCESS*1234*"])
    rows = read_perf(pytester.path / "perf.csv")
    by_model = {row["model"]: row for row in rows}
    assert sorted(by_model) == sorted(["dummy", "dummy_multi_bs1", "dummy_multi_bs8", "dummy2/model1",
                                       "dummy3/model3_bs1", "dummy3/model3_bs16"])
    dummy = by_model["dummy"]
    assert dummy["status"] == "SUCCESS"
    assert (dummy["performance"], dummy["metric"]) == ("42.5", "samples_per_second")
    assert dummy["docker_image"] == "ci-dummy_dummy.ubuntu.amd"
    assert dummy["docker_file"].endswith("docker/dummy.ubuntu.amd.Dockerfile")
    assert dummy["docker_sha"].startswith("sha256:")
    assert dummy["tags"] == "dummies,inference"
    assert dummy["deployment_type"] == "local"
    assert float(dummy["test_duration"]) > 0
    assert by_model["dummy_multi_bs8"]["performance"] == "655.0"
    assert by_model["dummy_multi_bs8"]["metric"] == "tokens_per_second"
    assert by_model["dummy3/model3_bs16"]["args"] == "--batch-size 16"
    entry = read_perf(pytester.path / "perf_entry.csv")
    assert len(entry) == len(rows)
    cases = junit_cases(pytester.path / "junit.xml")
    props = model_properties(pytester.path / "junit.xml", "dummy2/model1")
    assert props["performance"] == "1234" and props["metric"] == "tokens_per_second"
    assert props["status"] == "SUCCESS" and props["docker_image"] == "ci-dummy2_model1_dummy.ubuntu.amd"
    for key in ("gpu_architecture", "n_gpus", "build_duration", "test_duration"):
        assert key in props
    assert "performance: 1234 tokens_per_second" in cases["dummy2/model1"].findtext("system-out")


def test_failures_are_recorded_with_phase_and_log_tail(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [
        card("ok", "scripts/ok.sh"),
        card("exit1", "scripts/exit1.sh"),
        card("noperf", "scripts/noperf.sh"),
        card("slow", "scripts/slow.sh", timeout=2),
        card("nodocker", "scripts/ok.sh", dockerfile="docker/missing"),
    ], {
        "scripts/ok.sh": "echo performance: 3.5 ops\n",
        "scripts/exit1.sh": "echo about to fail\necho performance: 1 ops\nexit 3\n",
        "scripts/noperf.sh": "echo nothing to see\n",
        "scripts/slow.sh": "sleep 60\n",
    })
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "all", AMD_CPU, "--mad-gpus",
                                "none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3, errors=1)
    out = result.stdout.str()
    assert "about to fail" in out and "exit" in out
    assert "timed out after 2 s" in out
    assert "no performance" in out
    assert "docker/missing" in out
    assert "Traceback" not in out
    rows = {row["model"]: row for row in read_perf(pytester.path / "perf.csv")}
    assert rows["ok"]["status"] == "SUCCESS"
    for name in ("exit1", "noperf", "slow", "nodocker"):
        assert rows[name]["status"] == "FAILURE", name
    import docker

    # Only this test's models: other sessions may share the engine (parallel CI jobs, developers).
    models = {"ok", "exit1", "noperf", "slow", "nodocker"}
    leftovers = [c for c in docker.from_env().containers.list(all=True, filters={"label": "pytest-madengine.session"})
                 if c.labels.get("pytest-madengine.model") in models]
    assert leftovers == []


def test_second_session_reuses_images(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("ok", "scripts/ok.sh")],
                             {"scripts/ok.sh": "echo performance: 3.5 ops\n"})
    args = ["--mad-package", str(pkg), "--mad-tags", "ok", AMD_CPU, "--mad-gpus", "none", "-p",
            "no:cacheprovider"]
    pytester.runpytest(*args).assert_outcomes(passed=1)
    second = pytester.runpytest(*args, "-v")
    second.assert_outcomes(passed=1)
    rows = read_perf(pytester.path / "perf.csv")
    assert rows[0]["docker_sha"] == rows[1]["docker_sha"]
    assert float(rows[1]["build_duration"]) == 0.0  # reused, not rebuilt


def test_package_conftest_fixture_and_hook_apply(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("envy", "scripts/env.sh")],
                             {"scripts/env.sh": 'echo "performance: $FROM_HOOK ops"\n'})
    (pkg / "conftest.py").write_text(
        "import pytest\n"
        "def pytest_madengine_docker_run_options(card, context, options):\n"
        "    options.setdefault('environment', {})['FROM_HOOK'] = '77'\n"
        "@pytest.fixture\n"
        "def mad_result(mad_result):\n"
        "    mad_result.metric = mad_result.metric.upper()\n"
        "    return mad_result\n")
    # Run from a different directory: the package conftest.py is still loaded.
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "envy", AMD_CPU, "--mad-gpus",
                                "none", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*envy*SUCCESS*77*OPS*"])


def test_sigint_leaves_no_container(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("sleeper", "scripts/sleep.sh")],
                             {"scripts/sleep.sh": "echo started\nsleep 120\n"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--mad-package", str(pkg), "--mad-tags", "sleeper", AMD_CPU,
         "--mad-gpus", "none", "-p", "no:cacheprovider"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import docker

    client = docker.from_env()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not client.containers.list(
            filters={"label": "pytest-madengine.model=sleeper"}):
        time.sleep(0.2)
    assert client.containers.list(filters={"label": "pytest-madengine.model=sleeper"}), "never started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert client.containers.list(all=True, filters={"label": "pytest-madengine.model=sleeper"}) == []



def test_an_image_with_a_non_root_user_runs_the_model_as_root(pytester: pytest.Pytester, busybox_image: str) -> None:
    from .conftest import card, write_card_package

    pkg = write_card_package(pytester.path / "pkg", [card("as_root", "scripts/uid.sh")],
                             {"scripts/uid.sh": "echo performance: $(( $(id -u) + 7 )) uid_plus_7\n"})
    dockerfile = pkg / "docker" / "tiny.ubuntu.amd.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "USER 65534\n")  # nobody
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-gpus", "none", AMD_CPU,
                                           "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    assert read_perf(pytester.path / "perf.csv")[0]["performance"] == "7"  # uid 0: madengine's -u root


def test_no_unclosed_client_or_file_under_w_error(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("w_error_a", "scripts/ok.sh"), card("w_error_b", "scripts/ok.sh")],
                             {"scripts/ok.sh": "echo performance: 2 ops\n"})
    result = pytester.runpytest_subprocess("-W", "error", "--mad-package", str(pkg), "--mad-tags", "tiny",
                                           "--mad-gpus", "none", AMD_CPU, "-p", "no:cacheprovider",
                                           "--mad-clean-cache")  # a fresh build: the BuildKit process too
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 0 and "ResourceWarning" not in text, text
    result.assert_outcomes(passed=2)
