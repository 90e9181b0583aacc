"""The history shared by CI runners (PostgreSQL), seeded from perf.csv files, and never a reason
to stop the models (damaged or unusable files): real pytest sessions on real containers."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.fixtures import Postgres

from .conftest import AMD_CPU, card, write_card_package
from .test_history import FIXED, junit_properties, package, perf_rows, run

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SESSION_LINE = re.compile(r"history: \d+ row\(s\) of \d+ result\(s\), session (\S+)")


def clone(target: Path) -> Path:
    """A fresh clone of this commit, as a CI runner checks it out."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", commit], check=True)
    return target


def runner_session(checkout: Path, pkg: Path, work: Path, *args: str, env: dict[str, str] | None = None,
                   timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` from ``checkout`` (its pytest_madengine first on the path), in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "PYTHONPATH": str(checkout), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(work),
                           "--mad-package", str(pkg), AMD_CPU, "--mad-gpus", "none",
                           "--mad-perf-csv", str(work / "perf.csv"), "--mad-log-dir", str(work / "logs"),
                           "--junitxml", str(work / "junit.xml"), *args],
                          cwd=work, env=environ, capture_output=True, text=True, timeout=timeout)


def test_two_runners_share_a_postgres_history_and_the_second_fails_a_regression(
        tmp_path: Path, postgres: Postgres, busybox_image: str) -> None:
    url = postgres.create_database("runners")
    gate = ("--mad-tags", "llama", "--mad-compare", "last", "--mad-fail-on-regression", "5")
    first_pkg = package(tmp_path / "runner1" / "pkg", FIXED)
    (first_pkg / "value.txt").write_text("1000\n")
    first = runner_session(clone(tmp_path / "runner1" / "repo"), first_pkg, tmp_path / "runner1" / "work",
                           "--mad-history", url, *gate)  # the password in the URL
    assert first.returncode == 0, first.stdout + first.stderr
    first_id = SESSION_LINE.search(first.stdout).group(1)  # type: ignore[union-attr]
    second_pkg = package(tmp_path / "runner2" / "pkg", FIXED)
    (second_pkg / "value.txt").write_text("900\n")
    second = runner_session(clone(tmp_path / "runner2" / "repo"), second_pkg, tmp_path / "runner2" / "work",
                            "--mad-history", postgres.url(password=False, database="runners"), *gate,
                            env={"PGPASSWORD": postgres.password})  # the password from the environment
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"900 tokens/s is 10.0 % below the baseline 1000 (last, session {first_id}; allowed 5 %)" in second.stdout
    assert junit_properties(tmp_path / "runner2" / "work" / "junit.xml")["baseline"] == "1000"
    listed = subprocess.run([sys.executable, "-m", "pytest_madengine", "history", "list", "--history", url],
                            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert first_id in listed.stdout and postgres.password not in listed.stdout
    for text in _every_output(tmp_path, first, second):
        assert postgres.password not in text
    from pytest_madengine.history.store import HistoryStore

    with HistoryStore(url) as store:  # the stored command line masks the URL's password
        stored = " ".join(store.session(first_id).pytest_args)  # type: ignore[union-attr]
    assert postgres.password not in stored and f"{postgres.user}:***@" in stored


def _every_output(root: Path, *procs: subprocess.CompletedProcess[str]) -> list[str]:
    texts = [proc.stdout + proc.stderr for proc in procs]
    texts += [path.read_text(errors="replace") for path in root.rglob("*")
              if path.is_file() and "/repo/" not in str(path) and path.suffix in (".csv", ".xml", ".log", ".json", "")]
    return texts


def eight_sessions(tmp_path: Path, url: str, workers: int, models: int) -> list[subprocess.CompletedProcess[str]]:
    cards = [card(f"m{i}", "scripts/run.sh", tags=["tiny"]) for i in range(models)]
    procs = []
    for n in range(8):
        pkg = write_card_package(tmp_path / f"s{n}" / "pkg", cards, {"scripts/run.sh": FIXED})
        (pkg / "value.txt").write_text(f"{1000 + n}\n")
        work = tmp_path / f"s{n}" / "work"
        work.mkdir(parents=True)
        environ = {**os.environ, "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(work), "--mad-package",
             str(pkg), AMD_CPU, "--mad-gpus", "none", "-n", str(workers), "--mad-history", url,
             "--mad-compare", "last", "--mad-perf-csv", str(work / "perf.csv"), "--mad-log-dir", str(work / "logs")],
            cwd=work, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""))
    return results


def test_eight_concurrent_sessions_with_two_workers_each_lose_no_row(
        tmp_path: Path, postgres: Postgres, busybox_image: str) -> None:
    """8 sessions × -n 2 × 3 models at once (the full 8 × -n 4 is a manual run: 2 CI cores)."""
    from pytest_madengine.history.store import HistoryStore

    url = postgres.create_database("eight")
    for proc in eight_sessions(tmp_path, url, workers=2, models=3):
        assert proc.returncode == 0, proc.stdout[-3000:]
    with HistoryStore(url) as store:
        sessions = store.sessions()
        assert len(sessions) == 8 and all(item.rows == 3 and item.info.ended for item in sessions)
        assert sorted(row.value for row in store.rows(model="m0")) == [1000.0 + n for n in range(8)]


def test_import_of_madengine_perf_csv_gives_the_baseline_of_a_later_session(
        pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = package(pytester.path / "pkg", FIXED)
    (pkg / "value.txt").write_text("1000\n")
    run(pytester, pkg, "--mad-history", "none").assert_outcomes(passed=1)
    ours = perf_rows(pytester.path / "perf.csv")[0]  # this host's GPU facts, for the imported rows
    madengine = (DATA / "madengine-results" / "perf_super.csv").read_text()
    header = madengine.splitlines()[0].split(",")
    archive = pytester.path / "archive.csv"
    archive.write_text(madengine.replace("llama,8,1,8,", f"llama,{ours['n_gpus']},{ours['nnodes']},"
                                         f"{ours['gpus_per_node']},").replace(",gfx942,", f",{ours['gpu_architecture']},"))
    assert "performance" in header
    history = pkg / ".mad" / "history.sqlite"
    imported = subprocess.run([sys.executable, "-m", "pytest_madengine", "history", "import", "--history",
                               str(history), str(archive)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert imported.returncode == 0, imported.stderr
    assert "4 row(s) as session" in imported.stdout and "columns not stored: configs, multi_results" in imported.stdout
    (pkg / "value.txt").write_text("700\n")
    later = run(pytester, pkg, "--mad-compare", "last", "--mad-fail-on-regression", "5")
    later.assert_outcomes(failed=1)
    later.stdout.fnmatch_lines(["*700 tokens/s is 13.8 % below the baseline 812.4 (last, session *"])


def _damage(path: Path, page: int = 3) -> None:
    with path.open("r+b") as handle:
        handle.seek(4096 * page)
        handle.write(b"\xde\xad" * 2048)


def test_a_damaged_default_history_warns_and_every_model_runs(pytester: pytest.Pytester, busybox_image: str) -> None:
    cards = [card(f"m{i}", "scripts/run.sh") for i in range(3)]
    pkg = write_card_package(pytester.path / "pkg", cards, {"scripts/run.sh": FIXED})
    (pkg / "value.txt").write_text("1000\n")
    history = pkg / ".mad" / "history.sqlite"
    first = pytester.runpytest("--mad-package", str(pkg), AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=3)
    for _ in range(30):  # enough rows for data pages beyond the schema's
        subprocess.run([sys.executable, "-m", "pytest_madengine", "history", "import", "--history", str(history),
                        str(pytester.path / "perf.csv")], check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    _damage(history)
    result = pytester.runpytest("--mad-package", str(pkg), AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider",
                                "--junitxml", "junit.xml", "--mad-compare", "last")
    result.assert_outcomes(passed=3)
    assert result.ret == 0 and "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*history not written: *history.sqlite: the history is damaged*"])
    assert len(perf_rows(pytester.path / "perf.csv")) == 6
    assert (pytester.path / "junit.xml").read_text().count("<testcase") == 3
    named = pytester.runpytest("--mad-package", str(pkg), AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider",
                               "--mad-history", str(history))
    assert named.ret == pytest.ExitCode.USAGE_ERROR and "the history is damaged" in named.stderr.str()
    for unusable in (pytester.path, pkg / "models.json" / "h.sqlite"):
        bad = pytester.runpytest("--mad-package", str(pkg), AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider",
                                 "--mad-history", str(unusable))
        assert bad.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in bad.stdout.str() + bad.stderr.str()
        assert "cannot open the history" in bad.stderr.str()
    shutil.rmtree(pkg / ".mad")
