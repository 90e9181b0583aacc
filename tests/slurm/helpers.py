"""Tiny MAD packages and run requests for the SLURM target tests."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from pytest_madengine.cards import ModelCard
from pytest_madengine.context import Context
from pytest_madengine.host import HostFacts
from pytest_madengine.records import ImageRef
from pytest_madengine.settings import Settings
from pytest_madengine.workload.run import RunRequest

BUSYBOX = "mad-test/busybox:latest"


def make_package(root: Path, scripts: dict[str, str]) -> Path:
    """A package with scripts/m/<name> files (no registry needed: cards are built directly)."""
    (root / "scripts" / "m").mkdir(parents=True, exist_ok=True)
    (root / "docker").mkdir(exist_ok=True)
    (root / "models.json").write_text("[]")
    for name, text in scripts.items():
        (root / "scripts" / "m" / name).write_text(text)
    return root


def make_card(name: str, script: str, **fields: Any) -> ModelCard:
    raw = {"name": name, "dockerfile": "docker/busybox", "scripts": f"scripts/m/{script}",
           "n_gpus": "1", "tags": ["pyt"], "args": "", **fields}
    return ModelCard.from_dict(json.loads(json.dumps(raw)), source="models.json")


def make_request(package: Path, card: ModelCard, tmp: Path, *, context: dict[str, Any] | None = None,
                 timeout: int | None = None, image: str = BUSYBOX) -> RunRequest:
    run_id = uuid.uuid4().hex[:8]
    data = context or {"gpu_vendor": "NONE"}
    return RunRequest(card=card, context=Context.from_json(data, host=HostFacts()), image=ImageRef(name=image),
                      gpus=(), settings=Settings(package=package, timeout=timeout),
                      log_path=tmp / f"{run_id}.log", work_dir=tmp / f"work-{run_id}", run_id=run_id)


def node_address(node: str = "node1") -> str:
    """The node's ``NodeAddr`` (``scontrol show node``): where a job's ranks reach their master there."""
    out = subprocess.run(["scontrol", "show", "node", node], capture_output=True, text=True, check=True).stdout
    return next(word.split("=", 1)[1] for word in out.split() if word.startswith("NodeAddr="))


def job_port(job_id: str) -> str:
    """The master port of a job without a configured one: 29500 + job id mod 1000."""
    return str(29500 + int(job_id) % 1000)
