"""The layering of ARCHITECTURE.md holds (import-linter contracts in pyproject.toml), and breaks
visibly when a lower layer imports a higher one."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on ``project`` (its pyproject.toml, its pytest_madengine)."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    # The console script installed beside this interpreter (import-linter is a test dependency).
    command = str(Path(sys.executable).parent / "lint-imports")
    return subprocess.run([command, "--no-cache", str(project / "pyproject.toml")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "pytest_madengine", tmp_path / "pytest_madengine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers(project_copy: Path) -> None:
    done = lint_imports(project_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(project_copy: Path) -> None:
    records = project_copy / "pytest_madengine" / "records.py"
    records.write_text(records.read_text() + "\n\ndef _late() -> None:\n    from .session import MadSession  # noqa\n")
    done = lint_imports(project_copy)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout
    assert "pytest_madengine.records -> pytest_madengine.session" in done.stdout


def test_targets_do_not_import_each_other(project_copy: Path) -> None:
    local = project_copy / "pytest_madengine" / "targets" / "local" / "target.py"
    local.write_text(local.read_text() + "\n\ndef _late() -> None:\n    from ..slurm.jobs import SlurmCli  # noqa\n")
    done = lint_imports(project_copy)
    assert done.returncode != 0
    assert "pytest_madengine.targets.local.target -> pytest_madengine.targets.slurm.jobs" in done.stdout
