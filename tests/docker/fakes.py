"""Test doubles for the run context (same attributes as pytest_madengine.context.Context) and
loaders for the runnable test package."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_madengine.cards import ModelCard

RUNNABLE = Path(__file__).resolve().parents[1] / "packages" / "runnable"


@dataclass(frozen=True)
class FakeHost:
    gpu_count: int = 4
    render_devices: tuple[int, ...] = (128, 136, 144, 152)


@dataclass
class FakeContext:
    data: dict[str, Any]
    host: FakeHost = field(default_factory=FakeHost)

    @property
    def gpu_vendor(self) -> str:
        return self.data.get("gpu_vendor", "NONE")

    @property
    def guest_os(self) -> str:
        return self.data.get("guest_os", "UBUNTU")

    @property
    def gpu_architecture(self) -> str:
        return self.data.get("gpu_architecture", "gfx942")

    @property
    def docker_env_vars(self) -> dict[str, str]:
        return self.data.get("docker_env_vars", {})

    @property
    def docker_build_args(self) -> dict[str, str]:
        return self.data.get("docker_build_arg", {})

    @property
    def docker_mounts(self) -> dict[str, str]:
        return self.data.get("docker_mounts", {})


def amd_context(**extra: Any) -> FakeContext:
    return FakeContext({"gpu_vendor": "AMD", "guest_os": "UBUNTU", **extra})


def load_cards(root: Path = RUNNABLE) -> dict[str, ModelCard]:
    raw = json.loads((root / "models.json").read_text())
    return {entry["name"]: ModelCard.from_dict(entry, source=str(root / "models.json")) for entry in raw}


def make_card(**fields: Any) -> ModelCard:
    raw = {"name": "m", "dockerfile": "docker/m", "scripts": "scripts/m/run.sh", **fields}
    return ModelCard.from_dict(raw, source="models.json")
