"""What the one-home-per-concern structure gives users: the package conftest from anywhere, node
ids that round-trip, --deselect / --lf, and targets added by a conftest through a hook."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import AMD_CPU, card, write_card_package

HOOK_CONFTEST = """
import os

def pytest_madengine_adjust_context(config, context):
    with open(os.environ["MAD_HOOK_LOG"], "a") as log:
        log.write("adjust_context\\n")
"""


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line and not line.startswith(("ERROR", "FAILED"))]


@pytest.mark.parametrize("start_in", ["outside", "inside"])
def test_package_conftest_hook_runs_from_outside_and_inside(pytester: pytest.Pytester, example_package: Path,
                                                            monkeypatch: pytest.MonkeyPatch, start_in: str) -> None:
    (example_package / "conftest.py").write_text(HOOK_CONFTEST)
    log = pytester.path / "hook.log"
    monkeypatch.setenv("MAD_HOOK_LOG", str(log))
    if start_in == "inside":
        monkeypatch.chdir(example_package)
        args = ["--mad-tags", "dummy"]
    else:
        args = ["--mad-package", str(example_package), "--mad-tags", "dummy"]
    result = pytester.runpytest_subprocess(*args, "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert log.read_text() == "adjust_context\n"


def test_a_printed_node_id_selects_exactly_that_model(pytester: pytest.Pytester, example_package: Path) -> None:
    base = ["--mad-package", str(example_package), "--collect-only", "-q"]
    listed = collected_ids(pytester.runpytest(*base, "--mad-tags", "all"))
    assert len(listed) == 5
    for nodeid in (listed[0], listed[3]):
        again = pytester.runpytest(*base, nodeid)
        assert again.ret == 0, again.stdout.str()
        assert collected_ids(again) == [nodeid]


def test_deselect_removes_one_model(pytester: pytest.Pytester, example_package: Path) -> None:
    base = ["--mad-package", str(example_package), "--mad-tags", "all", "--collect-only", "-q"]
    listed = collected_ids(pytester.runpytest(*base))
    result = pytester.runpytest(*base, "--deselect", listed[1])
    assert collected_ids(result) == [nodeid for nodeid in listed if nodeid != listed[1]]
    result.stdout.fnmatch_lines(["*4/5 tests collected (1 deselected)*"])


def test_named_test_files_run_beside_the_models_only_when_named(pytester: pytest.Pytester,
                                                                example_package: Path) -> None:
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    pytester.makeini("[pytest]\ntestpaths = .\n")
    base = ["--mad-package", str(example_package), "--mad-tags", "dummy", "--collect-only", "-q"]
    assert collected_ids(pytester.runpytest(*base)) == ["hub/models.json::dummy"]
    assert collected_ids(pytester.runpytest(*base, "test_other.py")) == [
        "test_other.py::test_other", "hub/models.json::dummy"]


TOY_TARGET = """
import pytest
from pytest_madengine.records import ImageRef
from pytest_madengine.workload.run import RunOutcome

class ToyTarget:
    name = "toy"
    deployment_type = "toy"

    def __init__(self, settings):
        self.settings = settings
        self.events = []

    def sweep_stale(self):
        self.events.append("sweep_stale")
        return 0

    def run(self, request):
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text(f"toy ran {request.card.name}\\nperformance: 42 toys/s\\n")
        return RunOutcome(exit_code=0, log_path=request.log_path, duration=0.01)

    def cancel_all(self):
        self.events.append("cancel_all")

    def close(self):
        self.events.append("close")
        with open("lifecycle.log", "a") as log:
            log.write(" ".join(self.events) + "\\n")

def pytest_madengine_make_target(name, settings):
    if name == "toy":
        return ToyTarget(settings)

@pytest.fixture
def mad_image():
    return ImageRef(name="toy-image")
"""


def test_a_conftest_target_runs_a_model(pytester: pytest.Pytester) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("toy_model", "scripts/run.sh")],
                             {"scripts/run.sh": "exit 0\n"})
    (pkg / "conftest.py").write_text(TOY_TARGET)
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "toy_model", "--mad-target", "toy",
                                AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    rows = (pytester.path / "perf.csv").read_text().splitlines()
    assert len(rows) == 2
    header, row = rows[0].split(","), rows[1].split(",")
    values = dict(zip(header, row))
    assert (values["model"], values["performance"], values["metric"]) == ("toy_model", "42", "toys/s")
    assert values["deployment_type"] == "toy" and values["status"] == "SUCCESS"
    assert (pytester.path / "lifecycle.log").read_text() == "sweep_stale cancel_all close\n"


def test_result_recorded_hook_sees_each_result_on_the_controller(pytester: pytest.Pytester) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("toy_model", "scripts/run.sh")],
                             {"scripts/run.sh": "exit 0\n"})
    (pkg / "conftest.py").write_text(TOY_TARGET + """
def pytest_madengine_result_recorded(config, result):
    with open("recorded.jsonl", "a") as out:
        import json
        out.write(json.dumps({"nodeid": result.nodeid, "status": result.status}) + "\\n")
""")
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "toy_model", "--mad-target", "toy",
                                AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1)
    lines = (pytester.path / "recorded.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"nodeid": "pkg/models.json::toy_model", "status": "SUCCESS"}]
    assert os.path.exists(pytester.path / "perf_entry.csv")
