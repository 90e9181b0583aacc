"""Code trees for side-by-side benchmarks: another git revision of the package, exported."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def baseline_tree(rev: str, into: Path) -> Path:
    """The package at git revision ``rev``, exported (no checkout) into ``into``: put ``into``
    first on ``PYTHONPATH`` (and run outside the repository) to import that revision."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "pytest_madengine"],
                             check=True, capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
