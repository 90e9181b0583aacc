"""A new user's first hour (issue 20): bad options and unreachable backends are said once, before
any build, as usage errors; ``--mad-*`` options that select nothing say how to select models;
``--collect-only`` leaves the package and the working directory as they were."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import AMD_CPU

# The example's five dummies: a problem of the session must be said once, not once per model.
DUMMIES = ("--mad-tags", "dummies", AMD_CPU)


@pytest.fixture(autouse=True)
def _in_package(example_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(example_package)  # pytester runs the session where the user would: the package root


def _assert_one_usage_error(result: pytest.RunResult, needle: str) -> str:
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text, text
    assert "ERROR at setup" not in text and "MAD results" not in text, text
    assert text.count(needle) == 1, text
    return text


def _nothing_built(package: Path) -> None:
    assert not (package / "mad_logs").exists(), sorted(p.name for p in (package / "mad_logs").iterdir())
    assert not (package / "perf.csv").exists()
    assert not (package / ".mad").exists()  # no history session either


@pytest.mark.parametrize(("args", "needle"), [
    (["--mad-repeat", "0"], "--mad-repeat: '0' is not a run count"),
    (["--mad-repeat", "many"], "--mad-repeat: 'many' is not a run count"),
    (["--mad-max-cv", "5"], "--mad-max-cv: a coefficient of variation needs at least two runs"),
    (["--mad-fail-on-regression", "5"], "--mad-fail-on-regression: no baseline is chosen"),
    (["--mad-compare", "last", "--mad-history", "none"], "--mad-compare needs the history"),
    (["--mad-repeat", "3", "--mad-max-cv", "five"], "'five' is not a percentage"),
    (["--mad-compare", "last", "--mad-fail-on-regression", "-2"], "'-2' is not a percentage"),
    (["--mad-compare", "median:0"], "'median:0' is not a valid window"),
    (["--mad-compare", "0123abcd"], "has no session '0123abcd'"),
])
def test_bad_option_values_are_one_usage_error(pytester: pytest.Pytester, example_package: Path,
                                                args: list[str], needle: str) -> None:
    result = pytester.runpytest_subprocess(*DUMMIES, *args)
    text = _assert_one_usage_error(result, needle)
    assert "Fix:" in text
    _nothing_built(example_package)


def test_compare_with_a_session_the_history_has_is_accepted(pytester: pytest.Pytester,
                                                            example_package: Path) -> None:
    """The session-id check reads the history: an id it holds passes (collection goes on)."""
    from pytest_madengine.history.store import HistoryStore, SessionInfo

    history = example_package / ".mad" / "history.sqlite"
    with HistoryStore(history) as store:
        store.begin_session(SessionInfo(id="feedc0de01", started=1.0, host="h", target="local"))
    result = pytester.runpytest_subprocess(*DUMMIES, "--mad-compare", "feedc0de01", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*::dummy*"])


def test_mad_options_without_a_selection_say_how_to_select(pytester: pytest.Pytester,
                                                           example_package: Path) -> None:
    result = pytester.runpytest_subprocess("--mad-repeat", "2", "--mad-live-output")
    text = _assert_one_usage_error(result, "no MAD models are selected")
    assert "--mad-live-output, --mad-repeat given" in text and "--mad-tags" in text
    assert "no tests ran" not in text


def test_plain_pytest_is_untouched_by_the_plugin(pytester: pytest.Pytester) -> None:
    test_file = pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest_subprocess(str(test_file)).assert_outcomes(passed=1)


def _tree(root: Path) -> dict[str, float]:
    return {str(path.relative_to(root)): path.stat().st_mtime for path in sorted(root.rglob("*"))}


def test_collect_only_has_no_side_effects(pytester: pytest.Pytester, example_package: Path) -> None:
    before = _tree(example_package)
    # Other plugins' files (pytest's cache, pytest-benchmark's store) are theirs to keep.
    result = pytester.runpytest_subprocess(*DUMMIES, "--collect-only", "-p", "no:cacheprovider",
                                           "-p", "no:benchmark")
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, text + result.stderr.str()
    assert "<MadItem dummy>" in text and "MAD results" not in text and "history:" not in text
    assert _tree(example_package) == before  # no history, no perf.csv, no logs, no run_directory


# --- preflight: each target's backend is checked once, before any build ---------------------------
def test_docker_engine_absent_is_one_usage_error(pytester: pytest.Pytester, example_package: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    result = pytester.runpytest_subprocess(*DUMMIES)
    text = _assert_one_usage_error(result, "cannot reach the Docker daemon at unix:///nonexistent")
    assert "Fix: start dockerd" in text
    _nothing_built(example_package)


def test_sbatch_absent_is_one_usage_error(pytester: pytest.Pytester, example_package: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    empty = pytester.mkdir("empty-bin")
    monkeypatch.setenv("PATH", str(empty))
    result = pytester.runpytest_subprocess(*DUMMIES, "--mad-target", "slurm", "-p", "no:xdist")
    text = _assert_one_usage_error(result, "'sbatch' is not on PATH")
    assert "--mad-target slurm" in text and "Fix:" in text
    _nothing_built(example_package)


KUBECONFIG_DOWN = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:%d"}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("kubeconfig", "needle"), [
    ("garbage: [\n", "is not valid YAML"),
    (KUBECONFIG_DOWN, "does not answer"),
])
def test_kubernetes_backend_problems_are_one_usage_error(pytester: pytest.Pytester, example_package: Path,
                                                         kubeconfig: str, needle: str) -> None:
    path = pytester.path / "kubeconfig"
    path.write_text(kubeconfig % _closed_port() if "%d" in kubeconfig else kubeconfig)
    result = pytester.runpytest_subprocess(*DUMMIES, "--mad-target", "k8s", f"--mad-k8s-kubeconfig={path}",
                                           "-p", "no:xdist")
    text = _assert_one_usage_error(result, needle)
    assert str(path) in text and "Fix:" in text
    if "%d" in kubeconfig:
        assert "https://127.0.0.1:" in text  # the address
    _nothing_built(example_package)


# --- JUnit that CI reads right; output that cannot drive a terminal --------------------------------
COLOUR_BUILD = ("# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\nFROM mad-test/busybox:latest\n"
                "RUN printf '\\033[1;31mERROR\\033[0m: compiler \\001 exploded\\n'; exit 1\n")
COLOUR_RUN = "echo 'model line one'\nprintf '\\033[31mred\\033[0m \\033]0;pwned title\\007 bell\\001\\n'; exit 3\n"


@pytest.mark.docker
def test_coloured_failures_give_valid_junit_and_a_clean_terminal(pytester: pytest.Pytester,
                                                                 busybox_image: str) -> None:
    import xml.etree.ElementTree as ET

    from tests.acceptance.conftest import card, write_card_package
    from tests.junit_records import assert_valid_junit, model_properties

    pkg = write_card_package(pytester.path / "pkg", [card("broken_build", "scripts/ok.sh", dockerfile="docker/bad"),
                                                     card("colourful", "scripts/colour.sh"),
                                                     card("fine", "scripts/ok.sh")],
                             {"scripts/ok.sh": "echo 'performance: 7 runs'\n", "scripts/colour.sh": COLOUR_RUN})
    (pkg / "docker" / "bad.ubuntu.amd.Dockerfile").write_text(COLOUR_BUILD)
    result = pytester.runpytest_subprocess(f"--mad-package={pkg}", "--mad-tags", "tiny", AMD_CPU, "--mad-gpus", "none",
                                           "--junitxml", str(pytester.path / "junit.xml"), "-p", "no:cacheprovider")
    text = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert "\x1b" not in text and "\x07" not in text and "\x01" not in text  # nothing reaches the terminal raw
    assert "red  bell\\x01" in text and "ERROR: compiler \\x01 exploded" in text
    tail = text.split("--- last lines of the log ---", 1)[1].splitlines()
    assert tail[1] == "model line one"  # the model's lines, not the environment capture's banner
    log_line = next(line for line in text.splitlines() if line.startswith("log: "))
    assert Path(log_line.removeprefix("log: ")).is_file()  # the log: path shown exists
    summary = text.split("MAD results", 1)[1]
    assert "colourful" in summary and "broken_build" in summary
    junit = pytester.path / "junit.xml"
    assert_valid_junit(junit)
    root = ET.parse(junit).getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert {case.get("classname") for case in cases.values()} == {"pkg.models"}
    assert cases["broken_build"].find("error").get("type") == "mad.build"  # type: ignore[union-attr]
    assert cases["colourful"].find("failure").get("type") == "mad.run"  # type: ignore[union-attr]
    assert not any(case.find("properties") is not None for case in cases.values())
    assert model_properties(junit, "fine")["performance"] == "7"
    assert model_properties(junit, "colourful")["status"] == "FAILURE"


# --- progress of long phases; --mad-keep-alive ------------------------------------------------------
def _tiny_package(pytester: pytest.Pytester, script: str = "echo 'performance: 3 x'\n") -> Path:
    from tests.acceptance.conftest import card, write_card_package

    return write_card_package(pytester.path / "pkg", [card("tiny_model", "scripts/run.sh")],
                              {"scripts/run.sh": script})


@pytest.mark.docker
def test_a_build_says_it_started_and_ended(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = _tiny_package(pytester)
    result = pytester.runpytest_subprocess(f"--mad-package={pkg}", "--mad-tags", "tiny", AMD_CPU, "--mad-gpus", "none",
                                           "--mad-clean-cache", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    lines = result.stdout.lines
    start = [line for line in lines if line.startswith("build tiny_model: image ci-tiny_model_tiny.ubuntu.amd")]
    assert len(start) == 1 and "from docker/tiny.ubuntu.amd.Dockerfile, log " in start[0], "\n".join(lines)
    assert Path(start[0].rsplit("log ", 1)[1]).is_absolute() or (pytester.path / "hub" / start[0].rsplit("log ", 1)[1]).exists()
    assert any(line.startswith("build tiny_model: done after ") for line in lines)
    assert not any(line.startswith("Step 1/") for line in lines)  # the build's own output only with live output


@pytest.mark.docker
def test_live_output_streams_builds_and_runs_from_xdist_workers(pytester: pytest.Pytester,
                                                               busybox_image: str) -> None:
    pkg = _tiny_package(pytester, "printf 'from the model \\033[31mred\\033[0m\\n'\necho 'performance: 3 x'\n")
    result = pytester.runpytest_subprocess(f"--mad-package={pkg}", "--mad-tags", "tiny", AMD_CPU, "--mad-gpus", "none",
                                           "--mad-clean-cache", "--mad-live-output", "-n", "1", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    err = result.stderr.lines
    assert any(line.startswith("[gw0] build tiny_model: image ") for line in err), "\n".join(err)
    assert any(line.startswith(("[gw0] Step 1/", "[gw0] #1 ")) for line in err)  # the build's output (classic / BuildKit)
    assert "[gw0] from the model red" in err  # the run's output, colours neutralised
    assert "\x1b" not in result.stderr.str()


@pytest.mark.docker
def test_keep_alive_keeps_the_container_running_and_says_how_to_enter(pytester: pytest.Pytester,
                                                                      busybox_image: str, docker_engine) -> None:
    import re

    pkg = _tiny_package(pytester, "echo hello > left_behind.txt\necho 'performance: 3 x'\n")
    result = pytester.runpytest_subprocess(f"--mad-package={pkg}", "--mad-tags", "tiny", AMD_CPU, "--mad-gpus", "none",
                                           "--mad-keep-alive", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    match = re.search(r"container (mad-tiny_model-\S+) kept running \(--mad-keep-alive\); enter it with: "
                      r"docker exec -it (\S+) bash", result.stdout.str())
    assert match and match.group(1) == match.group(2), result.stdout.str()
    container = docker_engine.containers.get(match.group(1))
    try:
        assert container.status == "running"
        code, output = container.exec_run(["cat", "left_behind.txt"])
        assert (code, output) == (0, b"hello\n")  # what the model left, where it left it
    finally:
        container.remove(force=True)
