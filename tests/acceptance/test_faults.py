"""Faults and hostile inputs against real Docker sessions: each ends with results, leaks nothing.

One test (or more) per kind of issue 17: resources that run out (a real tmpfs), paths that leave
the package, signals and killed workers, logs shared between runs, and what can be refused before
any build. Every test asserts on its own session's files and containers only.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import AMD_CPU, card, write_card_package
from .test_run_local import junit_cases, read_perf

pytestmark = pytest.mark.docker

CANARY = "mad-canary-7f3e1c"
BASE = ["--mad-gpus", "none", "-p", "no:cacheprovider", AMD_CPU]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount small tmpfs filesystems under this test's tmp dir; all unmounted at teardown."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *, read_only: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def session_files_text(root: Path) -> str:
    """Everything the session left under ``root`` (its outputs), as one text."""
    parts = []
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size < 20_000_000:
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def own_containers(model: str) -> list:
    import docker

    return docker.from_env().containers.list(all=True, filters={"label": f"pytest-madengine.model={model}"})


# --- 1. resources run out ---------------------------------------------------------------------

def test_full_log_dir_ends_the_session_with_a_failure_row(pytester: pytest.Pytester, busybox_image: str,
                                                           tmpfs) -> None:
    logs = tmpfs("logs", "5m")
    pkg = write_card_package(pytester.path / "pkg", [card("chatty_fault", "scripts/chatty.sh", timeout=600),
                                                      card("quiet_fault", "scripts/quiet.sh")], {
        "scripts/chatty.sh": "i=0\nwhile [ $i -lt 8000 ]; do printf '%01000d\\n' 0; i=$((i+1)); done\n"
                             "echo performance: 5 ops\n",
        "scripts/quiet.sh": "echo performance: 6 ops\n"})
    started = time.monotonic()
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "tiny", "--mad-log-dir",
                                           str(logs), *BASE, timeout=240)
    assert time.monotonic() - started < 240
    rows = {row["model"]: row for row in read_perf(pytester.path / "perf.csv")}
    assert rows["chatty_fault"]["status"] == "FAILURE"
    assert "could not be written" in result.stdout.str() and "--mad-log-dir" in result.stdout.str()
    assert rows["quiet_fault"]["status"] in ("SUCCESS", "FAILURE")  # it ran: the session went on
    assert own_containers("chatty_fault") == []


@pytest.mark.parametrize("how", ["read-only", "full"])
def test_unwritable_perf_csv_is_a_usage_error_before_any_build(pytester: pytest.Pytester, tmpfs, how: str) -> None:
    out = tmpfs("out", "1m", read_only=how == "read-only")
    if how == "full":
        with open(out / "filler", "wb") as handle, pytest.raises(OSError):
            handle.write(b"\0" * (2 << 20))
            handle.flush()
    pkg = write_card_package(pytester.path / "pkg", [card("never_built", "scripts/ok.sh")],
                             {"scripts/ok.sh": "echo performance: 1 ops\n"})
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-perf-csv", str(out / "perf.csv"),
                                           *BASE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mad-perf-csv" in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_perf_csv_failing_mid_session_keeps_every_row(pytester: pytest.Pytester, busybox_image: str,
                                                       tmpfs) -> None:
    out = tmpfs("out", "256k")
    pkg = write_card_package(pytester.path / "pkg", [card("first_row", "scripts/a.sh"),
                                                      card("second_row", "scripts/b.sh")],
                             {"scripts/a.sh": "echo performance: 1 ops\n", "scripts/b.sh": "echo performance: 2 ops\n"})
    # After the first result is recorded the filesystem of perf.csv fills up.
    (pkg / "conftest.py").write_text(
        "def pytest_madengine_result_recorded(config, result):\n"
        f"    with open({str(out / 'filler')!r}, 'ab') as handle:\n"
        "        try:\n"
        "            handle.write(b'0' * (1 << 20))\n"
        "            handle.flush()\n"
        "        except OSError:\n"
        "            pass\n")
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "tiny", "--mad-perf-csv",
                                           str(out / "perf.csv"), "--junitxml", "junit.xml", "-p", "xdist",
                                           *BASE)
    text = result.stdout.str()
    assert "INTERNALERROR" not in text
    assert result.ret == pytest.ExitCode.OK, text
    assert set(junit_cases(pytester.path / "junit.xml")) == {"first_row", "second_row"}
    # Rows perf.csv lacks (if any) are in the fallback, and only those: the advice duplicates nothing.
    lacking = [line for line in text.splitlines() if "it lacks are in" in line]
    fallback = Path(lacking[0].split("it lacks are in")[1].strip()) if lacking else None
    missing = {row["model"] for row in read_perf(fallback)} if fallback else set()
    held = {row["model"] for row in read_perf(out / "perf.csv")} if (out / "perf.csv").exists() else set()
    assert missing | held == {"first_row", "second_row"} and not missing & held
    assert "perf_entry.csv could not be written" in text
    if not missing:
        assert "perf.csv holds all 2 row(s)" in text
    if fallback:
        os.unlink(fallback)


def test_full_disk_at_perf_entry_csv_blames_perf_entry_csv_only(tmpfs) -> None:
    from pytest_madengine.records import ModelResult
    from pytest_madengine.results.sinks.perfcsv import PerfCsvSink

    out = tmpfs("entry", "64k")
    fallback_dir = out.parent / "fallback"
    fallback_dir.mkdir()
    sink = PerfCsvSink(out / "perf.csv", fallback_dir=fallback_dir)
    for name in ("row_a", "row_b"):
        sink.record(ModelResult(model=name, status="SUCCESS", rows=[{"model": name, "performance": "1"}]))
    with open(out / "filler", "wb") as handle, pytest.raises(OSError):
        handle.write(b"\0" * (1 << 20))
        handle.flush()
    lines = sink.finish()
    assert [row["model"] for row in read_perf(out / "perf.csv")] == ["row_a", "row_b"]
    assert len(lines) == 1 and lines[0].startswith(f"{out / 'perf_entry.csv'} could not be written"), lines
    assert f"{out / 'perf.csv'} holds all 2 row(s)" in lines[0]
    assert list(fallback_dir.iterdir()) == []  # no fallback: perf.csv holds every row


def test_user_sizes_are_bounded_before_use(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("ok_bounds", "scripts/ok.sh")],
                             {"scripts/ok.sh": "echo performance: 1 ops\n"})
    started = time.monotonic()
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-gpus", "0-99999999", AMD_CPU,
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "larger than 1023" in result.stderr.str()
    assert time.monotonic() - started < 30
    for field, value in (("timeout", "1e300"), ("n_gpus", "99999999999999999999")):
        write_card_package(pkg, [card("ok_bounds", "scripts/ok.sh", **{field: value})], {})
        result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE)
        assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()  # a collection error of that card
        assert f"invalid card ok_bounds: models.json: card 'ok_bounds': {field} " in result.stdout.str()
        assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_huge_results_csv_is_refused_quickly_with_flat_memory(pytester: pytest.Pytester, busybox_image: str) -> None:
    rows = "i=0\nwhile [ $i -lt 60000 ]; do echo \"m$i,1.5,ops\"; i=$((i+1)); done\n"
    pkg = write_card_package(pytester.path / "pkg", [card("many_rows", "scripts/many.sh",
                                                          multiple_results="res.csv")],
                             {"scripts/many.sh": f"{{ echo model,performance,metric\n{rows}}} > res.csv\n"})
    started = time.monotonic()
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "tiny", *BASE, timeout=180)
    assert time.monotonic() - started < 120
    assert "more than 10000 rows" in result.stdout.str()
    assert [row["status"] for row in read_perf(pytester.path / "perf.csv")] == ["FAILURE"]


# --- 2. paths stay inside the package and the model dir ----------------------------------------

def test_paths_leaving_the_package_are_refused_and_nothing_leaks(pytester: pytest.Pytester, busybox_image: str,
                                                                 tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "run.sh").write_text(f"echo {CANARY}\necho performance: 9 ops\n")
    (secret / "res.csv").write_text(f"model,performance,metric\n{CANARY},9,ops\n")
    pkg = pytester.path / "pkg"
    rel = os.path.relpath(secret, pkg)
    cards = [card("abs_scripts", str(secret)), card("climb_scripts", f"{rel}/run.sh"),
             card("link_scripts", "scripts/link/run.sh"),
             card("climb_results", "scripts/ok.sh", multiple_results=f"../../../{rel}/res.csv"),
             card("abs_results", "scripts/ok.sh", multiple_results=str(secret / "res.csv")),
             card("climb_dockerfile", "scripts/ok.sh", dockerfile=f"{rel}/tiny")]
    write_card_package(pkg, cards, {"scripts/ok.sh": "echo performance: 1 ops\n"})
    (pkg / "scripts" / "link").symlink_to(secret)
    (secret / "tiny.ubuntu.amd.Dockerfile").write_text(
        f"# CONTEXT {{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}}\nFROM {busybox_image}\nRUN echo {CANARY}\n")
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "tiny", *BASE,
                                           "--junitxml", "junit.xml")
    out = result.stdout.str() + result.stderr.str()
    rows = {row["model"]: row for row in read_perf(pytester.path / "perf.csv")}
    assert {name: row["status"] for name, row in rows.items()} == {c["name"]: "FAILURE" for c in cards}
    for field in ("scripts", "multiple_results", "dockerfile"):
        assert f"field '{field}'" in out or f"{field} '" in out, field
    assert CANARY not in out
    assert CANARY not in session_files_text(pytester.path)


def test_context_scripts_leaving_the_package_are_refused(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("pre_out", "scripts/ok.sh")],
                             {"scripts/ok.sh": "echo performance: 1 ops\n"})
    context = {"gpu_vendor": "AMD", "guest_os": "UBUNTU", "pre_scripts": [{"path": "../../../etc/passwd"}]}
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-gpus", "none", "-p",
                                           "no:cacheprovider", f"--mad-context={json.dumps(context)}")
    assert "context 'pre_scripts'" in result.stdout.str() and "outside the package" in result.stdout.str()
    assert read_perf(pytester.path / "perf.csv")[0]["status"] == "FAILURE"
    assert "root:x:0" not in session_files_text(pytester.path)


# --- 3. signals and crashes clean up like Ctrl-C -------------------------------------------------

def _start_session(pkg: Path, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest", "--mad-package", str(pkg), *BASE, *extra],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_container(model: str) -> object:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = [c for c in own_containers(model) if c.status == "running"]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"{model} never started")


def test_sigterm_removes_the_container_and_records_what_ran(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("term_first", "scripts/ok.sh", tags=["a"]),
                                                      card("term_sleeper", "scripts/sleep.sh", tags=["a"])],
                             {"scripts/ok.sh": "echo performance: 1 ops\n", "scripts/sleep.sh": "sleep 300\n"})
    proc = _start_session(pkg, pytester.path, "--mad-tags", "a")
    _wait_for_container("term_sleeper")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert own_containers("term_sleeper") == []
    assert [row["model"] for row in read_perf(pytester.path / "perf.csv")] == ["term_first"]
    assert not any((pytester.path / "mad_logs" / "runs").iterdir())


def test_killed_session_leaves_run_dirs_that_the_next_session_sweeps(pytester: pytest.Pytester,
                                                                     busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("killed_sleeper", "scripts/sleep.sh", tags=["s"]),
                                                      card("after_kill", "scripts/ok.sh", tags=["o"])],
                             {"scripts/ok.sh": "echo performance: 1 ops\n", "scripts/sleep.sh": "sleep 300\n"})
    proc = _start_session(pkg, pytester.path, "--mad-tags", "s")
    _wait_for_container("killed_sleeper")
    proc.kill()
    proc.communicate(timeout=30)
    runs = pytester.path / "mad_logs" / "runs"
    assert [p.name for p in runs.iterdir() if p.name.startswith("killed_sleeper-")]
    second = _start_session(pkg, pytester.path, "--mad-tags", "o")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert list(runs.iterdir()) == []
    assert own_containers("killed_sleeper") == []


def test_killed_xdist_worker_gets_a_failure_row(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("worker_victim", "scripts/sleep.sh")],
                             {"scripts/sleep.sh": "sleep 300\n"})
    proc = _start_session(pkg, pytester.path, "--mad-tags", "tiny", "-n", "1", "--junitxml", "junit.xml")
    container = _wait_for_container("worker_victim")
    os.kill(int(container.labels["pytest-madengine.pid"]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    rows = read_perf(pytester.path / "perf.csv")
    assert [(row["model"], row["status"]) for row in rows] == [("worker_victim", "FAILURE")], out
    assert "worker" in out and "died" in out
    deadline = time.monotonic() + 30
    while own_containers("worker_victim") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert own_containers("worker_victim") == []


# --- 5. logs belong to one run -------------------------------------------------------------------

def test_two_sessions_on_one_package_keep_their_own_logs(pytester: pytest.Pytester, busybox_image: str) -> None:
    # The first run prints its performance at once, then idles; the second starts meanwhile (and,
    # sharing one log file, would empty the first's log before the first is judged).
    filler = "i=0; while [ $i -lt 400 ]; do echo filler-line-of-fifty-characters-to-flush-the-log; i=$((i+1)); done"
    script = (f"if mkdir /myworkspace/first-run 2>/dev/null; then echo performance: 4 ops; {filler}; sleep 6\n"
              "else sleep 6; echo performance: 5 ops; fi\n")
    pkg = write_card_package(pytester.path / "pkg", [card("shared_log", "scripts/two.sh")], {"scripts/two.sh": script})
    first = _start_session(pkg, pytester.path, "--mad-tags", "tiny")
    _wait_for_container("shared_log")
    second = _start_session(pkg, pytester.path, "--mad-tags", "tiny")
    outs = [proc.communicate(timeout=180)[0] for proc in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    performances = sorted(row["performance"] for row in read_perf(pytester.path / "perf.csv"))
    assert performances == ["4", "5"]


def test_names_that_map_to_one_file_or_image_do_not_collide(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("clash_b", "scripts/root.sh", env_vars={"V": "1"})],
                             {"scripts/root.sh": "echo performance: 11 ops\n",
                              "scripts/clash/run.sh": "echo performance: 22 ops\n"})
    sub = {"name": "b", "dockerfile": "../../docker/tiny", "scripts": "run.sh", "n_gpus": "1", "tags": ["tiny"],
           "docker_build_arg": {"FLAVOUR": "sub"}}
    (pkg / "scripts" / "clash" / "models.json").write_text(json.dumps([sub]))
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "tiny", *BASE)
    assert result.ret == 0, result.stdout.str()
    rows = {row["model"]: row for row in read_perf(pytester.path / "perf.csv")}
    assert (rows["clash_b"]["performance"], rows["clash/b"]["performance"]) == ("11", "22")
    assert rows["clash_b"]["docker_image"] != rows["clash/b"]["docker_image"]
    logs = sorted(p.name for p in (pytester.path / "mad_logs").glob("*.run.log"))
    assert len(logs) == 2 and all(name.startswith("clash_b-") for name in logs), logs


# --- 7. known before building: usage errors --------------------------------------------------------

@pytest.mark.parametrize("bad", [
    pytest.param({"name": "has space"}, id="name-space"),
    pytest.param({"name": 'quo"te'}, id="name-quote"),
    pytest.param({"name": "new\nline"}, id="name-newline"),
])
def test_bad_cards_are_usage_errors_before_any_build(pytester: pytest.Pytester, bad: dict) -> None:
    pkg = write_card_package(pytester.path / "pkg", [{**card("fine", "scripts/ok.sh"), **bad}],
                             {"scripts/ok.sh": "echo performance: 1 ops\n"})
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    field = next(iter(bad))
    assert f"'{field}'" in result.stderr.str() and "Traceback" not in result.stderr.str()
    assert not (pytester.path / "mad_logs").exists()  # nothing was built


@pytest.mark.parametrize("bad", [
    pytest.param({"args": ["--a", "1"]}, id="args-list"),
    pytest.param({"multiple_results": {"f": 1}}, id="results-object"),
    pytest.param({"timeout": True}, id="timeout-bool"),
])
def test_cards_of_the_wrong_type_are_collection_errors_before_any_build(pytester: pytest.Pytester,
                                                                        bad: dict) -> None:
    pkg = write_card_package(pytester.path / "pkg", [{**card("fine", "scripts/ok.sh"), **bad}],
                             {"scripts/ok.sh": "echo performance: 1 ops\n"})
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), *BASE)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    field = next(iter(bad))
    assert f"invalid card fine: models.json: card 'fine': field '{field}'" in result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "mad_logs").exists()  # nothing was built


@pytest.mark.parametrize("registry", ["a b", "ftp://x", "localhost:5000/Team", "x\"y"])
def test_malformed_registry_is_a_usage_error(pytester: pytest.Pytester, registry: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("fine", "scripts/ok.sh")], {"scripts/ok.sh": "true\n"})
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-registry", registry, *BASE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mad-registry" in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_non_finite_performance_is_a_failure_from_every_source(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [
        card("inf_log", "scripts/inf.sh"),
        card("nan_csv", "scripts/nan.sh", multiple_results="r.csv"),
        card("inf_csv", "scripts/infcsv.sh", multiple_results="r.csv")], {
        "scripts/inf.sh": "echo performance: 1e999 ops\n",
        "scripts/nan.sh": "printf 'model,performance,metric\\na,nan,ops\\n' > r.csv\n",
        "scripts/infcsv.sh": "printf 'model,performance,metric\\na,2,ops\\nb,-inf,ops\\n' > r.csv\n"})
    result = pytester.runpytest_subprocess("--mad-package", str(pkg), "--mad-tags", "tiny", *BASE)
    assert "not a finite number" in result.stdout.str()
    statuses = {(row["model"], row["status"]) for row in read_perf(pytester.path / "perf.csv")}
    # One result per row: inf_csv's finite row stands, its -inf row fails alone.
    assert statuses == {("inf_log", "FAILURE"), ("nan_csv_a", "FAILURE"), ("inf_csv_a", "SUCCESS"),
                        ("inf_csv_b", "FAILURE")}
