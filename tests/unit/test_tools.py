"""Context ``tools`` stacked from the package's scripts/common/tools.json over the shipped catalogue."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.scripts import Script
from pytest_madengine.workload.tools import CATALOGUE_DIR, apply_tools, load_tools

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
    assert "tool 'rocprf' is neither in the package's scripts/common/tools.json nor in" in error.value.message
    assert "did you mean rocprof" in error.value.message


def test_without_a_package_file_the_catalogue_serves(tmp_path: Path) -> None:
    tooling = apply(tmp_path, [{"name": "rocprofv3_compute"}])
    assert tooling.model == ["bash", ".mad_tools/rocprof_wrapper.sh", "--hip-trace", "--kernel-trace",
                             "-i", ".mad_tools/counters/compute_bound.txt", "--output-format", "pftrace",
                             "-d", "./rocprof_output", "--", "bash", "run.sh", "--x"]
    assert tooling.needs_catalogue and tooling.outputs == ["rocprof_output", "results.*"]


def test_a_package_entry_replaces_the_catalogues_and_the_rest_stays(package: Path) -> None:
    known = load_tools(package)
    assert not known["rocprof"].catalogue and known["rocprof"].spec["cmd"] == "rocprof --stats"
    assert known["rocblas_trace"].catalogue
    tooling = apply(package, [{"name": "rocprof"}])
    assert tooling.model[:2] == ["rocprof", "--stats"] and not tooling.needs_catalogue


@pytest.mark.parametrize("name", [
    "rocprof", "rocprofv3", "rocprofv3_compute", "rocprofv3_memory", "rocprofv3_communication", "rocprofv3_full",
    "rocprofv3_lightweight", "rocprofv3_perfetto", "rocprofv3_api_overhead", "rocprofv3_pc_sampling", "rpd",
    "rocm_trace_lite", "rocblas_trace", "hipblaslt_trace", "miopen_trace", "tensile_trace", "rccl_trace",
    "gpu_info_power_profiler", "gpu_info_vram_profiler", "nsys", "rocprofv3_agent", "rocprofv3_agent_counter"])
def test_every_catalogue_tool_names_shipped_helpers_and_outputs(tmp_path: Path, name: str) -> None:
    tooling = apply(tmp_path, [{"name": name}])
    helpers = [arg for arg in tooling.model if arg.startswith(".mad_tools/")]
    assert all((CATALOGUE_DIR / arg.removeprefix(".mad_tools/")).is_file() for arg in helpers)
    assert tooling.outputs and tooling.model[-3:] == ["bash", "run.sh", "--x"]


def test_library_tracers_share_one_wrapper_and_stack_their_flags(tmp_path: Path) -> None:
    tooling = apply(tmp_path, [{"name": "rocblas_trace"}, {"name": "miopen_trace"}])
    assert tooling.model == ["python3", ".mad_tools/library_trace.py", "--", "bash", "run.sh", "--x"]
    assert tooling.env == {"ROCBLAS_TRACE": "1", "MIOPEN_TRACE": "1"} and tooling.outputs == ["library_trace.csv"]


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


def test_madengines_multi_node_rule_for_rocprof_tools() -> None:
    import pytest as _pytest

    from pytest_madengine.workload.tools import ToolsWarning, multi_node_context

    context = {"gpu_vendor": "AMD", "tools": [{"name": "rocprof", "env_vars": {"A": "1"}}, {"name": "rccl_trace"},
                                              {"name": "rocprofv3_compute"}]}
    assert multi_node_context(context, 1, rocprofv3=False) is context  # one node: as given
    upgraded = multi_node_context(context, 2, rocprofv3=True)["tools"]
    assert upgraded == [{"name": "rocprofv3", "env_vars": {"A": "1"}}, {"name": "rccl_trace"},
                        {"name": "rocprofv3_compute"}]
    with _pytest.warns(ToolsWarning, match=r"rocprof, rocprofv3_compute left out of this 2-node run"):
        kept = multi_node_context(context, 2, rocprofv3=False)["tools"]
    assert kept == [{"name": "rccl_trace"}] and context["tools"][0]["name"] == "rocprof"  # the input is unchanged


def test_madengines_scripts_common_paths_resolve_or_name_the_tool(tmp_path: Path) -> None:
    from pytest_madengine.errors import MadError
    from pytest_madengine.workload.scripts import SHIPPED_DIR, package_scripts

    entries = [{"path": "scripts/common/pre_scripts/run_rocenv_tool.sh", "args": "sys_config_info lite"},
               {"path": "scripts/common/tools/detect_therock.sh"}]
    scripts = package_scripts(entries, tmp_path, "context 'pre_scripts'")
    assert [(s.path, s.args) for s in scripts] == [(SHIPPED_DIR / "sys_env.sh", "sys_config_info lite"),
                                                   (SHIPPED_DIR / "detect_therock.sh", "")]
    own = tmp_path / "scripts" / "common" / "pre_scripts"
    own.mkdir(parents=True)
    (own / "run_rocenv_tool.sh").write_text("echo mine\n")  # the package's own copy wins
    assert package_scripts(entries[:1], tmp_path, "x")[0].path == own / "run_rocenv_tool.sh"
    with pytest.raises(MadError, match=r"gpu_info_power_start.sh is madengine's own script.*"
                                       r"name the tool gpu_info_power_profiler in the context 'tools'"):
        package_scripts([{"path": "scripts/common/pre_scripts/gpu_info_power_start.sh"}], tmp_path, "x")
