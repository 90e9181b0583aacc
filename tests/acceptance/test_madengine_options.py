"""madengine's run options that had no counterpart: --mad-summary-output, --mad-data-config,
--mad-tools-config, --mad-force-mirror-local (each with its ini twin), on real Docker runs."""
from __future__ import annotations

import json

import pytest

from .conftest import AMD_CPU, card, write_card_package

pytestmark = pytest.mark.docker
BASE = ["--mad-gpus", "none", "-p", "no:cacheprovider", AMD_CPU, "--mad-tags", "tiny"]


def test_summary_json_and_another_tools_file(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("fine", "scripts/ok.sh"), card("broken", "scripts/bad.sh")],
                             {"scripts/ok.sh": 'echo "marker=$TOOL_MARK"; echo performance: 3.5 ops\n',
                              "scripts/bad.sh": "exit 4\n"})
    tools = pytester.path / "my-tools.json"
    tools.write_text(json.dumps({"tools": {"marker": {"cmd": "", "env_vars": {"TOOL_MARK": "from-my-tools"}}}}))
    context = AMD_CPU.replace("}", ", 'tools': [{'name': 'marker'}]}")
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE, context, "--mad-tools-config",
                                           str(tools), "--mad-summary-output", "summary.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert summary["total_runs"] == 2 and [r["model"] for r in summary["failed_runs"]] == ["broken"]
    (fine,) = summary["successful_runs"]
    assert (fine["model"], fine["status"], fine["performance"]) == ("fine", "SUCCESS", "3.5")
    assert "exit code 4" in summary["failed_runs"][0]["error"]
    assert "marker=from-my-tools" in (pytester.path / "mad_logs" / "fine.run.log").read_text()


def test_missing_config_files_are_usage_errors_naming_the_option(pytester: pytest.Pytester) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("fine", "scripts/ok.sh")], {"scripts/ok.sh": "true\n"})
    for option in ("--mad-data-config", "--mad-tools-config", "--mad-force-mirror-local"):
        result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE, option, "no-such-path")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"{option} (ini " in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_ini_twins_of_data_config(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("with_data", "scripts/ok.sh", data="ds")],
                             {"scripts/ok.sh": 'cat "$MAD_DATAHOME/hello.txt"; echo performance: 1 ops\n'})
    host = pytester.path / "host-data"
    host.mkdir()
    (host / "hello.txt").write_text("data-from-the-other-config\n")
    (pytester.path / "alt-data.json").write_text(json.dumps({"ds": {"local": {"path": str(host)}}}))
    pytester.makeini(f"[pytest]\nmad_data_config = {pytester.path / 'alt-data.json'}\n")
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "data-from-the-other-config" in (pytester.path / "mad_logs" / "with_data.run.log").read_text()


def test_madengines_scripts_common_paths_run_the_shipped_equivalents(pytester: pytest.Pytester,
                                                                       busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("common_paths", "scripts/ok.sh")],
                             {"scripts/ok.sh": "ls -d rocenv_info && echo performance: 1 ops\n"})
    context = AMD_CPU.replace("}", ", 'pre_scripts': [{'path': 'scripts/common/pre_scripts/run_rocenv_tool.sh', "
                                   "'args': 'rocenv_info lite'}, {'path': 'scripts/common/tools/detect_therock.sh'}]}")
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE, context, "--mad-no-sys-env")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    log = (pytester.path / "mad_logs" / "common_paths.run.log").read_text()
    assert "system environment (lite)" in log and "therock_check: no TheRock installation detected" in log
