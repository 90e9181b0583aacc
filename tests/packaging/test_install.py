"""What a new user installs runs the example: the wheel without extras in a fresh venv, and README's
first command (.ci/quickstart) in a fresh copy of the checkout with no Go and an empty test cache.

Both make a venv and install from PyPI (the core dependencies only), so they need the network and
the Docker engine; they take about a minute together.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.checkout import REPO, copy_checkout

pytestmark = pytest.mark.docker

EXAMPLE_ARGS = ["--mad-package", "hub", "--mad-tags", "dummies", "--mad-context-file", "hub/context.cpu.json",
                "--mad-gpus", "none", "-p", "no:cacheprovider"]
NO_GO_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# perf.csv rows of the 5 models tagged dummies (dummy_multi writes one row per multiple_results line)
EXAMPLE_MODELS = {"dummy", "dummy_multi_bs1", "dummy_multi_bs8", "dummy2/model1", "dummy3/model3_bs1",
                  "dummy3/model3_bs16"}


def clean_env(**changes: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH (it would import this checkout), plus changes."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, **changes}


def run(argv: list[str | Path], timeout: float = 300, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env or clean_env(), stdin=subprocess.DEVNULL, check=False)


def make_venv(path: Path) -> Path:
    done = run([sys.executable, "-m", "venv", path])
    assert done.returncode == 0, done.stderr
    return path / "bin" / "python"


def successes(perf_csv: Path) -> set[str]:
    with perf_csv.open(newline="") as handle:
        return {row["model"] for row in csv.DictReader(handle) if row["status"] == "SUCCESS"}


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this checkout and its core dependencies from PyPI: no extras."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = copy_checkout(tmp / "src")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", source])
    assert built.returncode == 0, built.stderr
    python = make_venv(tmp / "venv")
    installed = run([python, "-m", "pip", "install", "-q", next((tmp / "dist").glob("*.whl"))])
    assert installed.returncode == 0, installed.stderr
    return python


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples" / "mad-hub", tmp_path / "hub")
    return tmp_path


def test_wheel_without_extras_runs_the_example(wheel_venv: Path, hub: Path, busybox_image: str) -> None:
    probe = run([wheel_venv, "-c", "import importlib.util as u, pytest_madengine as p; print(p.__file__); "
                 "print([m for m in ('kubernetes', 'pymongo', 'psycopg') if u.find_spec(m)])"], cwd=hub)
    where, extras = probe.stdout.splitlines()
    assert where.startswith(str(wheel_venv.parent.parent)), where  # the wheel, not this checkout
    assert extras == "[]"
    done = run([wheel_venv, "-m", "pytest", *EXAMPLE_ARGS], cwd=hub)
    assert done.returncode == 0, done.stdout + done.stderr
    assert successes(hub / "perf.csv") == EXAMPLE_MODELS


def test_wheel_without_extras_names_the_k8s_extra(wheel_venv: Path, hub: Path) -> None:
    done = run([wheel_venv, "-m", "pytest", *EXAMPLE_ARGS, "--mad-target", "k8s"], cwd=hub)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "pip install 'pytest-madengine[k8s]'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (hub / "perf.csv").exists()


def test_console_command_reports_without_extras_and_names_the_mongo_extra(wheel_venv: Path, hub: Path) -> None:
    (hub / "perf.csv").write_text("model,performance,metric,status\ndummy,1,ops,SUCCESS\n")
    command = wheel_venv.parent / "pytest-madengine"
    page = run([command, "report", "to-html", "perf.csv", "-o", "perf.html"], cwd=hub)
    assert page.returncode == 0, page.stderr  # the chart library is vendored: no extra needed
    assert "dummy" in (hub / "perf.html").read_text()
    done = run([command, "database", "upload", "perf.csv", "--db", "d", "-c", "c"], cwd=hub)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'pytest-madengine[mongo]'" in done.stderr
    usage = run([command, "history", "--help"], cwd=hub)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: pytest-madengine history")
