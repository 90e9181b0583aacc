"""Tiny MAD packages for the Kubernetes session tests: busybox cards and their scripts."""
from __future__ import annotations

import json
from pathlib import Path


def write_busybox_package(root: Path, cards: list[dict], scripts: dict[str, str]) -> Path:
    """``cards`` (name, scripts, tags, ...) on the busybox image, one GPU each unless they say;
    ``scripts``: file name under ``scripts/m`` → its text."""
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    full = [{"dockerfile": "docker/bb", "n_gpus": "1", "args": "", "owner": "t", "training_precision": "", **card}
            for card in cards]
    (root / "models.json").write_text(json.dumps(full))
    for name, text in scripts.items():
        (root / "scripts" / "m" / name).write_text(text)
    return root
