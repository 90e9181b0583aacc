"""Full sessions: madengine's results files, extra columns, launcher/pipeline, failure types by
phase, and a BuildKit Dockerfile (cache mount + tools context) built once and reused."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_madengine.results.sinks.perfcsv import read_rows

from .conftest import AMD_CPU, card, write_card_package

pytestmark = pytest.mark.docker


def test_session_writes_madengines_results_files(pytester: pytest.Pytester, busybox_image: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("pipeline", "nightly")
    pkg = write_card_package(pytester.path / "pkg", [
        card("ok", "scripts/ok.sh"),
        card("multi", "scripts/multi.sh", multiple_results="res.csv"),
        card("slow", "scripts/slow.sh", timeout=2),
        card("nodocker", "scripts/ok.sh", dockerfile="docker/missing"),
    ], {
        "scripts/ok.sh": "echo performance: 3.5 ops\n",
        "scripts/multi.sh": "printf 'model,performance,metric,temperature\\na,1.5,tok/s,71\\nb,2,tok/s,69\\n' > res.csv\n",
        "scripts/slow.sh": "sleep 60\n",
    })
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "all", AMD_CPU, "--mad-gpus", "none",
                                "--junitxml", "junit.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*4 model runs: 2 passed, 2 failed (1 build, 1 timeout), 0 skipped*",
                                 "*record(s) added to *perf_super.json*"])
    rows = {row["model"]: row for row in read_rows(pytester.path / "perf.csv")}
    assert list(next(iter(rows.values())))[29:] == ["temperature"]  # the extra column, after the 29
    assert (rows["multi_a"]["temperature"], rows["multi_b"]["temperature"], rows["ok"]["temperature"]) == \
        ("71", "69", "")
    assert rows["ok"]["launcher"] == "docker" and rows["ok"]["pipeline"] == "nightly"
    assert rows["ok"]["docker_sha"].startswith("sha256:")  # the busybox base image's digest
    records = json.loads((pytester.path / "perf_super.json").read_text())
    assert sorted(r["model"] for r in records) == ["multi_a", "multi_b", "nodocker", "ok", "slow"]
    multi = next(r for r in records if r["model"] == "multi_a")
    assert multi["multi_results"] == {"temperature": 71} and multi["configs"] is None
    assert {path.name for path in pytester.path.glob("perf*")} >= {
        "perf.csv", "perf_entry.csv", "perf_entry.json", "perf_super.json", "perf_super.csv",
        "perf_entry_super.json", "perf_entry_super.csv"}
    common = json.loads((pytester.path / "common_info.json").read_text())
    assert "model" not in common and common["launcher"] == "docker"
    cases = {case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert cases["slow"].find("failure").get("type") == "mad.timeout"  # type: ignore[union-attr]
    assert cases["nodocker"].find("error").get("type") == "mad.build"  # type: ignore[union-attr]


BUILDKIT_DOCKERFILE = """# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}
ARG BASE_DOCKER=mad-test/busybox:latest
FROM $BASE_DOCKER
RUN --mount=type=cache,target=/root/.cache echo warm > /root/.cache/x && cp /root/.cache/x /warm.txt
COPY --from=tools perf.sh /opt/perf.sh
"""


def test_buildkit_dockerfile_builds_runs_and_is_reused(pytester: pytest.Pytester, busybox_image: str,
                                                       docker_engine) -> None:
    name = f"bk{pytester.path.name[-8:].replace('-', '').replace('_', '')}".lower()
    pkg = write_card_package(pytester.path / "pkg", [card(name, "scripts/run.sh", dockerfile="docker/bk")],
                             {"scripts/run.sh": "cat /warm.txt\nsh /opt/perf.sh\n",
                              "docker/common/perf.sh": "echo performance: 7 tools_ops\n"})
    (pkg / "docker" / "bk.ubuntu.amd.Dockerfile").write_text(BUILDKIT_DOCKERFILE)
    try:
        for session in (1, 2):
            result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", name, AMD_CPU, "--mad-gpus",
                                        "none", "-p", "no:cacheprovider")
            result.assert_outcomes(passed=1)
        first, second = read_rows(pytester.path / "perf.csv")
        assert first["performance"] == second["performance"] == "7" and first["metric"] == "tools_ops"
        assert float(first["build_duration"]) > 0 and second["build_duration"] == "0.00"  # nothing rebuilt
    finally:
        docker_engine.images.remove(f"ci-{name}_bk.ubuntu.amd", force=True)
