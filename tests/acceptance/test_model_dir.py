"""What goes into a model's container besides its scripts: profiling tools and a cloned url."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_gitclone import make_repo

from .conftest import card, write_card_package
from .test_run_local import junit_cases, read_perf

pytestmark = pytest.mark.docker

TOOLS = {"tools": {
    "tracer": {"cmd": "env TRACE_ON=1", "env_vars": {"TOOL_A": "a", "SHARED": "tracer"},
               "pre_scripts": [{"path": "scripts/common/pre_scripts/say.sh", "args": "pre tracer"}],
               "post_scripts": [{"path": "scripts/common/post_scripts/tell.sh", "args": "post tracer"}]},
    "power": {"cmd": "env POWER_ON=1", "env_vars": {"SHARED": "power"},
              "pre_scripts": [{"path": "scripts/common/pre_scripts/say.sh", "args": "pre power"}],
              "post_scripts": [{"path": "scripts/common/post_scripts/tell.sh", "args": "post power"}]},
}}
MODEL = 'echo "model TRACE_ON=$TRACE_ON POWER_ON=$POWER_ON TOOL_A=$TOOL_A SHARED=$SHARED EXTRA=$EXTRA"\n' \
        'echo "performance: 7 ops"\n'


def run(pytester: pytest.Pytester, package: Path, tags: str, context: dict, *extra: str):
    return pytester.runpytest("--mad-package", str(package), "--mad-tags", tags, f"--mad-context={context!r}",
                              "--mad-gpus", "none", "--mad-log-dir", "logs", "--junitxml", "junit.xml",
                              "--mad-no-sys-env", "-p", "no:cacheprovider", *extra)


def test_tools_wrap_the_model_and_stack_their_scripts(pytester: pytest.Pytester, busybox_image: str) -> None:
    package = write_card_package(pytester.path / "pkg", [card("prof", "scripts/prof/run.sh")], {
        "scripts/prof/run.sh": MODEL,
        "scripts/common/tools.json": json.dumps(TOOLS),
        "scripts/common/pre_scripts/say.sh": 'echo "$1 $2"\n',
        "scripts/common/post_scripts/tell.sh": 'echo "$1 $2"\n',
        "scripts/common/pre_scripts/context.sh": 'echo "pre context"\n',
    })
    context = {"gpu_vendor": "AMD", "guest_os": "UBUNTU",
               "pre_scripts": [{"path": "scripts/common/pre_scripts/context.sh"}],
               "tools": [{"name": "tracer"}, {"name": "power", "env_vars": {"EXTRA": "x"}}]}
    run(pytester, package, "prof", context).assert_outcomes(passed=1)
    log = (pytester.path / "logs" / "prof.run.log").read_text().splitlines()
    assert log == ["pre power", "pre tracer", "pre context",
                   "model TRACE_ON=1 POWER_ON=1 TOOL_A=a SHARED=power EXTRA=x", "performance: 7 ops",
                   "post tracer", "post power"]
    assert read_perf(pytester.path / "perf.csv")[0]["performance"] == "7"


def test_an_unknown_tool_fails_the_model_with_the_nearest_name(pytester: pytest.Pytester,
                                                                busybox_image: str) -> None:
    package = write_card_package(pytester.path / "pkg", [card("prof", "scripts/prof/run.sh")], {
        "scripts/prof/run.sh": MODEL, "scripts/common/tools.json": json.dumps(TOOLS)})
    result = run(pytester, package, "prof", {"gpu_vendor": "AMD", "tools": [{"name": "tracr"}]})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*tool 'tracr' is neither in the package's scripts/common/tools.json nor in*did you mean tracer*"])
    assert "Traceback" not in result.stdout.str()
    assert read_perf(pytester.path / "perf.csv")[0]["status"] == "FAILURE"


def test_cards_with_a_url_run_in_a_clone_and_record_its_commit(pytester: pytest.Pytester,
                                                               busybox_image: str) -> None:
    head = make_repo(pytester.path / "upstream", "library from upstream")
    url = str(pytester.path / "upstream")
    script = 'cat lib.txt; echo; ls ../run_directory >/dev/null; echo "performance: 3 ops"\n'
    package = write_card_package(pytester.path / "pkg", [
        card("first", "scripts/cloned/run.sh", url=url), card("second", "scripts/cloned/run.sh", url=url),
        card("local", "scripts/plain/run.sh")],
        {"scripts/cloned/run.sh": script, "scripts/plain/run.sh": 'echo "performance: 1 ops"\n'})
    run(pytester, package, "tiny", {"gpu_vendor": "AMD"}).assert_outcomes(passed=3)
    rows = {row["model"]: row for row in read_perf(pytester.path / "perf.csv")}
    assert rows["first"]["git_commit"] == rows["second"]["git_commit"] == head
    assert rows["local"]["git_commit"] == ""
    assert "library from upstream" in (pytester.path / "logs" / "first.run.log").read_text()
    assert not (package / "lib.txt").exists()  # cloned into the run's model dir, not the package


def test_an_unreachable_url_is_a_failure_without_its_token(pytester: pytest.Pytester, busybox_image: str) -> None:
    url = "https://someone:s3cret-token@127.0.0.1:9/org/repo.git"
    package = write_card_package(pytester.path / "pkg", [card("gone", "scripts/gone/run.sh", url=url)],
                                 {"scripts/gone/run.sh": 'echo "performance: 1 ops"\n'})
    result = run(pytester, package, "gone", {"gpu_vendor": "AMD"})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*field 'url'*git clone of https://***@127.0.0.1:9/org/repo.git failed*"])
    assert read_perf(pytester.path / "perf.csv")[0]["status"] == "FAILURE"
    for written in (pytester.path / "perf.csv", pytester.path / "junit.xml"):
        assert "s3cret" not in written.read_text()
    assert "s3cret" not in result.stdout.str()
    assert "gone" in junit_cases(pytester.path / "junit.xml")
