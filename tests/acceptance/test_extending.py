"""EXTENDING.md, run as written: a conftest target without containers and a JSON-lines sink,
using only the names of ``pytest_madengine.__all__``, in a session that cannot reach Docker."""
from __future__ import annotations

import ast
import csv
import json
import re

import pytest

import pytest_madengine

from .conftest import REPO, card, write_card_package

EXTENDING = REPO / "EXTENDING.md"


def conftest_from_extending() -> str:
    blocks = re.findall(r"```python\n(.*?)```", EXTENDING.read_text(), flags=re.S)
    conftests = [block for block in blocks if block.startswith("# conftest.py")]
    assert len(conftests) == 1, "EXTENDING.md has one conftest.py block"
    return conftests[0]


def test_the_walkthrough_imports_only_public_names() -> None:
    tree = ast.parse(conftest_from_extending())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "pytest_madengine" for alias in node.names}
    assert imported and imported <= set(pytest_madengine.__all__)
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("pytest_madengine.")]
    for name in pytest_madengine.__all__:
        assert getattr(pytest_madengine, name) is not None


def test_conftest_target_and_sink_run_without_docker(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    package = write_card_package(pytester.path / "pkg", [
        card("fast", "scripts/fast/run.sh", n_gpus="0"),
        card("broken", "scripts/broken/run.sh", n_gpus="0"),
    ], {"scripts/fast/run.sh": 'echo "model $MAD_MODEL_NAME"\necho "performance: 42.5 samples_per_second"\n',
        "scripts/broken/run.sh": 'echo "loading weights"\necho "RuntimeError: out of memory" >&2\nexit 3\n'})
    (package / "conftest.py").write_text(conftest_from_extending())
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = pytester.runpytest_subprocess(
        "--mad-package", str(package), "--mad-tags", "all", "--mad-target", "subprocess",
        "--mad-gpus", "none", "--mad-history", "none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "Traceback" not in output
    assert "Docker" not in output  # no build line, no daemon error: the engine was never asked
    assert "broken failed (phase run)" in output and "out of memory" in output  # the log tail
    lines = [json.loads(line) for line in (pytester.path / "results.jsonl").read_text().splitlines()]
    assert {(r["model"], r["status"]) for r in lines} == {("fast", "SUCCESS"), ("broken", "FAILURE")}
    assert next(r for r in lines if r["model"] == "fast")["performance"] == "42.5"
    assert "2 result(s) streamed to" in output  # the sink's finish() lines join the summary
    with (pytester.path / "perf.csv").open(newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert rows["fast"]["performance"] == "42.5" and rows["fast"]["docker_image"] == ""
    assert rows["broken"]["status"] == "FAILURE"


def test_old_make_target_signature_still_works(pytester: pytest.Pytester) -> None:
    """An implementation written for ``(name, settings)`` (before ``config`` was added)."""
    package = write_card_package(pytester.path / "pkg", [card("m", "scripts/m/run.sh", n_gpus="0")],
                                 {"scripts/m/run.sh": 'echo "performance: 1 x"\n'})
    source = conftest_from_extending().replace(
        "def pytest_madengine_make_target(name: str, settings: TargetSettings, config) -> Target | None:",
        "def pytest_madengine_make_target(name, settings):")
    assert "def pytest_madengine_make_target(name, settings):" in source
    (package / "conftest.py").write_text(source)
    result = pytester.runpytest_subprocess("--mad-package", str(package), "--mad-tags", "all",
                                           "--mad-target", "subprocess", "--mad-gpus", "none",
                                           "--mad-history", "none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
