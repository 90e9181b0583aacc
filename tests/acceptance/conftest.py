"""Helpers for acceptance tests: copy MAD packages into pytester's temp dir."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mad-hub"
AMD_CPU = "--mad-context={'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}"


@pytest.fixture
def example_package(pytester: pytest.Pytester) -> Path:
    """A copy of the bundled example package, as the pytester session's working dir."""
    target = pytester.path / "hub"
    shutil.copytree(EXAMPLE, target)
    return target


def write_card_package(root: Path, cards: list[dict], scripts: dict[str, str],
                       base_image: str = "mad-test/busybox:latest") -> Path:
    """A minimal package: root cards, run scripts and one AMD/UBUNTU Dockerfile prefix."""
    import json

    (root / "docker").mkdir(parents=True, exist_ok=True)
    (root / "docker" / "tiny.ubuntu.amd.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\n"
        f"ARG BASE_DOCKER={base_image}\nFROM $BASE_DOCKER\n")
    (root / "models.json").write_text(json.dumps(cards, indent=2))
    for rel, text in scripts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def card(name: str, script: str, **extra: object) -> dict:
    data = {"name": name, "dockerfile": "docker/tiny", "scripts": script, "n_gpus": "1",
            "owner": "", "training_precision": "", "tags": ["tiny"], "args": ""}
    data.update(extra)
    return data
