"""README's commands run as written: every ```bash block marked ``<!-- readme-test: runs -->`` (or
``runs with k8s``: the test cluster of tests/infra is started first) runs as one ``bash -eu`` script
in a fresh copy of the checkout, on a machine without a GPU. Blocks without a marker must say in
their comments what they need. The first block's two commands are README's commands 1 and 2, and
.ci/run runs command 2.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging.checkout import REPO, copy_checkout

README = REPO / "README.md"
MARKER = re.compile(r"<!-- readme-test: runs(?: with (?P<needs>[a-z0-9, ]+))? -->\n```bash\n(?P<body>.*?)\n```",
                    re.DOTALL)
# What a `runs with X` block needs: the session fixture that starts it.
NEEDS_FIXTURES = {"k8s": "k8s_cluster", "docker": "busybox_image"}


@dataclass(frozen=True)
class Block:
    line: int  # of the fence, 1-based
    needs: tuple[str, ...]
    body: str


def runnable_blocks(text: str) -> list[Block]:
    return [Block(line=text.count("\n", 0, match.start()) + 2,
                  needs=tuple(n.strip() for n in (match["needs"] or "").split(",") if n.strip()),
                  body=match["body"]) for match in MARKER.finditer(text)]


BLOCKS = runnable_blocks(README.read_text())


def test_readme_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 2, "the <!-- readme-test: runs --> markers are gone from README.md"


def test_first_block_is_the_two_commands_and_ci_runs_the_second() -> None:
    first = README.read_text().split("```bash\n", 1)[1].split("\n```", 1)[0].splitlines()
    commands = [line.split("#", 1)[0].strip() for line in first[:2]]
    assert commands == ["bash .ci/quickstart", "bash .ci/setup && python -m pytest tests"]
    ci_run = (REPO / ".ci" / "run").read_text()
    assert "bash .ci/setup ||" in ci_run and '-m pytest "${@:-tests}"' in ci_run


@pytest.mark.docker
@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{block.line}" for block in BLOCKS])
def test_readme_block_runs_as_written(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for need in ("docker", *block.needs):
        request.getfixturevalue(NEEDS_FIXTURES[need])
    checkout = copy_checkout(tmp_path / "checkout")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}  # this checkout's plugin, wherever pytest runs from
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.body], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"README.md:{block.line} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stdout + done.stderr
