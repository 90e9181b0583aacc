"""Results that mean something, through real pytest sessions on real containers: references,
baselines from the history, repeats, concurrent sessions, the history command."""
from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import AMD_CPU, card, write_card_package

pytestmark = pytest.mark.docker

# The model prints the value written in the package's value.txt (the package is /myworkspace);
# with a counter file it prints 100, 101, 102, ... on successive runs.
FIXED = 'echo "performance: $(cat ../value.txt) tokens/s"\n'
COUNTING = ('n=$(cat ../counter 2>/dev/null || echo 0); n=$((n+1)); echo $n > ../counter\n'
            'echo "performance: $((99+n)) tokens/s"\n')


def package(root: Path, script: str) -> Path:
    pkg = write_card_package(root, [card("llama", "scripts/run.sh", tags=["llm"])], {"scripts/run.sh": script})
    return pkg


def run(pytester: pytest.Pytester, pkg: Path, *more: str) -> pytest.RunResult:
    return pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "llama", AMD_CPU, "--mad-gpus", "none",
                              "-p", "no:cacheprovider", "--junitxml", "junit.xml", *more)


def perf_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def junit_properties(path: Path) -> dict[str, str]:
    from tests.junit_records import model_properties

    return model_properties(path)


def test_reference_band_passes_at_900_and_fails_at_812(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = package(pytester.path / "pkg", FIXED)
    references = pytester.path / "refs.yaml"
    references.write_text("llama:\n  value: 900\n  tolerance: 5%\n")
    (pkg / "value.txt").write_text("900\n")
    run(pytester, pkg, "--mad-references", str(references)).assert_outcomes(passed=1)
    (pkg / "value.txt").write_text("812\n")
    result = run(pytester, pkg, "--mad-references", str(references))
    result.assert_outcomes(failed=1)
    message = "812 tokens/s is 9.8 % below the reference 900 (allowed 5 %)"
    result.stdout.fnmatch_lines([f"*llama failed (phase performance): {message}*"])
    last = perf_rows(pytester.path / "perf.csv")[-1]
    assert (last["status"], last["relative_change"]) == ("FAILURE", "-9.78")
    props = junit_properties(pytester.path / "junit.xml")
    assert props["phase"] == "performance" and props["reference_lower"] == "855"


def test_compare_last_fails_a_session_ten_percent_slower(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = package(pytester.path / "pkg", FIXED)
    compare = ("--mad-compare", "last", "--mad-fail-on-regression", "5")
    (pkg / "value.txt").write_text("1000\n")
    first = run(pytester, pkg, *compare)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*note: llama: no baseline in the history*"])
    (pkg / "value.txt").write_text("900\n")
    second = run(pytester, pkg, *compare)
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(["*phase performance*900 tokens/s is 10.0 % below*1000*"])
    assert junit_properties(pytester.path / "junit.xml")["baseline"] == "1000"
    history = pkg / ".mad" / "history.sqlite"
    with sqlite3.connect(history) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2


def test_repeats_record_every_run_and_judge_the_median(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = package(pytester.path / "pkg", COUNTING)
    result = run(pytester, pkg, "--mad-repeat", "5", "--mad-history", str(pytester.path / "h.sqlite"))
    result.assert_outcomes(passed=1)
    rows = perf_rows(pytester.path / "perf.csv")
    assert [row["performance"] for row in rows] == ["100", "101", "102", "103", "104"]
    props = junit_properties(pytester.path / "junit.xml")
    assert props["performance"] == "102" and props["repeat_cv"].startswith("1.5")
    unstable = run(pytester, pkg, "--mad-repeat", "3", "--mad-max-cv", "0.5", "--mad-history", "none")
    unstable.assert_outcomes(failed=1)
    unstable.stdout.fnmatch_lines(["*unstable: CV * over 3 runs exceeds the allowed 0.5 %*"])


def test_two_sessions_writing_the_history_at_once_lose_no_row(pytester: pytest.Pytester, busybox_image: str) -> None:
    history = pytester.path / "shared.sqlite"
    packages = [package(pytester.path / name, COUNTING) for name in ("a", "b")]
    procs = [subprocess.Popen([sys.executable, "-m", "pytest", "--mad-package", str(pkg), "--mad-tags", "llama",
                               AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider", "--mad-repeat", "4",
                               "--mad-history", str(history), "--mad-perf-csv", str(pkg / "perf.csv"),
                               "--mad-log-dir", str(pkg.parent / f"logs-{pkg.name}")],
                              cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for pkg in packages]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()
    with sqlite3.connect(history) as db:
        sessions = [row[0] for row in db.execute("SELECT id FROM sessions")]
        assert len(sessions) == 2
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 8
    listed = subprocess.run([sys.executable, "-m", "pytest_madengine", "history", "list", "--history", str(history)],
                            capture_output=True, text=True, check=True)
    assert all(session in listed.stdout for session in sessions)


def test_bad_references_and_compare_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pkg = package(pytester.path / "pkg", FIXED)
    bad = pytester.path / "refs.yaml"
    bad.write_text("llama: [1, 2\n")
    result = run(pytester, pkg, "--mad-references", str(bad), "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "refs.yaml" in result.stderr.str() and "Traceback" not in result.stderr.str()
    result = run(pytester, pkg, "--mad-compare", "mean:3w", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mad-compare" in result.stderr.str()


def test_the_session_records_the_packages_git_commit(pytester: pytest.Pytester, busybox_image: str) -> None:
    """The history keeps the commit of the package the session ran."""
    pkg = package(pytester.path / "pkg", FIXED)
    (pkg / "value.txt").write_text("1\n")
    git = ["git", "-C", str(pkg), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "package"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    run(pytester, pkg).assert_outcomes(passed=1)
    with sqlite3.connect(pkg / ".mad" / "history.sqlite") as db:
        assert db.execute("SELECT git_commit FROM sessions").fetchall() == [(commit,)]


LOADED_CONFTEST = '''
import sys
import time
from pathlib import Path


def pytest_madengine_docker_run_options(card, context, options):
    with (Path(__file__).parent / "loaded.txt").open("a") as out:
        out.write(f"{card.name} {'sqlalchemy' in sys.modules}\\n")
'''


def test_a_healthy_history_is_opened_after_the_first_model_and_holds_the_session(
        pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("first", "scripts/run.sh"), card("second", "scripts/run.sh")],
                             {"scripts/run.sh": FIXED})
    (pkg / "value.txt").write_text("1000\n")
    pytester.makeconftest(LOADED_CONFTEST)
    history = pytester.path / "h.sqlite"
    args = ["--mad-package", str(pkg), AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider",
            "--mad-history", str(history)]
    for _ in range(2):  # a new file, then the healthy history the first session wrote
        before = time.time()
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(passed=2)
    loaded = (pytester.path / "loaded.txt").read_text().split()
    assert loaded[:2] == ["first", "False"], loaded  # SQLAlchemy not loaded before the first container
    with sqlite3.connect(history) as db:
        sessions = db.execute("SELECT id, started, ended FROM sessions ORDER BY started").fetchall()
        assert len(sessions) == 2 and all(ended is not None and ended >= started for _, started, ended in sessions)
        assert before - 1 <= sessions[-1][1] <= time.time()
        rows = db.execute("SELECT session_id, model FROM results WHERE session_id = ? ORDER BY model",
                          (sessions[-1][0],)).fetchall()
    assert [model for _, model in rows] == ["first", "second"]
    assert loaded[4:6] == ["first", "False"], loaded
