"""Context ``tools`` stacked from the package's scripts/common/tools.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.scripts import Script
from pytest_madengine.workload.tools import apply_tools

TOOLS = {
    "tools": {
        "rocprof": {"cmd": "rocprof --stats", "env_vars": {"PROF": "1", "SHARED": "rocprof"},
                    "pre_scripts": [{"path": "scripts/common/pre_scripts/prof.sh", "args": "start"}],
                    "post_scripts": [{"path": "scripts/common/post_scripts/prof.sh", "args": "stop"}]},
        "power": {"cmd": "python3 ../scripts/common/tools/power.py", "env_vars": {"SHARED": "power"},
                  "pre_scripts": [{"path": "scripts/common/pre_scripts/power.sh"}],
                  "post_scripts": [{"path": "scripts/common/post_scripts/power.sh"}]},
        "plain": {},
    }
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    common = tmp_path / "scripts" / "common"
    for rel in ("pre_scripts/prof.sh", "post_scripts/prof.sh", "pre_scripts/power.sh", "post_scripts/power.sh",
                "pre_scripts/ctx.sh"):
        (common / rel).parent.mkdir(parents=True, exist_ok=True)
        (common / rel).write_text("echo hi\n")
    (common / "tools.json").write_text(json.dumps(TOOLS))
    return tmp_path


def apply(package: Path, entries, pre=None, post=None):
    return apply_tools(entries, package, model=["bash", "run.sh", "--x"], pre=pre or [], post=post or [])


def names(scripts) -> list[str]:
    return [f"{s.path.parent.name}/{s.path.name}:{s.args}" for s in scripts]


def test_no_tools_changes_nothing(package: Path) -> None:
    tooling = apply(package, None)
    assert tooling.model == ["bash", "run.sh", "--x"] and tooling.pre == [] and tooling.env == {}


def test_tools_stack_like_madengine(package: Path) -> None:
    context_pre = [Script(package / "scripts/common/pre_scripts/ctx.sh", "", "context")]
    tooling = apply(package, [{"name": "rocprof"}, {"name": "power"}], pre=context_pre)
    assert tooling.model == ["python3", "../scripts/common/tools/power.py", "rocprof", "--stats",
                             "bash", "run.sh", "--x"]  # the later tool wraps outermost
    assert names(tooling.pre) == ["pre_scripts/power.sh:", "pre_scripts/prof.sh:start", "pre_scripts/ctx.sh:"]
    assert names(tooling.post) == ["post_scripts/prof.sh:stop", "post_scripts/power.sh:"]
    assert tooling.env == {"PROF": "1", "SHARED": "power"}
    assert tooling.applied == ["rocprof", "power"]


def test_context_entry_overrides_cmd_and_adds_env(package: Path) -> None:
    tooling = apply(package, [{"name": "rocprof", "cmd": "rocprof --hip-trace", "env_vars": {"SHARED": "mine"}}])
    assert tooling.model[:2] == ["rocprof", "--hip-trace"]
    assert tooling.env == {"PROF": "1", "SHARED": "mine"}


def test_the_same_cmd_wraps_once(package: Path) -> None:
    tooling = apply(package, [{"name": "rocprof"}, {"name": "plain", "cmd": "rocprof --stats"}])
    assert tooling.model == ["rocprof", "--stats", "bash", "run.sh", "--x"]


def test_unknown_tool_names_the_nearest(package: Path) -> None:
    with pytest.raises(MadError) as error:
        apply(package, [{"name": "rocprf"}])
    assert "tool 'rocprf' is not in scripts/common/tools.json" in error.value.message
    assert "did you mean rocprof" in error.value.message


def test_missing_tools_file(tmp_path: Path) -> None:
    with pytest.raises(MadError, match="tools.json does not exist"):
        apply(tmp_path, [{"name": "rocprof"}])


@pytest.mark.parametrize("text, problem", [
    ('{"tools": [1, 2]}', "no 'tools' object"),
    ('{"tools": {"x": {"env_vars": [1]}}}', "env_vars is a list"),
    ('{"tools": {"x": {"pre_scripts": [{"path": "scripts/missing.sh"}]}}}', "does not name a file"),
    ('{"tools": {"x": {"cmd": "rocprof \'unbalanced"}}}', "cannot be split"),
])
def test_malformed_tools_file(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "scripts" / "common").mkdir(parents=True)
    (tmp_path / "scripts" / "common" / "tools.json").write_text(text)
    with pytest.raises(MadError, match=problem):
        apply(tmp_path, [{"name": "x"}])
